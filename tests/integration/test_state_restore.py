"""The state store on a real broker: a hub killed in the middle of restoring its store from the changelog
(on a machine without its local files) and restarted loses nothing and repeats nothing downstream, for
unfiltered and filtered subscriptions alike."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from hub.core import names
from hub.core.kafka import make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.engine.handover import Live
from hub.engine.state.changelog import HandoverEntry, HeldEntry, decode, encode
from tests.fixtures.hubkit import apply_config, read_to_end, wait_for
from tests.integration.test_backfill import (
    CODE,
    Delivered,
    Source,
    Stream,
    check_handover,
    check_order,
    deliveries,
    source_events,
)

FILLER = 90_000  # changelog entries of another resource's partitions: the restore reads past them
OTHER_TOPIC = "xhub.src.other.pd-oth-0001"


def fill_changelog(kafka: KafkaSettings, hub: str) -> None:
    """State entries of partitions of another resource, as a hub serving many resources has them."""
    producer = make_producer(kafka, "test-state-filler", transactional_id=f"test-state-filler-{hub}")
    producer.init_transactions()
    topic = names.state_topic(hub)
    for start in range(0, FILLER, 10_000):  # transactions well inside their timeout on a busy machine
        producer.begin_transaction()
        for i in range(start, min(FILLER, start + 10_000)):
            tp = TopicPartition(OTHER_TOPIC, i % 3)
            key, value = encode(HeldEntry(tp, "other-subscription", i.to_bytes(16, "big"), held=True))
            producer.send(topic, key=key, value=value, partition=i % 3)
        producer.commit_transaction()
    producer.close()


def store_progress(state_dir: Path) -> list[int]:
    """The checkpoint of every store file written so far (read beside the running hub: WAL mode)."""
    out = []
    for path in state_dir.rglob("*.sqlite"):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
            try:
                row = db.execute("SELECT next_offset FROM checkpoint WHERE id = 0").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            continue
        out.append(int(row[0]) if row else 0)
    return out


def changelog_ends(kafka: KafkaSettings, hub: str) -> int:
    consumer = make_consumer(kafka, "test-state-ends", group_id=None)
    try:
        topic = names.state_topic(hub)
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return min(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def live_everywhere(kafka: KafkaSettings, hub: str) -> bool:
    """Every subscription of the demo's debtor list is live on every source partition (changelog)."""
    latest: dict[bytes, bool] = {}
    for rec in read_to_end(kafka, names.state_topic(hub)):
        entry = decode(rec.key, rec.value)
        if isinstance(entry, HandoverEntry) and entry.tp.topic != OTHER_TOPIC:
            latest[rec.key] = isinstance(entry.handover, Live)
    return len(latest) >= 4 * 3 and all(latest.values())


def view_of(got: list[Delivered]) -> set[str]:
    """The keys a subscriber holds after applying ``got`` in order (the sink's rule)."""
    held: dict[str, int] = {}
    for d in sorted(got, key=lambda d: (d.partition, d.offset)):
        if d.op == "d":
            held.pop(d.key, None)
        else:
            held[d.key] = d.seq
    return set(held)


def test_sigkill_during_a_restore_neither_loses_nor_repeats(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str, tmp_path: Path
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub = renames["pudong"]
    stream = Stream(cfg, kafka_registry, seed=97, pause=0.5)
    stream.burst(1500)
    cmd = [sys.executable, "-m", "hub.cli", "run", str(root), "--hub", hub]

    def start(state_dir: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, "XHUB_LOG_LEVEL": "INFO", "XHUB_STATE_DIR": str(state_dir)}
        with (state_dir.parent / f"{state_dir.name}.log").open("ab") as log:  # kept for a failure's story
            return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)

    proc = start(tmp_path / "machine-1")
    mid_restore_kills = 0
    try:
        wait_for(lambda: live_everywhere(kafka, hub), timeout=240, what="the first backfills done")
        stream.start()
        fill_changelog(kafka, hub)
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for attempt in range(3):  # a new machine: nothing local, the store comes from the changelog
            fresh = tmp_path / f"machine-{attempt + 2}"
            end = changelog_ends(kafka, hub)
            proc = start(fresh)

            def restoring(fresh: Path = fresh, end: int = end) -> bool:
                return any(0 < at < end for at in store_progress(fresh))

            try:
                wait_for(restoring, timeout=180, what="a restore under way")
            except AssertionError:
                proc.send_signal(signal.SIGKILL)  # it was done before we looked: try another machine
                proc.wait()
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if any(0 < at < end for at in store_progress(fresh)):
                mid_restore_kills += 1
            break
        proc = start(fresh)  # the same machine again: the restore resumes from its checkpoint
        sent = stream.finish()
        serde = AvroSerde(RegistryClient(kafka_registry))
        source: Source = source_events(kafka, serde, names.source_topic(renames["court"], CODE))
        assert sum(len(v) for v in source.values()) == sent

        def all_delivered(check: Callable[[], Any]) -> Callable[[], bool]:
            def ok() -> bool:
                try:
                    check()
                except AssertionError:
                    return False
                return True

            return ok

        for sid in ("tax-debtors", "transport-debtors"):
            topic = names.delivery_topic(hub, sid)
            wait_for(
                all_delivered(lambda topic=topic: check_handover(source, deliveries(kafka, serde, topic))),
                timeout=300,  # a busy machine: the restore, then the backlog the stream left meanwhile
                what=f"{sid} complete",
            )
        # filtered: never twice, in order, and the view holds exactly the keys in scope
        lujiazui = deliveries(kafka, serde, names.delivery_topic(hub, "lujiazui-debtors"))
        assert len({(d.source_partition, d.source_offset) for d in lujiazui}) == len(lujiazui)
        check_order(lujiazui)
        plan_key = _delivered_key(cfg, hub)
        in_scope = {
            plan_key(event["key"])
            for events in source.values()
            for event in _last_per_key(events).values()
            if event["op"] != "d" and event["data"]["district"] == "浦东新区"
        }
        assert view_of(lujiazui) == in_scope
    finally:
        stream.stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert mid_restore_kills >= 1, "no kill landed during a restore"


def _last_per_key(events: list[tuple[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for _, event in events:
        last[event["key"]] = event
    return last


def _delivered_key(cfg: Any, hub: str) -> Callable[[str], str]:
    from hub.config.secrets import hub_secret
    from hub.engine.policy_set import policy_set_of_config

    plan = policy_set_of_config(cfg, hub, secret=hub_secret(cfg, hub)).plans["lujiazui-debtors"]
    return plan.delivered_key
