"""The metrics the alerting rules need beyond the hub's /metrics: a verification's result (a broken audit
chain) and each subscription's update cycle (how stale its lag may grow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hub.audit.chain import AuditChain
from hub.audit.verify import verify_entries
from hub.audit.verify_metrics import write_verify_metrics
from hub.config import load_config
from hub.config.snapshot import config_snapshot, snapshot_digest
from hub.engine.policy_set import build_policy_set, policy_set_from_snapshot
from hub.monitor.update_cycle import CYCLE_SECONDS, UpdateCycleCollector

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
KEY = b"unit-test-audit-key-0123456789"
SECRET = b"k" * 32


def _audit_log(entries: int = 6) -> list[tuple[int, dict[str, Any]]]:
    chain = AuditChain("xhub-hub-pudong-0", KEY)
    return [(i, chain.append({"kind": "refused", "ts_ms": i, "event_id": f"e{i}"})) for i in range(entries)]


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_an_intact_audit_writes_intact_and_no_problems(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "xhub-audit-pudong.prom"
    write_verify_metrics(path, verify_entries(_audit_log(), key=KEY), "pudong", 1_800_000_000.0)
    samples = _samples(path)
    assert samples[("xhub_audit_chain_intact", (("hub", "pudong"),))] == 1.0
    assert samples[("xhub_audit_entries_verified", (("hub", "pudong"),))] == 6.0
    assert samples[("xhub_audit_last_verify_timestamp_seconds", (("hub", "pudong"),))] == 1_800_000_000.0
    problems = [v for (name, _), v in samples.items() if name == "xhub_audit_problems"]
    assert problems
    assert set(problems) == {0.0}


def test_an_altered_entry_writes_broken_with_its_kind(tmp_path: Path) -> None:
    log = _audit_log()
    log[3][1]["event_id"] = "forged"
    path = tmp_path / "audit.prom"
    write_verify_metrics(path, verify_entries(log, key=KEY), "pudong", 1_800_000_000.0)
    samples = _samples(path)
    assert samples[("xhub_audit_chain_intact", (("hub", "pudong"),))] == 0.0
    assert samples[("xhub_audit_problems", (("hub", "pudong"), ("kind", "altered")))] >= 1.0


def test_update_cycle_per_subscription_follows_the_catalog() -> None:
    cfg = load_config(DEMO)
    policies = build_policy_set("pudong", cfg, secret=SECRET)
    family = next(iter(UpdateCycleCollector("pudong", lambda: policies).collect()))
    got = {s.labels["subscription"]: s for s in family.samples}
    assert set(got) == set(policies.plans)
    for sid, sample in got.items():
        resource = cfg.resources[policies.plans[sid].resource]
        assert sample.labels["update_cycle"] == resource.update_cycle
        assert sample.value == CYCLE_SECONDS[resource.update_cycle]


def test_a_hub_following_applied_configs_knows_the_update_cycles() -> None:
    """The live path (xhub.cfg.<hub> snapshots) carries the cycles too, so a changed catalog shows."""
    cfg = load_config(DEMO)
    raw = config_snapshot(cfg, "pudong")
    policies = policy_set_from_snapshot(json.loads(raw), secret=SECRET, digest=snapshot_digest(raw))
    assert policies.update_cycles
    assert policies.update_cycles == {
        p.resource: cfg.resources[p.resource].update_cycle for p in policies.plans.values()
    }
