"""No cap on subscriptions: 160 subscriptions of one resource on one hub all get their backfill and their
live records (the handover state used to live in the committed offsets' 4 KB metadata, which held back
every subscription past ~150)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from kafka import TopicPartition

from hub.app import start_hub
from hub.core import names
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from tests.fixtures.hubkit import apply_config, wait_for
from tests.integration.test_backfill import (
    CODE,
    Delivered,
    Stream,
    _add_subscriptions,
    check_handover,
    source_events,
)

READERS = 160


def reader(i: int) -> str:
    return f"subdistrict-office-reader-{i:03d}"


def read_many(kafka: KafkaSettings, serde: AvroSerde, topics: list[str]) -> dict[str, list[Delivered]]:
    """Every committed record of ``topics`` with one consumer, until 3 s without anything new."""
    consumer = make_consumer(kafka, "test-many-reader", group_id=None, max_poll_records=5000)
    out: dict[str, list[Delivered]] = defaultdict(list)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        last_new = time.monotonic()
        while time.monotonic() - last_new < 3.0:
            for records in consumer.poll(timeout_ms=300).values():
                last_new = time.monotonic()
                for rec in records:
                    where, offset = dict(rec.headers)["xhub.source"].decode().rsplit("@", 1)
                    event = serde.decode(rec.value)[1]
                    out[rec.topic].append(
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
    finally:
        consumer.close()
    return {t: sorted(got, key=lambda d: (d.partition, d.offset)) for t, got in out.items()}


def test_more_than_150_subscriptions_of_one_resource_all_get_state_and_live_records(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    subs = [
        {"id": reader(i), "fields": ["case_no", "performance_status"], "delivery": {"partitions": 1}}
        for i in range(READERS)
    ]
    _add_subscriptions(root, renames, subs)
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    stream = Stream(cfg, kafka_registry, seed=71)
    stream.burst(60)  # there before the hub starts: every subscription gets it through its backfill
    process = start_hub(cfg, hub_name, follow_config=False)
    try:
        worker = process.worker
        assert worker.ready.wait(60)

        def backfilled() -> bool:
            progress = worker.backfills
            return all(getattr(progress.get(reader(i)), "state", None) == "done" for i in range(READERS))

        wait_for(backfilled, timeout=120, what="every backfill done")
        stream.burst(30)  # live records
        sent = stream.sent

        def consumed() -> bool:
            with worker.stats.lock:
                return worker.stats.consumed >= 30

        wait_for(consumed, timeout=60, what="the live records consumed")
        with worker.stats.lock:
            assert not worker.stats.alerts, "nothing held back, nothing to alert on"
    finally:
        process.close()
    serde = AvroSerde(RegistryClient(kafka_registry))
    source = source_events(kafka, serde, names.source_topic(renames["court"], CODE))
    assert sum(len(v) for v in source.values()) == sent
    topics = [names.delivery_topic(hub_name, reader(i)) for i in range(READERS)]
    got = read_many(kafka, serde, topics)
    missing = [t for t in topics if t not in got]
    assert not missing, f"{len(missing)} subscriptions got nothing, e.g. {missing[:2]}"
    for topic in topics:
        delivered = got[topic]
        check_handover(source, delivered)
        assert sum(1 for d in delivered if d.op == "r") >= 20, topic
        assert sum(1 for d in delivered if d.op != "r") >= 30, topic
