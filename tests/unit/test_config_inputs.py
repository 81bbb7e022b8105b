"""Config inputs: YAML 1.2 scalars, plain data with lines, and naive datetimes in the hubs' timezone."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hub.config import Grant, Subscription, load_config
from hub.config.yaml_lines import YamlSyntaxError, load_located
from hub.core.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
SHANGHAI = timezone(timedelta(hours=8))


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    return load_located(path, "doc.yaml")


def _types(value: Any) -> set[type]:
    if isinstance(value, dict):
        return {dict}.union(*(_types(k) | _types(v) for k, v in value.items()))
    if isinstance(value, list):
        return {list}.union(*(_types(v) for v in value))
    return {type(value)}


def test_scalars_follow_yaml_1_2(tmp_path: Path) -> None:
    doc = _load(
        tmp_path,
        "a: no\nb: yes\nc: on\nd: 0123\ne: 0o17\nf: 0x1F\ng: 1_000\nh: 1.5e3\ni: true\nj: ~\n"
        "k: 2026-10-08T09:00:00+08:00\nl: 2026-10-08\nm: '0123'\nn: |\n  text\n",
    )
    assert doc.data == {
        "a": "no",  # YAML 1.1 read false
        "b": "yes",
        "c": "on",
        "d": 123,  # YAML 1.1 read the octal 83
        "e": 15,
        "f": 31,
        "g": 1000,
        "h": 1500.0,
        "i": True,
        "j": None,
        "k": "2026-10-08T09:00:00+08:00",  # YAML 1.2 has no timestamps: pydantic reads the text
        "l": "2026-10-08",
        "m": "0123",
        "n": "text\n",
    }


def test_data_is_plain_python_with_a_line_for_every_path(tmp_path: Path) -> None:
    doc = _load(
        tmp_path,
        "# comment\nsubs:\n  - id: a\n    fields: [x, y]\n  - id: b\n    fields:\n      - z\n"
        "shared: &s [1, 2]\nagain: *s\n",
    )
    assert _types(doc.data) <= {dict, list, str, int}
    assert doc.data["again"] == [1, 2]
    assert doc.data["again"] is not doc.data["shared"]  # a tree: an alias is a copy, not a shared list
    assert doc.line_of(("subs",)) == 2
    assert doc.line_of(("subs", 0)) == 3
    assert doc.line_of(("subs", 0, "fields", 1)) == 4
    assert doc.line_of(("subs", 1, "id")) == 5
    assert doc.line_of(("subs", 1, "fields", 0)) == 7
    assert doc.line_of(("again",)) == 9
    assert doc.line_of(("subs", 1, "no-such-key")) == 5  # the closest ancestor's line


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb:\n  c: 2\n  c: 3\n", 4, 'duplicate key "c" (first at line 3)'),
        ("a: 1\n1: 2\n01: 3\n", 3, "duplicate key"),
        ("base: &b {x: 1}\nuse:\n  y: 2\n  <<: *b\n", 4, "merge keys (<<) are not supported"),
        ("a: &x\n  b: [*x]\n", 2, "alias *x refers to a value that contains it"),
        ("%YAML 1.1\n---\na: no\n", 1, "config files are YAML 1.2"),
        ("a: !!python/object:os.system {}\n", 1, "not supported"),
    ],
)
def test_refused_documents_name_their_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        _load(tmp_path, text)
    assert caught.value.problem.line == line
    assert words in caught.value.problem.message


def _demo_with(tmp_path: Path, zone: str | None, sub_extra: str) -> Path:
    """The demo config with one more subscription and, when ``zone`` is given, that timezone."""
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    if zone is not None:
        hubs = root / "hubs.yaml"
        kept = [
            line for line in hubs.read_text(encoding="utf-8").splitlines() if not line.startswith("timezone:")
        ]
        hubs.write_text("\n".join([*kept, f"timezone: {zone}", ""]), encoding="utf-8")
    (root / "subscriptions" / "zz_window.yaml").write_text(
        "subscriptions:\n"
        "  - id: zz-window\n"
        "    subscriber: lujiazui\n"
        "    resource: PD-CRD-0001\n"
        "    hub: pudong\n"
        "    fields: [case_no, district]\n"
        "    purpose: test\n" + sub_extra,
        encoding="utf-8",
    )
    return root


def test_naive_datetimes_are_read_in_shanghai_by_default(tmp_path: Path) -> None:
    root = _demo_with(
        tmp_path, None, "    valid_from: 2030-01-01T08:00:00\n    valid_until: 2030-06-01T00:00:00Z\n"
    )
    sub = load_config(root).subscriptions["zz-window"]
    assert sub.valid_from == datetime(2030, 1, 1, 8, tzinfo=SHANGHAI)
    assert sub.valid_from == datetime(2030, 1, 1, 0, tzinfo=UTC)  # not 08:00 UTC, eight hours late
    assert sub.valid_until is not None
    assert sub.valid_until.utcoffset() == timedelta(0)  # an aware value keeps its own offset


def test_naive_datetimes_follow_the_timezone_of_hubs_yaml(tmp_path: Path) -> None:
    root = _demo_with(tmp_path, "Europe/Berlin", "    valid_from: 2030-07-01T08:00:00\n")
    (root / "grants" / "court" / "zz_window.yaml").write_text(
        "grants:\n  - subscription: zz-window\n    resource: PD-CRD-0001\n    decision: approved\n"
        "    approver: x\n    decided_at: 2030-01-15 09:30:00\n",
        encoding="utf-8",
    )
    cfg = load_config(root)
    sub = cfg.subscriptions["zz-window"]
    assert sub.valid_from == datetime(2030, 7, 1, 6, tzinfo=UTC)  # summer time, UTC+2
    grant = cfg.grant_of("zz-window")
    assert grant is not None
    assert grant.decided_at == datetime(2030, 1, 15, 8, 30, tzinfo=UTC)  # winter, UTC+1


def test_naive_from_beside_aware_until_is_compared_not_a_traceback(tmp_path: Path) -> None:
    # 05:00 in Shanghai is 21:00 UTC the day before: after valid_until (20:00 UTC).
    root = _demo_with(
        tmp_path, None, "    valid_from: 2030-01-01T05:00:00\n    valid_until: 2029-12-31T20:00:00Z\n"
    )
    with pytest.raises(ConfigError, match="valid_from is not before valid_until"):
        load_config(root)
    # 03:00 in Shanghai is 19:00 UTC: before valid_until, so valid (read as UTC it was not).
    root = _demo_with(
        tmp_path / "2", None, "    valid_from: 2030-01-01T03:00:00\n    valid_until: 2029-12-31T20:00:00Z\n"
    )
    load_config(root)


def test_an_unknown_timezone_is_one_error(tmp_path: Path) -> None:
    root = _demo_with(tmp_path, "China/Shanghai", "")
    line = (root / "hubs.yaml").read_text(encoding="utf-8").splitlines().index("timezone: China/Shanghai") + 1
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    assert [str(p) for p in caught.value.problems] == [
        f'hubs.yaml:{line} at timezone: timezone "China/Shanghai" is not a known zone name '
        "(e.g. Asia/Shanghai, UTC)"
    ]


def test_models_never_hold_naive_datetimes_and_snapshots_keep_the_instant() -> None:
    body = {
        "id": "s",
        "subscriber": "tax",
        "resource": "PD-CRD-0001",
        "hub": "pudong",
        "fields": ["case_no"],
        "purpose": "p",
        "valid_from": "2030-01-01T08:00:00",
    }
    sub = Subscription.model_validate(body)  # no loader context: the default zone
    assert sub.valid_from == datetime(2030, 1, 1, tzinfo=UTC)
    grant = Grant.model_validate(
        {
            "subscription": "s",
            "resource": "PD-CRD-0001",
            "decision": "approved",
            "decided_at": datetime(2030, 1, 1, 8),
        }
    )
    assert grant.decided_at is not None
    assert grant.decided_at.utcoffset() == timedelta(hours=8)
    # The hub reads subscriptions back from a JSON snapshot: aware values survive whatever zone it has.
    again = Subscription.model_validate(sub.model_dump(mode="json"), context={"timezone": "UTC"})
    assert again.valid_from == sub.valid_from
