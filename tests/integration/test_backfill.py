"""Backfill on a real broker: a subscription added mid-stream gets the current state, then every later
change, each once and in order per key; the others get nothing extra; SIGKILL during backfill changes
nothing of that."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import TopicPartition

from connectors.validation import RecordValidator
from hub.app import start_hub
from hub.audit.cli import verify_command
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.engine.backfill import Backfiller
from hub.engine.handover import Backfilling, Live, decode_metadata, encode_metadata, establish
from hub.engine.state.changelog import HandoverEntry, HeldEntry, decode, encode
from tests.fixtures.hubkit import Publisher, apply_config, read_all, read_to_end, wait_for

CODE = "PD-CRD-0001"


Source = dict[int, list[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class Delivered:
    partition: int  # of the delivery topic
    offset: int  # in the delivery topic
    source_partition: int
    source_offset: int
    op: str
    key: str
    seq: int
    event_id: str


def source_events(kafka: KafkaSettings, serde: AvroSerde, topic: str) -> Source:
    """Every committed event of a source topic, per partition, in offset order."""
    out: Source = defaultdict(list)
    for rec in read_all(kafka, topic, idle=1.5):
        out[rec.partition].append((rec.offset, serde.decode(rec.value)[1]))
    for events in out.values():
        events.sort(key=lambda pair: pair[0])
    return out


def deliveries(
    kafka: KafkaSettings, serde: AvroSerde, topic: str, *, expect: int | None = None
) -> list[Delivered]:
    out = []
    for rec in read_all(kafka, topic, expect=expect, idle=1.5, timeout=60):
        source = dict(rec.headers)["xhub.source"].decode()
        where, offset = source.rsplit("@", 1)
        event = serde.decode(rec.value)[1]
        out.append(
            Delivered(
                rec.partition,
                rec.offset,
                int(where.rsplit("-", 1)[1]),
                int(offset),
                event["op"],
                event["key"],
                event["seq"],
                str(event["event_id"]),
            )
        )
    return sorted(out, key=lambda d: (d.partition, d.offset))


def check_handover(source: Source, got: list[Delivered], *, state: bool = True) -> dict[int, int]:
    """Exactly the state below the handover (one op=r per live key), then every event from it, once each.

    For a subscription without a row filter every source event yields a delivery, so the handover of a
    partition is the first source offset delivered as it is (or the end, when none was). Returns them.
    ``state=False``: a subscription without backfill, which gets no state rows at all.
    """
    handovers: dict[int, int] = {}
    for partition, events in source.items():
        mine = [d for d in got if d.source_partition == partition]
        live = sorted(d.source_offset for d in mine if d.op != "r")
        end = events[-1][0] + 1 if events else 0
        handover = live[0] if live else end
        last: dict[str, tuple[int, dict[str, Any]]] = {}
        for offset, event in events:
            if offset < handover:
                last[event["key"]] = (offset, event)
        expected = sorted(o for o, e in last.values() if e["op"] != "d") if state else []
        rows = sorted(d.source_offset for d in mine if d.op == "r")
        assert rows == expected, f"partition {partition}: state rows differ at handover {handover}"
        assert live == [o for o, _ in events if o >= handover], f"partition {partition}: live stream differs"
        handovers[partition] = handover
    check_order(got)
    return handovers


def check_order(got: list[Delivered]) -> None:
    """Per key, the delivery topic holds increasing seqs: the state row first, then the changes."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for d in got:
        seqs[d.key].append(d.seq)
    broken = [k for k, s in seqs.items() if s != sorted(s) or len(set(s)) != len(s)]
    assert not broken, f"{len(broken)} keys out of order, e.g. {broken[:3]}"


def check_each_once(source: Source, got: list[Delivered]) -> None:
    counts = Counter((d.source_partition, d.source_offset) for d in got)
    assert set(counts) == {(p, o) for p, events in source.items() for o, _ in events}
    assert max(counts.values()) == 1


class Stream:
    """A department changing its records: creates, updates, deletes, at a steady pace, in a thread."""

    def __init__(self, cfg: ConfigDir, registry_url: str, seed: int, *, pause: float = 0.03) -> None:
        self.publisher = Publisher(cfg, registry_url, CODE)
        self.check = RecordValidator(cfg.schemas[CODE], "case_no", "any")
        self.fake = make_faker(seed)
        self.rng = random.Random(seed)
        self.pause = pause
        self.live: dict[str, dict[str, Any]] = {}
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def one(self) -> None:
        roll = self.rng.random()
        if self.live and roll < 0.25:
            key = self.rng.choice(list(self.live))
            record = dict(self.live[key], performance_status=self.rng.choice(["全部未履行", "部分未履行"]))
            self.live[key] = record
            self.publisher.publish(record, op="u")
        elif self.live and roll < 0.35:
            key = self.rng.choice(list(self.live))
            del self.live[key]
            self.publisher.publish(None, op="d", key=key)
        else:
            record = self.check.validate(dishonest_debtor(self.fake, person(self.fake)))
            self.live[record["case_no"]] = record
            self.publisher.publish(record)
        self.sent += 1

    def burst(self, n: int) -> None:
        for _ in range(n):
            self.one()
        self.publisher.flush()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.burst(20)
            time.sleep(self.pause)

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(30)
        self.publisher.flush()
        return self.sent


def _add_subscriptions(root: Path, renames: dict[str, str], subs: list[dict[str, Any]]) -> None:
    for sub in subs:
        sub.setdefault("subscriber", renames["tax"])
        sub.setdefault("resource", CODE)
        sub.setdefault("hub", renames["pudong"])
        sub.setdefault("purpose", "backfill test")
    (root / "subscriptions" / "late.yaml").write_text(
        yaml.safe_dump({"subscriptions": subs}, allow_unicode=True), encoding="utf-8"
    )


def test_a_subscription_added_mid_stream_gets_the_state_then_every_change_once(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    process = start_hub(cfg, hub_name)
    stream = Stream(cfg, kafka_registry, seed=41)
    try:
        assert process.worker.ready.wait(30)
        stream.burst(1500)
        stream.start()
        time.sleep(0.5)
        _add_subscriptions(
            root,
            renames,
            [
                {"id": "late-debtors", "fields": ["case_no", "debtor_type", "court", "performance_status"]},
                {
                    "id": "late-changes",
                    "fields": ["case_no", "performance_status"],
                    "delivery": {"backfill": False},
                },
            ],
        )
        apply_config(root)
        wait_for(lambda: "late-debtors" in process.worker.policies.plans, what="the new policy installed")
        time.sleep(2.0)  # changes keep coming while the backfill runs
        sent = stream.finish()
        worker = process.worker

        def settled() -> bool:
            with worker.stats.lock:
                consumed = worker.stats.consumed
            progress = worker.backfills.get("late-debtors")
            return consumed >= sent and progress is not None and progress.state == "done"

        wait_for(settled, what="all consumed and the backfill done")
        progress = worker.backfills["late-debtors"]
        assert progress.total > 0
        assert progress.done == progress.total
        assert "late-changes" not in worker.backfills  # backfill: false

        serde = AvroSerde(RegistryClient(kafka_registry))
        source = source_events(kafka, serde, names.source_topic(renames["court"], CODE))
        assert sum(len(v) for v in source.values()) == sent

        late = deliveries(kafka, serde, names.delivery_topic(hub_name, "late-debtors"))
        handovers = check_handover(source, late)
        assert sum(1 for d in late if d.op == "r") > 500, "the state was not sent as op=r"
        assert any(d.op != "r" for d in late), "nothing went live"
        assert all(h > 0 for h in handovers.values())

        # backfill: false: nothing of the past, every change from its start
        changes = deliveries(kafka, serde, names.delivery_topic(hub_name, "late-changes"))
        check_handover(source, changes, state=False)

        # the subscriptions that were there: every event once, nothing replayed
        for sid in ("tax-debtors", "transport-debtors"):
            check_each_once(
                source, deliveries(kafka, serde, names.delivery_topic(hub_name, sid), expect=sent)
            )
    finally:
        stream.stop.set()
        process.close()
    assert verify_command(str(root), hub_name) == 0


def test_live_deliveries_go_on_while_a_backfill_chunk_is_stalled(
    kafka: KafkaSettings,
    demo_config: tuple[Path, dict[str, str]],
    kafka_registry: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backfill runs beside the main loop: a chunk that takes long holds up no live record."""
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    entered, go_on = threading.Event(), threading.Event()
    snapshot_chunk = Backfiller._snapshot_chunk

    def stalled(self: Backfiller, task: Any, scan: Any) -> Any:
        if not go_on.is_set():
            entered.set()
            go_on.wait(180)
        return snapshot_chunk(self, task, scan)

    monkeypatch.setattr(Backfiller, "_snapshot_chunk", stalled)
    process = start_hub(cfg, hub_name)
    stream = Stream(cfg, kafka_registry, seed=43)
    worker = process.worker

    def delivered(sid: str) -> int:
        with worker.stats.lock:  # no entry yet: nothing delivered (the stalled backfill counted nothing)
            counts = worker.stats.subscriptions.get(sid)
            return 0 if counts is None else counts.delivered

    try:
        assert worker.ready.wait(30)
        stream.burst(1000)
        _add_subscriptions(
            root,
            renames,
            [{"id": "late-debtors", "fields": ["case_no", "debtor_type", "performance_status"]}],
        )
        apply_config(root)
        wait_for(entered.is_set, timeout=60, what="a backfill chunk under way")
        before = delivered("tax-debtors")
        stream.burst(300)  # live changes while the backfill's chunk stands still
        wait_for(
            lambda: delivered("tax-debtors") >= before + 300, what="live deliveries past the stalled chunk"
        )
        assert worker.backfills["late-debtors"].state != "done"
        assert delivered("late-debtors") == 0
        go_on.set()
        stream.start()  # steady changes: the backfill still catches up and hands over, while they go on
        # a finished backfill stays as "done" (its entry vanished once when the task looked mid-handover)
        wait_for(
            lambda: getattr(worker.backfills.get("late-debtors"), "state", None) == "done",
            timeout=120,
            what="backfill done",
        )
        sent = stream.finish()

        def consumed() -> bool:
            with worker.stats.lock:
                return worker.stats.consumed >= sent

        wait_for(consumed, what="every change consumed")
        serde = AvroSerde(RegistryClient(kafka_registry))
        source = source_events(kafka, serde, names.source_topic(renames["court"], CODE))
        assert sum(len(v) for v in source.values()) == sent
        late = deliveries(kafka, serde, names.delivery_topic(hub_name, "late-debtors"))
        check_handover(source, late)
        check_each_once(
            source, deliveries(kafka, serde, names.delivery_topic(hub_name, "tax-debtors"), expect=sent)
        )
    finally:
        go_on.set()
        stream.stop.set()
        process.close()
    assert verify_command(str(root), hub_name) == 0


def _committed_backfills(kafka: KafkaSettings, hub: str) -> list[Backfilling]:
    """The backfills under way, as the hub's state store changelog has them (committed entries only)."""
    latest: dict[bytes, Backfilling | None] = {}
    for rec in read_to_end(kafka, names.state_topic(hub)):
        entry = decode(rec.key, rec.value)
        if isinstance(entry, HandoverEntry):
            h = entry.handover
            latest[rec.key] = h if isinstance(h, Backfilling) else None
    return [h for h in latest.values() if h is not None]


def test_sigkill_during_backfill_neither_duplicates_nor_skips(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str, tmp_path: Path
) -> None:
    root, renames = demo_config
    hubs = yaml.safe_load((root / "hubs.yaml").read_text(encoding="utf-8"))
    for hub in hubs["hubs"]:
        hub["batch_max_records"] = 25  # small backfill chunks: many transactions to kill in between
    (root / "hubs.yaml").write_text(yaml.safe_dump(hubs, allow_unicode=True), encoding="utf-8")
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    stream = Stream(cfg, kafka_registry, seed=42, pause=0.1)
    stream.burst(3000)  # there before the hub's first start: every subscription is backfilled
    env = {**os.environ, "XHUB_LOG_LEVEL": "INFO", "XHUB_STATE_DIR": str(tmp_path / "state")}
    cmd = [sys.executable, "-m", "hub.cli", "run", str(root), "--hub", hub_name]

    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / "hub.log").open("ab") as log:  # kept for a failure's story
            return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)

    proc = start()
    stream.start()
    mid_backfill_kills = 0
    try:
        # the hub's first start (slow on a busy machine): its backfills show in the state changelog
        wait_for(lambda: bool(_committed_backfills(kafka, hub_name)), timeout=120, what="the backfills begun")
        for _ in range(2):
            before = {h.position for h in _committed_backfills(kafka, hub_name)}

            def moved(before: set[int] = before) -> bool:
                now = _committed_backfills(kafka, hub_name)
                return any(h.position not in before and 0 < h.position < h.snapshot_end for h in now)

            try:
                wait_for(moved, timeout=30, what="backfill progress")
            except AssertionError:
                break  # the backfill finished before this kill
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if any(h.position < h.snapshot_end for h in _committed_backfills(kafka, hub_name)):
                mid_backfill_kills += 1
            proc = start()
        sent = stream.finish()
        wait_for(lambda: not _committed_backfills(kafka, hub_name), timeout=60, what="backfills done")
        serde = AvroSerde(RegistryClient(kafka_registry))
        source = source_events(kafka, serde, names.source_topic(renames["court"], CODE))
        assert sum(len(v) for v in source.values()) == sent
        for sid in ("tax-debtors", "housing-debtors", "transport-debtors"):
            topic = names.delivery_topic(hub_name, sid)
            got = deliveries(kafka, serde, topic)
            assert sum(1 for d in got if d.op == "r") > 1000  # the state the hub found at its first start
            check_handover(source, got)
        # filtered: no check of the state rows, but never twice
        lujiazui = deliveries(kafka, serde, names.delivery_topic(hub_name, "lujiazui-debtors"))
        assert max(Counter((d.source_partition, d.source_offset) for d in lujiazui).values()) == 1
        check_order(lujiazui)
    finally:
        stream.stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert mid_backfill_kills >= 1, "no kill landed during a backfill"
    assert verify_command(str(root), hub_name) == 0


def test_the_handover_state_round_trips_through_the_changelog() -> None:
    tp = TopicPartition("xhub.src.court.pd-crd-0001", 2)
    for entry in (
        HandoverEntry(tp, "a", Live(120)),
        HandoverEntry(tp, "b", Backfilling(100, 40)),
        HandoverEntry(tp, "c", None),
        HeldEntry(tp, "d", bytes(range(16)), held=True),
        HeldEntry(tp, "d", bytes(range(16)), held=False),
    ):
        key, value = encode(entry)
        assert decode(key, value) == entry
    assert decode(b"written by another tool", b"1") is None
    # The committed offsets carry only the audit anchor now; older metadata with "subs" is still read.
    text = encode_metadata(["xhub-hub-pudong-0", 7, "ab" * 32])
    assert decode_metadata(text) == ({}, ["xhub-hub-pudong-0", 7, "ab" * 32])
    old = '{"v":1,"subs":{"a":120,"b":[100,40]}}'
    assert decode_metadata(old) == ({"a": Live(120), "b": Backfilling(100, 40)}, None)
    assert decode_metadata(None) == ({}, None)
    assert decode_metadata("written by another tool") == ({}, None)
    assert establish(0, 0, backfill=True) == Live(0)  # nothing before: live at once
    assert establish(50, 10, backfill=True) == Backfilling(50, 10)
    assert establish(50, 10, backfill=False) == Live(50)
