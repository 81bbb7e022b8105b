"""SinkLoop + WebhookSink with a real broker: retries, dead letters on xhub.dlq.<dept>, group offsets."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import WebhookSink, WebhookSinkConfig
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import dead_letter_topic, delivery_topic
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.registry.server import RegistryServer
from tests.integration.sinks_support import (
    Change,
    DeliveryProducer,
    WebApp,
    licence,
    make_topic,
    next_offsets,
    read_topic,
    wait_for,
)


def answer(body: Any, n: int) -> tuple[int, dict[str, str]]:
    key = body["key"]
    if key == "BAD":
        return 422, {}
    if key == "DOWN":
        return 503, {}
    if key == "FLAKY" and n % 2 == 0:
        return 500, {}
    return 200, {}


def run_loop(loop: SinkLoop, until: Callable[[], bool], what: str) -> None:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(until, 30, what)
    finally:
        loop.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_webhook_deliveries_retries_and_dead_letters(
    kafka: KafkaSettings, memory_registry: RegistryServer, unique_name: Callable[[str], str]
) -> None:
    topic = delivery_topic("hub1", unique_name("lic"))
    dept, group = unique_name("dept"), unique_name("g")
    make_topic(kafka, topic)
    app = WebApp(answer)
    producer = DeliveryProducer(kafka, memory_registry.url, topic)
    changes = [
        Change(k, "u", i, licence(k, i)) for i, k in enumerate(["A", "BAD", "FLAKY", "DOWN", "B", "C"], 1)
    ]
    sent = producer.send(changes)

    def make_loop() -> SinkLoop:
        sink = WebhookSink(
            WebhookSinkConfig(
                url=app.url, mode="single", max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05
            )
        )
        return SinkLoop(kafka, memory_registry.url, topic, group, sink, dept=dept, poll_timeout_ms=200)

    loop = make_loop()
    try:
        run_loop(
            loop,
            lambda: loop.dead_letters.published == 2 and len(app.ok()) == 4,
            "deliveries and dead letters",
        )
        assert sorted(r.body["key"] for r in app.ok()) == ["A", "B", "C", "FLAKY"]
        assert len([r for r in app.received if r.body["key"] == "DOWN"]) == 3

        letters = read_topic(kafka, dead_letter_topic(dept), 2)
        serde = AvroSerde(RegistryClient(memory_registry.url))
        decoded = {serde.decode(m.value)[1]["reason"]: (m, serde.decode(m.value)[1]) for m in letters}
        assert set(decoded) == {"webhook_rejected", "webhook_failed"}
        by_key = {s.change.key: s for s in sent if s.change is not None}
        for reason, key in (("webhook_rejected", "BAD"), ("webhook_failed", "DOWN")):
            message, value = decoded[reason]
            assert value["original"] == by_key[key].value  # the delivered bytes, untouched
            assert value["origin"] == f"{topic}-{by_key[key].partition}@{by_key[key].offset}"
            assert value["subscription"] == topic.rsplit(".", 1)[-1]
            assert value["resource"] == "PD-LIC-0001"
            assert dict(message.headers)["xhub.reason"] == reason.encode()
            assert message.key == key.encode()

        # At-least-once bookkeeping: the group's Kafka offsets were committed after the writes...
        consumer = make_consumer(kafka, "test-check", group_id=group)
        try:
            committed = {
                (topic, p): consumer.committed(TopicPartition(topic, p)) for _, p in next_offsets(topic, sent)
            }
        finally:
            consumer.close()
        assert committed == next_offsets(topic, sent)

        # ...so a restarted loop in the same group sends only what is new.
        before = len(app.received)
        producer.send([Change("D", "u", 7, licence("D", 7))])
        again = make_loop()
        run_loop(again, lambda: any(r.body["key"] == "D" for r in app.ok()), "the new change after a restart")
        assert [r.body["key"] for r in app.received[before:]] == ["D"]
    finally:
        producer.close()
        app.close()
