"""Overdue share requests per owner (what `xhub lag`, the metrics and the status page show)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.config import Grant, load_config
from hub.governance.overdue import HubRequestWatch, overdue_of_config
from tests.unit.test_governance_requests import _config

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_request_is_overdue_from_the_day_after_its_due_day(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path))
    on_due_day = overdue_of_config(cfg, date(2026, 12, 2))  # tax-persons: filed 2026-11-18, due 2026-12-02
    assert on_due_day.total == 0
    # housing answered its one request: it is counted, with 0
    assert on_due_day.overdue_by_owner == {"housing": 0, "psb": 0}
    assert on_due_day.pending_by_owner == {"housing": 0, "psb": 2}  # tax-persons, lujiazui-persons (undated)
    assert on_due_day.summary_line() is None

    late = overdue_of_config(cfg, date(2026, 12, 3))
    assert late.overdue_by_owner == {"housing": 0, "psb": 1}
    assert [r.subscription for r in late.overdue] == ["tax-persons"]
    doc = late.to_json()
    assert doc["overdue"] == 1
    assert doc["requests"][0]["due_on"] == "2026-12-02"
    assert doc["requests"][0]["working_days_late"] == 1
    line = late.summary_line()
    assert line is not None
    assert "share requests overdue: 1 (by owner: psb 1)" in line
    assert "tax-persons due 2026-12-02" in line


def test_a_hub_judges_the_policies_in_force_and_an_answer_clears_the_count(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path))
    watch = HubRequestWatch(cfg, clock=lambda: datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI))
    subs = {sid: s for sid, s in cfg.subscriptions.items() if s.hub == "pudong"}
    grants = dict(cfg.grants)
    before = watch.overdue(subs, grants)
    assert before.overdue_by_owner == {"housing": 0, "psb": 1}
    assert watch.overdue(subs, grants) is before  # same policies, same day: not reckoned again

    answered = dict(grants)
    answered["tax-persons"] = Grant(
        subscription="tax-persons",
        resource="PD-POP-0001",
        decision="approved",
        approver="浦东公安分局人口管理办公室",
        decided_at=datetime(2026, 12, 3, 9, 0, tzinfo=SHANGHAI),
        fields=["district"],
    )
    after = watch.overdue(subs, answered)
    assert after.overdue_by_owner == {"housing": 0, "psb": 0}  # a gauge drops to 0 rather than vanishing
    assert after.total == 0
