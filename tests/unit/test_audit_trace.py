"""`xhub audit trace` walking (pure): from the last hub's delivery through each hop's audit to the source."""

from __future__ import annotations

from typing import Any

from hub.audit.chain import key_hash
from hub.audit.trace import trace_disclosure
from hub.core.provenance import Hop, Provenance

R, K = "PD-CRD-0001", "(2025)沪0115执1号"
SECRETS = {"pudong": b"pudong-secret-0123456789", "city": b"city-secret-0123456789"}
SOURCE = "xhub.src.court.pd-crd-0001-2@55"
CARRIED = "xhub.dlv.pudong.city-debtors-1@811"
CITY_DELIVERY = "xhub.dlv.city.centre-debtors-0@9"


def _entry(hub: str, chain: str, seq: int, sub: str, *, at: str, source: str, **extra: Any) -> dict[str, Any]:
    topic_partition, _, offset = at.rpartition("@")
    topic, _, partition = topic_partition.rpartition("-")
    return {
        "kind": "delivered",
        "hub": hub,
        "chain": chain,
        "seq": seq,
        "subscription": sub,
        "subscriber": "x",
        "resource": R,
        "policy_version": f"v-{hub}",
        "event_id": f"e-{hub}",
        "key_hash": key_hash(SECRETS[hub], R, K),
        "op": "u",
        "fields": ["case_no"],
        "delivered_topic": topic,
        "delivered_partition": int(partition),
        "delivered_offset": int(offset),
        "source": source,
        "ts_ms": 1,
        **extra,
    }


class FakeHubs:
    def __init__(self, provenance: Provenance, district: dict[str, Any], event: dict[str, Any]) -> None:
        self.provenance, self.district, self.event = provenance, district, event

    def audit_entry(self, hub: str, chain: str, seq: int) -> dict[str, Any] | None:
        d = self.district
        return d if (hub, chain, seq) == ("pudong", d["chain"], d["seq"]) else None

    def record_at(
        self, hub: str, origin: str
    ) -> tuple[list[tuple[str, bytes]], dict[str, Any] | None] | None:
        if (hub, origin) == ("city", CITY_DELIVERY):
            return [self.provenance.header()], None
        if (hub, origin) == ("pudong", SOURCE):
            return [], self.event
        return None

    def secret(self, hub: str) -> bytes | None:
        return SECRETS.get(hub)


def _setup(**district_extra: Any) -> tuple[FakeHubs, dict[str, Any]]:
    district = _entry(
        "pudong", "xhub-hub-pudong-0", 42, "city-debtors", at=CARRIED, source=SOURCE, **district_extra
    )
    city = _entry(
        "city", "xhub-hub-city-0", 7, "centre-debtors", at=CITY_DELIVERY, source="xhub.src.pd.pd-crd-0001-0@3"
    )
    provenance = Provenance(
        "court",
        "enforcement",
        1_760_000_000_007,
        "e-pudong",
        (
            Hop("pudong", "v-pudong", "xhub-hub-pudong-0", 42, "city-debtors", CARRIED),
            Hop("city", "v-city", "xhub-hub-city-0", 7, "centre-debtors"),
        ),
    )
    event = {
        "event_id": "e-pudong",
        "resource": R,
        "op": "u",
        "key": K,
        "seq": 3,
        "source": {"dept": "court", "system": "enforcement", "commit_ts_ms": 1_760_000_000_007},
        "published_ts_ms": 1,
        "data": None,
    }
    return FakeHubs(provenance, district, event), city


def test_a_two_level_disclosure_is_traced_to_its_source_event() -> None:
    hubs, city = _setup()
    trace = trace_disclosure(hubs, "city", city, K)
    assert trace.ok, trace.lines()
    assert [(s.what, s.hub) for s in trace.steps] == [
        ("hop", "city"),
        ("hop", "pudong"),
        ("source", "pudong"),
    ]
    assert "court (enforcement) event e-pudong" in trace.steps[-1].text
    assert K not in "\n".join(trace.lines())  # keys are found by hash, never printed


def test_a_hop_the_audit_does_not_confirm_is_a_mismatch() -> None:
    hubs, city = _setup(policy_version="v-other", delivered_offset=812)
    trace = trace_disclosure(hubs, "city", city, K)
    assert not trace.ok
    problems = trace.steps[1].problems
    assert any("policy v-other in the audit, v-pudong in the header" in p for p in problems), problems
    assert any(f"the link carried {CARRIED}" in p for p in problems), problems


def test_a_source_event_other_than_the_header_says_is_a_mismatch() -> None:
    hubs, city = _setup()
    hubs.event = {**hubs.event, "source": {**hubs.event["source"], "dept": "psb"}}
    trace = trace_disclosure(hubs, "city", city, K)
    assert trace.steps[-1].problems == ["department psb at the source, court in the header"]


def test_a_missing_upstream_hub_is_a_gap_not_a_crash() -> None:
    hubs, city = _setup()
    hubs.district = {**hubs.district, "seq": 1}
    trace = trace_disclosure(hubs, "city", city, K)
    assert not trace.ok
    assert "not found" in trace.steps[1].text
