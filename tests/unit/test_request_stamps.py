"""`xhub apply` dates share requests: the stamp in the config snapshot is set once and then kept."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.config.snapshot import config_snapshot, snapshot_digest, stamp_requests

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
FIRST = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 9, 2, 0, tzinfo=UTC)


def _subs(snapshot: bytes) -> dict[str, dict[str, object]]:
    return dict(json.loads(snapshot)["subscriptions"])


def undated(root: Path, sid: str = "housing-persons") -> None:
    """Drop the filing date a demo request states (in subscriptions/<dept>/), as if filed through apply."""
    for path in root.glob("subscriptions/**/*.yaml"):
        text = path.read_text(encoding="utf-8")
        if f"- id: {sid}\n" in text:
            head, _, tail = text.partition(f"- id: {sid}\n")
            block, sep, rest = tail.partition("\n  - id: ")
            kept = "\n".join(x for x in block.split("\n") if "requested_at:" not in x)
            path.write_text(head + f"- id: {sid}\n" + kept + sep + rest, encoding="utf-8")


@pytest.fixture
def demo(tmp_path: Path) -> ConfigDir:
    """The demo config with housing-persons undated: apply dates it."""
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    undated(root)
    return load_config(root)


def test_requests_to_conditional_resources_are_dated_by_the_first_apply(demo: ConfigDir) -> None:
    cfg = demo
    stamped = _subs(stamp_requests(config_snapshot(cfg, "pudong"), None, FIRST))
    conditional = {
        sid
        for sid, s in cfg.subscriptions.items()
        if s.hub == "pudong" and cfg.resources[s.resource].share == "conditional"
    }
    assert conditional == {"housing-persons", "tax-estates", "transport-persons"}
    assert {sid for sid, s in stamped.items() if s["requested_at"]} == conditional
    assert stamped["housing-persons"]["requested_at"] == FIRST.isoformat()
    # a date the subscription states (a request filed before apply kept track) is taken as it is
    assert (
        stamped["transport-persons"]["requested_at"]
        == cfg.subscriptions["transport-persons"].model_dump(mode="json")["requested_at"]
    )
    assert stamped["tax-debtors"]["requested_at"] is None  # unconditional: no request


def test_a_later_apply_keeps_the_date_and_stays_a_no_op(demo: ConfigDir) -> None:
    cfg = demo
    desired = config_snapshot(cfg, "pudong")
    first = stamp_requests(desired, None, FIRST)
    applied = json.loads(first)
    again = stamp_requests(desired, applied, LATER)
    assert again == first
    assert snapshot_digest(again) == snapshot_digest(first)


def test_a_new_request_beside_old_ones_gets_the_new_date_only(demo: ConfigDir) -> None:
    cfg = demo
    desired = config_snapshot(cfg, "pudong")
    applied = json.loads(stamp_requests(desired, None, FIRST))
    del applied["subscriptions"]["housing-persons"]  # as if it had not been applied before
    subs = _subs(stamp_requests(desired, applied, LATER))
    assert subs["housing-persons"]["requested_at"] == LATER.isoformat()
    assert subs["tax-estates"]["requested_at"] == "2026-08-26T11:00:00+08:00"  # as it states, kept
