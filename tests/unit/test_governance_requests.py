"""Share requests from a config: pending, answered on time, answered late, refused; ``xhub requests``."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.cli import main
from hub.config import load_config
from hub.governance.requests import NO_REQUEST_DATE, RequestList, ShareRequest, share_requests
from tests.fixtures.plugin import DEMO_CONFIG

# The demo's conditional resources: PD-POP-0001 (owner psb) and PD-EST-0001 (owner housing).
_EXTRA_SUBSCRIPTIONS = [
    {  # pending, filed 2026-11-18: due 2026-12-02
        "id": "tax-persons",
        "subscriber": "tax",
        "resource": "PD-POP-0001",
        "hub": "pudong",
        "fields": ["name", "district"],
        "purpose": "纳税人身份核验 (verify taxpayers)",
        "requested_at": "2026-11-18T09:00:00",
    },
    {  # pending, no filing date: listed, no deadline
        "id": "lujiazui-persons",
        "subscriber": "lujiazui",
        "resource": "PD-POP-0001",
        "hub": "pudong",
        "fields": ["district"],
        "purpose": "网格化管理 (case management)",
    },
    {  # revoked: not a request any more
        "id": "amr-persons",
        "subscriber": "amr",
        "resource": "PD-POP-0001",
        "hub": "pudong",
        "fields": ["district"],
        "purpose": "登记核验 (registration checks)",
        "requested_at": "2025-01-02T09:00:00",
        "active": False,
    },
]


def _edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _by_id(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    return next(item for item in items if item[key] == value)


def _config(tmp_path: Path) -> Path:
    """The demo config with filing dates, one late answer, one refusal and three more requests."""
    root = tmp_path / "config"
    shutil.copytree(DEMO_CONFIG, root)

    def dated(sid: str, requested_at: str) -> Any:
        return lambda doc: _by_id(doc["subscriptions"], "id", sid).update(requested_at=requested_at)

    subs = root / "subscriptions"
    # Across National Day 2025 (10-01..10-08 off, Sunday 09-28 and Saturday 10-11 worked):
    _edit(subs / "housing" / "population.yaml", dated("housing-persons", "2025-09-30T10:00:00"))  # due 10-21
    _edit(subs / "transport" / "population.yaml", dated("transport-persons", "2025-09-28T09:00:00"))  # 10-17
    # Answered 2026-09-09 at 16:00 (grants/housing/): the 10th working day, on time.
    _edit(subs / "tax" / "estates.yaml", dated("tax-estates", "2026-08-26T11:00:00"))
    for extra in _EXTRA_SUBSCRIPTIONS:  # each in its subscriber's folder
        (subs / extra["subscriber"]).mkdir(exist_ok=True)
        path = subs / extra["subscriber"] / "zz_requests.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {"subscriptions": []}
        doc["subscriptions"].append(extra)
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def psb_grants(doc: dict[str, Any]) -> None:
        grants = doc["grants"]
        _by_id(grants, "subscription", "housing-persons")["decided_at"] = "2025-10-22T09:30:00"  # a day late
        grants.append(
            {
                "subscription": "transport-persons",
                "resource": "PD-POP-0001",
                "decision": "refused",
                "reason": "联系电话不属于共享范围 (phone numbers are not shared for this purpose)",
                "legal_basis": "《中华人民共和国个人信息保护法》 第六条 (minimum necessary)",
                "approver": "浦东公安分局人口管理办公室",
                "reference": "浦公共享〔2025〕31号",
                "decided_at": "2025-10-17T17:00:00",  # the due day itself: on time
            }
        )

    _edit(root / "grants" / "psb" / "population.yaml", psb_grants)
    return root


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return _config(tmp_path)


def _listing(config_dir: Path, today: date) -> RequestList:
    return share_requests(load_config(config_dir), today)


def _request(listing: RequestList, subscription: str) -> ShareRequest:
    return next(r for r in listing.requests if r.subscription == subscription)


def test_only_active_subscriptions_to_conditional_resources_are_requests(config_dir: Path) -> None:
    listing = _listing(config_dir, date(2026, 12, 3))
    assert sorted(r.subscription for r in listing.requests) == [
        "housing-persons",
        "lujiazui-persons",
        "tax-estates",
        "tax-persons",
        "transport-persons",
    ]
    assert [r.owner.id for r in listing.requests] == ["housing", "psb", "psb", "psb", "psb"]
    assert _request(listing, "tax-estates").owner.name.startswith("浦东新区规划和自然资源局")


def test_answered_on_time_on_the_due_day(config_dir: Path) -> None:
    r = _request(_listing(config_dir, date(2026, 12, 3)), "tax-estates")
    assert r.state == "approved"
    assert (r.requested_on, r.due_on, r.answered_on) == (
        date(2026, 8, 26),
        date(2026, 9, 9),
        date(2026, 9, 9),
    )
    assert r.working_days_taken == 10
    assert r.working_days_left is None
    assert not r.late
    assert r.notes == ()


def test_answered_late_across_national_day(config_dir: Path) -> None:
    r = _request(_listing(config_dir, date(2026, 12, 3)), "housing-persons")
    assert r.state == "approved"
    assert r.due_on == date(2025, 10, 21)
    assert r.answered_on == date(2025, 10, 22)
    assert r.working_days_taken == 11
    assert r.late
    assert not r.overdue


def test_refused_on_time_from_a_make_up_sunday(config_dir: Path) -> None:
    r = _request(_listing(config_dir, date(2026, 12, 3)), "transport-persons")
    assert r.state == "refused"
    assert r.due_on == date(2025, 10, 17)
    assert r.working_days_taken == 10
    assert not r.late
    assert r.reference == "浦公共享〔2025〕31号"


def test_pending_counts_down_then_is_overdue(config_dir: Path) -> None:
    before = _request(_listing(config_dir, date(2026, 11, 25)), "tax-persons")
    assert before.state == "pending"
    assert before.due_on == date(2026, 12, 2)
    assert (before.working_days_taken, before.working_days_left) == (5, 5)
    assert not before.late
    after = _request(_listing(config_dir, date(2026, 12, 3)), "tax-persons")
    assert after.working_days_left == -1
    assert after.overdue


def test_a_request_without_a_filing_date_gets_no_deadline(config_dir: Path) -> None:
    r = _request(_listing(config_dir, date(2026, 12, 3)), "lujiazui-persons")
    assert r.state == "pending"
    assert r.requested_at is None
    assert r.due_on is None
    assert r.working_days_left is None
    assert not r.late
    assert r.notes == (NO_REQUEST_DATE,)


def test_the_period_is_the_hubs_setting(config_dir: Path) -> None:
    _edit(config_dir / "hubs.yaml", lambda doc: doc.update(answer_within_working_days=5))
    listing = _listing(config_dir, date(2026, 11, 26))
    assert listing.working_days == 5
    assert _request(listing, "tax-persons").due_on == date(2026, 11, 25)
    assert _request(listing, "tax-persons").overdue


def test_dates_are_days_in_the_hub_timezone(config_dir: Path) -> None:
    # 2026-11-17 20:00 UTC is 2026-11-18 04:00 in Shanghai.
    _edit(
        config_dir / "subscriptions" / "tax" / "zz_requests.yaml",
        lambda doc: _by_id(doc["subscriptions"], "id", "tax-persons").update(
            requested_at="2026-11-17T20:00:00+00:00"
        ),
    )
    r = _request(_listing(config_dir, date(2026, 11, 25)), "tax-persons")
    assert r.requested_on == date(2026, 11, 18)
    assert r.due_on == date(2026, 12, 2)


def test_a_deadline_in_an_uncovered_year_is_flagged(config_dir: Path) -> None:
    _edit(
        config_dir / "subscriptions" / "tax" / "zz_requests.yaml",
        lambda doc: _by_id(doc["subscriptions"], "id", "tax-persons").update(
            requested_at="2030-12-24T09:00:00"
        ),
    )
    listing = _listing(config_dir, date(2030, 12, 28))
    r = _request(listing, "tax-persons")
    assert r.due_on is not None
    assert 2030 in r.uncovered_years
    assert any("2030" in w and "Monday to Friday" in w for w in listing.warnings)
    assert listing.to_json()["warnings"] == list(listing.warnings)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["requests", "--offline", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(config_dir), "--json", "--today", "2026-12-03")
    assert code == 0
    doc = json.loads(out)
    assert doc["today"] == "2026-12-03"
    assert doc["answer_within_working_days"] == 10
    assert doc["counts"] == {
        "requests": 5,
        "pending": 2,
        "overdue": 1,
        "approved": 2,
        "refused": 1,
        "answered_late": 1,
        "no_request_date": 1,
    }
    row = _by_id(doc["requests"], "subscription", "housing-persons")
    assert row["owner"] == {"id": "psb", "name": "浦东公安分局 (public security, household register)"}
    assert row["resource"]["code"] == "PD-POP-0001"
    assert (row["requested_on"], row["due_on"], row["answered_on"]) == (
        "2025-09-30",
        "2025-10-21",
        "2025-10-22",
    )
    assert row["requested_at"] == "2025-09-30T10:00:00+08:00"
    assert (row["state"], row["late"], row["working_days_taken"]) == ("approved", True, 11)
    # Who signed the answer is a person: never printed.
    assert "浦东公安分局人口管理办公室" not in out


def test_cli_overdue_and_department_filters(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(config_dir), "--json", "--overdue", "--today", "2026-12-03")
    assert code == 0
    assert [r["subscription"] for r in json.loads(out)["requests"]] == ["tax-persons"]
    _, out, _ = _run(capsys, str(config_dir), "--json", "--owner", "housing", "--today", "2026-12-03")
    assert [r["subscription"] for r in json.loads(out)["requests"]] == ["tax-estates"]
    _, out, _ = _run(capsys, str(config_dir), "--json", "--subscriber", "tax", "--today", "2026-12-03")
    assert [r["subscription"] for r in json.loads(out)["requests"]] == ["tax-estates", "tax-persons"]
    _, out, _ = _run(capsys, str(config_dir), "--json", "--overdue", "--today", "2026-11-25")
    assert json.loads(out)["requests"] == []


def test_cli_table(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(config_dir), "--today", "2026-12-03")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "subscription", "subscriber", "owner", "resource", "requested", "due", "state", "answered", "days"
    ]  # fmt: skip
    tax = next(line for line in lines if line.startswith("tax-persons "))
    assert "浦东新区税务局 [tax]" in tax
    assert "浦东公安分局 [psb]" in tax
    assert tax.endswith("2026-12-02  PENDING   -           overdue by 1")
    late = next(line for line in lines if line.startswith("housing-persons "))
    assert late.endswith("took 11 LATE")
    assert "APPROVED" in late
    assert f"note: lujiazui-persons: {NO_REQUEST_DATE}" in lines
    assert lines[-1].startswith("5 request(s): 2 pending (1 overdue), 2 approved, 1 refused, 1 answered late")
    # Columns line up although department names are Chinese (two terminal columns a character).
    assert len({_columns_before(line, "PD-") for line in lines[1:6]}) == 1


def _columns_before(line: str, marker: str) -> int:
    import unicodedata

    head = line[: line.index(marker)]
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in head)


def test_cli_config_error_is_one_line_per_problem(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        config_dir / "subscriptions" / "tax" / "zz_requests.yaml",
        lambda doc: _by_id(doc["subscriptions"], "id", "tax-persons").update(requested_at="last tuesday"),
    )
    _edit(config_dir / "hubs.yaml", lambda doc: doc.update(answer_within_working_days=0))
    code, out, err = _run(capsys, str(config_dir))
    assert code == 1
    assert out == ""
    problems = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(problems) == 2
    assert any("subscriptions/tax/zz_requests.yaml:" in p and "requested_at" in p for p in problems)
    assert any("hubs.yaml:" in p and "answer_within_working_days" in p for p in problems)


def test_cli_unknown_department(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, str(config_dir), "--owner", "nobody")
    assert code == 2
    assert '--owner "nobody" is no department' in err
