"""verify_entries finds altered, dropped, reordered, undecodable and cut entries, and says where."""

from __future__ import annotations

from typing import Any

import pytest

from hub.audit.anchor import Anchor, anchor_from_metadata, anchor_value
from hub.audit.chain import AuditChain, entry_hash
from hub.audit.reader import batch_entries
from hub.audit.verify import Expectations, verify_entries
from hub.core.errors import InvalidRecord
from hub.core.registry.errors import RegistryUnavailable

KEY = b"unit-test-audit-key-0123456789"


def _entry(i: int) -> dict[str, Any]:
    return {
        "kind": "delivered",
        "ts_ms": 1_700_000_000_000 + i,
        "hub": "pudong",
        "subscription": "tax-debtors",
        "subscriber": "tax",
        "resource": "PD-CRD-0001",
        "policy_version": "abc",
        "event_id": f"e{i}",
        "key_hash": f"k{i % 7}",
        "op": "c",
        "fields": ["case_no", "debtor_id"],
        "delivered_topic": "t",
        "delivered_partition": i % 3,
        "delivered_offset": i,
        "source": f"src-0@{i}",
        "reason": None,
    }


def _log(chains: int = 2, per_chain: int = 10) -> list[tuple[int, dict[str, Any]]]:
    """Interleaved chains, the way several workers write one audit topic."""
    writers = [AuditChain(f"xhub-hub-pudong-{w}", KEY) for w in range(chains)]
    out: list[tuple[int, dict[str, Any]]] = []
    for i in range(per_chain):
        for writer in writers:
            out.append((len(out), writer.append(_entry(i))))
    return out


def test_an_intact_log_verifies_with_its_chain_heads() -> None:
    log = _log()
    report = verify_entries(log, key=KEY)
    assert report.ok, report.problems
    assert report.entries == 20
    assert {c.chain: (c.first_seq, c.last_seq, c.entries) for c in report.chains.values()} == {
        "xhub-hub-pudong-0": (1, 10, 10),
        "xhub-hub-pudong-1": (1, 10, 10),
    }
    last = report.chains["xhub-hub-pudong-1"]
    assert last.last_hash == log[-1][1]["hash"]
    assert last.last_offset == 19


def test_an_altered_entry_is_found_at_its_offset() -> None:
    log = _log()
    tampered = dict(log[7][1], subscriber="housing")
    log[7] = (7, tampered)
    report = verify_entries(log, key=KEY)
    assert [(p.kind, p.offset, p.chain, p.seq) for p in report.problems] == [
        ("altered", 7, tampered["chain"], tampered["seq"])
    ]


def test_a_rewritten_entry_with_a_fresh_hash_is_found_through_its_successor() -> None:
    log = _log()
    tampered = dict(log[6][1], fields=["case_no"])
    tampered["hash"] = entry_hash(KEY, tampered["prev_hash"], tampered)  # the forger recomputes the hash
    log[6] = (6, tampered)
    report = verify_entries(log, key=KEY)
    assert [(p.kind, p.offset, p.seq) for p in report.problems] == [("altered", 6, tampered["seq"])]
    assert "rewritten" in report.problems[0].detail


def test_a_dropped_entry_is_a_gap() -> None:
    log = _log()
    dropped = log.pop(9)[1]
    report = verify_entries([(i, e) for i, (_, e) in enumerate(log)], key=KEY)  # offsets of the copy
    assert [(p.kind, p.chain, p.seq, p.offset) for p in report.problems] == [
        ("missing", dropped["chain"], dropped["seq"], 10)
    ]
    # the copy's offsets: chain 1 wrote offsets 1, 3, 5, 7, (9 dropped), then 10
    assert "seq 5 absent between offset 7 (seq 4) and offset 10 (seq 6)" in report.problems[0].detail


def test_a_swapped_pair_is_reordered_not_missing() -> None:
    log = _log(chains=1)
    entries = [e for _, e in log]
    entries[3], entries[4] = entries[4], entries[3]
    report = verify_entries(list(enumerate(entries)), key=KEY)
    assert [(p.kind, p.offset, p.seq) for p in report.problems] == [("reordered", 4, 4)]


def test_the_head_of_a_chain_cut_away_is_missing() -> None:
    log = _log(chains=1)[3:]
    report = verify_entries(log, key=KEY)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing", 1)]
    assert "head of the chain" in report.problems[0].detail


def test_undecodable_and_duplicate_records() -> None:
    log: list[tuple[int, dict[str, Any] | None]] = list(_log(chains=1))
    log.insert(2, (99, None))
    log.append((100, log[4][1]))
    report = verify_entries(log, key=KEY)
    assert [(p.kind, p.offset) for p in report.problems] == [("undecodable", 99), ("reordered", 100)]


def test_anchors_catch_a_cut_tail_and_a_rewritten_head() -> None:
    writer = AuditChain("xhub-hub-pudong-0", KEY)
    log = [(i, writer.append(_entry(i))) for i in range(10)]
    anchor = anchor_from_metadata(
        '{"v":1,"subs":{},"audit":' + str(anchor_value(writer)).replace("'", '"') + "}", "offsets of src-0"
    )
    assert anchor == Anchor("xhub-hub-pudong-0", 10, log[-1][1]["hash"], "offsets of src-0")
    assert verify_entries(log, key=KEY, expect=Expectations(anchors=[anchor])).ok

    cut = verify_entries(log[:8], key=KEY, expect=Expectations(anchors=[anchor]))
    assert [(p.kind, p.seq) for p in cut.problems] == [("truncated", 10)]
    assert "chain ends at seq 8" in cut.problems[0].detail

    rewritten = dict(log[9][1], fields=[])
    rewritten["hash"] = entry_hash(KEY, rewritten["prev_hash"], rewritten)
    report = verify_entries([*log[:9], (9, rewritten)], key=KEY, expect=Expectations(anchors=[anchor]))
    assert [(p.kind, p.seq) for p in report.problems] == [("altered", 10)]


def test_first_break_is_the_earliest_offset() -> None:
    log = _log()
    log[12] = (12, dict(log[12][1], op="u"))
    del log[5]  # chain 1, seq 3: found missing at offset 7, its successor
    report = verify_entries(log, key=KEY)
    assert sorted((p.offset, p.kind) for p in report.problems) == [(7, "missing"), (12, "altered")]
    first = report.first_break()
    assert first is not None
    assert (first.offset, first.kind) == (7, "missing")


class _Decoder:
    """A decoder that fails the way it is told to (the registry's client, seen from the reader)."""

    def __init__(self, error: Exception | None = None, value: Any = None) -> None:
        self.error, self.value = error, value

    def decode(self, data: bytes, reader_schema: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return 1, self.value


def test_an_unreachable_registry_is_an_error_not_an_undecodable_entry() -> None:
    # Defect: with the registry down every audit record read as "undecodable", so `xhub audit verify`
    # reported the chains cut (tampering) and `xhub report` counted 0 deliveries, both without an error.
    down = RegistryUnavailable("schema registry at https://127.0.0.1:1 did not answer GET /schemas/ids/17")
    with pytest.raises(RegistryUnavailable, match="did not answer"):
        batch_entries(_Decoder(down), b"\x00\x00\x00\x00\x11")


def test_records_that_are_not_audit_batches_are_undecodable() -> None:
    assert batch_entries(_Decoder(InvalidRecord("bad_wire_format", "not Avro")), b"garbage") is None
    assert batch_entries(_Decoder(value={"entries": "not a list"}), b"\x00") is None
    assert batch_entries(_Decoder(value={"entries": [_entry(1)]}), b"\x00") == [_entry(1)]
