"""The provenance header (issue 17 point 3): built by each hub, read back by the next and by the trace."""

from __future__ import annotations

import json

from hub.core.provenance import MAX_HOPS, PROVENANCE_HEADER, Hop, Provenance, from_headers, parse
from hub.engine.records import SourceEvent, SourceRecord

EVENT = {
    "event_id": "e-1",
    "resource": "PD-CRD-0001",
    "key": "K",
    "source": {"dept": "court", "system": "enforcement", "commit_ts_ms": 1_700_000_000_000},
}
DISTRICT = Hop("pudong", "v1", "xhub-hub-pudong-0", 42, "city-debtors")


def test_a_hop_adds_to_the_header_and_reads_back() -> None:
    first = Provenance.of_event(EVENT, 1_700_000_000_000).with_hop(DISTRICT)
    name, value = first.header()
    assert name == PROVENANCE_HEADER
    doc = json.loads(value)
    assert doc["source"] == {
        "dept": "court",
        "system": "enforcement",
        "commit_ts_ms": 1_700_000_000_000,
        "event_id": "e-1",
    }
    city = Hop("city", "v9", "xhub-hub-city-0", 7, "centre-debtors")
    both = parse(value)
    assert both is not None
    assert both.carried_at("t-0@1").with_hop(city).hops == (
        Hop("pudong", "v1", "xhub-hub-pudong-0", 42, "city-debtors", "t-0@1"),
        city,
    )


def test_what_is_not_provenance_reads_as_none() -> None:
    assert parse(b"not json") is None
    assert parse(b'{"source": {}}') is None
    assert parse(b"x" * 10_000) is None
    assert from_headers([("other", b"1")]) is None
    assert from_headers(None) is None


def test_hops_are_capped() -> None:
    p = Provenance("court", "s", 1, "e")
    for n in range(MAX_HOPS + 5):
        p = p.with_hop(Hop(f"h{n}", "v", "c", n, "s"))
    assert len(p.hops) == MAX_HOPS
    again = parse(p.header()[1])
    assert again is not None
    assert again.hops[-1].hub == f"h{MAX_HOPS + 4}"


def test_a_hub_keeps_a_linked_provenance_but_not_one_a_department_claims() -> None:
    linked = Provenance("court", "enforcement", 5, "e-0", (DISTRICT,))
    record = SourceRecord("xhub.src.pudong-hub.pd-crd-0001", 0, 3, b"", (linked.header(),))
    city_event = {**EVENT, "event_id": "e-city", "source": {**EVENT["source"], "dept": "pudong-hub"}}
    assert SourceEvent.of(record, city_event, 0).provenance == linked
    # A department's own event is its own source, whatever header came with it (no hop: not a hub's).
    claimed = Provenance("psb", "x", 5, "e-0")
    record = SourceRecord("xhub.src.court.pd-crd-0001", 0, 3, b"", (claimed.header(),))
    own = SourceEvent.of(record, EVENT, 0).provenance
    assert (own.dept, own.event_id, own.hops) == ("court", "e-1", ())
