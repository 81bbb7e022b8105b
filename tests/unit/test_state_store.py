"""The state store's pure parts and its SQLite files: held keys keep filtered views true (router), the
store applies changes with its checkpoint, keyed hashes hide the business key."""

from __future__ import annotations

from pathlib import Path

from kafka import TopicPartition

from hub.engine.handover import Backfilling, Live
from hub.engine.router import OUT_OF_SCOPE, Deliver, Filtered, route
from hub.engine.state.changelog import HandoverEntry, HeldEntry, encode
from hub.engine.state.keys import held_key
from hub.engine.state.store import PartitionStore, StateStore
from tests.unit.test_policy_plan import NOW, SECRET, _debtor, _event, _plans

TP = TopicPartition("xhub.src.court.pd-crd-0001", 1)


def test_a_row_leaving_the_filter_is_deleted_only_where_it_is_held() -> None:
    plan = _plans()["lujiazui-debtors"]  # district == "浦东新区"
    [out] = route(_event(_debtor("黄浦区"), op="u"), [plan], NOW, lambda p: True)
    assert isinstance(out, Deliver)
    assert (out.value["op"], out.value["data"], out.reason) == ("d", None, OUT_OF_SCOPE)
    assert out.fields == ()
    [out] = route(_event(_debtor("黄浦区"), op="u"), [plan], NOW, lambda p: False)
    assert isinstance(out, Filtered)
    [out] = route(_event(_debtor("浦东新区"), op="u"), [plan], NOW, lambda p: False)  # enters: the row
    assert isinstance(out, Deliver)
    assert out.value["data"] is not None
    assert out.reason is None
    [out] = route(_event(None, op="d"), [plan], NOW, lambda p: False)  # a key it never got
    assert isinstance(out, Filtered)
    [out] = route(_event(None, op="d"), [plan], NOW, lambda p: True)
    assert isinstance(out, Deliver)
    assert (out.value["op"], out.reason) == ("d", None)
    # unfiltered subscriptions: as before, every delete, whatever is held
    tax = _plans()["tax-debtors"]
    [out] = route(_event(None, op="d"), [tax], NOW, lambda p: False)
    assert isinstance(out, Deliver)


def test_the_store_applies_changes_with_the_checkpoint_and_survives_a_reopen(tmp_path: Path) -> None:
    key = held_key(SECRET, "PD-CRD-0001", "(2024)沪0115执1234号")
    store = StateStore(tmp_path)
    part = store.open(TP)
    assert part.next_offset == 0
    part.apply([HandoverEntry(TP, "a", Live(10)), HandoverEntry(TP, "b", Backfilling(50, 5))], 3)
    part.apply([HeldEntry(TP, "b", key, held=True), HandoverEntry(TP, "a", None)], 7)
    part.apply([], 5)  # a checkpoint never moves back
    store.loaded(TP)
    assert store.handover(TP) == {"b": Backfilling(50, 5)}
    assert store.holds(TP, "b", key, {})
    assert not store.holds(TP, "b", key, {(TP, "b", key): False})  # the open transaction's change wins
    assert not store.holds(TP, "a", key, {})
    # the changes a transaction needs: only what differs from the committed state
    entries = store.changes({TP: {"b": Backfilling(50, 5), "c": Live(60)}}, {(TP, "b", key): False})
    assert entries == [HandoverEntry(TP, "c", Live(60)), HeldEntry(TP, "b", key, held=False)]
    store.close_all()
    again = PartitionStore(tmp_path / f"{TP.topic}-{TP.partition}.sqlite")
    assert again.next_offset == 7
    assert again.handover() == {"b": Backfilling(50, 5)}
    assert again.holds("b", key)
    again.close()


def test_the_state_topic_carries_keyed_hashes_not_business_keys() -> None:
    case = "(2024)沪0115执1234号"
    key = held_key(SECRET, "PD-CRD-0001", case)
    assert len(key) == 16
    assert key != held_key(b"another-secret-0123456789", "PD-CRD-0001", case)
    raw_key, value = encode(HeldEntry(TP, "lujiazui-debtors", key, held=True))
    assert case.encode() not in raw_key
    assert value == b"1"


def test_apply_creates_each_hubs_state_topic_compacted() -> None:
    from hub.config import load_config
    from hub.core import names
    from hub.provision.desired import desired_state

    cfg = load_config(Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config")
    desired = desired_state(cfg)
    for hub in cfg.hubs.values():
        spec = desired.topics[names.state_topic(hub.name)]
        assert spec.configs == {"cleanup.policy": "compact"}
        assert spec.partitions == hub.partitions


def test_the_checkpoint_remembers_the_key_below_it(tmp_path: Path) -> None:
    part = PartitionStore(tmp_path / "p.sqlite")
    assert part.last_key is None
    part.apply([], 10, b"k10")
    part.apply([], 8, b"k8")  # behind: neither moves back
    assert (part.next_offset, part.last_key) == (10, b"k10")
    part.apply([], 12)  # a restore past records of other partitions: the key below is unknown
    assert (part.next_offset, part.last_key) == (12, None)
    part.close()


def test_the_keys_of_a_batch_are_looked_up_at_once_with_the_same_answers(tmp_path: Path) -> None:
    """``held_among`` (one query per 400 subscriptions x 400 keys) answers as the one-by-one lookups."""
    keys = [held_key(SECRET, "PD-CRD-0001", f"case-{i}") for i in range(1000)]
    sids = [f"sub-{i}" for i in range(450)]  # more than one IN chunk of each
    store = StateStore(tmp_path)
    part = store.open(TP)
    held = [(sid, key) for n, sid in enumerate(sids) for key in keys[n % 7 :: 97]]
    part.apply([HeldEntry(TP, sid, key, held=True) for sid, key in held], 1)
    known = store.held_among(TP, sids, keys)
    assert known == set(held)
    probe = [("sub-3", keys[3]), ("sub-3", keys[4]), ("sub-449", keys[449 % 7]), ("nobody", keys[0])]
    for sid, key in probe:
        assert store.holds(TP, sid, key, {}, known) == store.holds(TP, sid, key, {})
    # the open transaction's changes still win over what was read ahead
    assert not store.holds(TP, "sub-3", keys[3], {(TP, "sub-3", keys[3]): False}, known)
    assert store.held_among(TopicPartition("not-owned", 0), sids, keys) == set()
    store.close_all()


class _Sent:
    """A send future that is done (the transaction committed), at ``offset``."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def get(self, timeout: float) -> _Sent:
        return self


def test_the_main_loop_and_the_backfill_task_each_write_only_their_own(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.open(TP).apply([HandoverEntry(TP, "a", Live(10)), HandoverEntry(TP, "b", Backfilling(50, 5))], 2)
    store.loaded(TP)
    # The backfill task moved b to 20; the main loop's copy still says 5: it writes nothing of b.
    moved = store.changes({TP: {"b": Backfilling(50, 20)}}, partial=True)
    assert moved == [HandoverEntry(TP, "b", Backfilling(50, 20))]  # and nothing of a: not the task's
    store.apply([(moved[0], _Sent(2))], "backfill")
    assert store.changes({TP: {"a": Live(10), "b": Backfilling(50, 5)}}) == []
    # The main loop ends the backfill (live, or abandoned): that it writes.
    assert store.changes({TP: {"a": Live(10), "b": Live(80)}}) == [HandoverEntry(TP, "b", Live(80))]
    assert store.changes({TP: {"a": Live(10)}}) == [HandoverEntry(TP, "b", None)]
    store.close_all()


def test_the_checkpoint_waits_while_the_other_writer_has_a_transaction_open(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    part = store.open(TP)
    part.apply([], 2)
    store.loaded(TP)
    store.begin("backfill")  # its entries (say at offset 3) may commit but not be applied yet
    store.begin("loop")
    store.apply([(HandoverEntry(TP, "a", Live(10)), _Sent(5))], "loop")
    store.end("loop")
    assert part.next_offset == 2  # a restart reads from 2: the backfill's entry at 3 is not skipped
    assert store.handover(TP) == {"a": Live(10)}
    store.apply([(HandoverEntry(TP, "b", Backfilling(50, 9)), _Sent(3))], "backfill")
    store.end("backfill")
    assert part.next_offset == 4  # alone: the checkpoint moves (5 is read again after a restart: no harm)
    store.close_all()
