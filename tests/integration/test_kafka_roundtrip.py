"""Foundation: a real broker takes Avro records from kafka-python and gives them back to a consumer group."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import fastavro
from kafka import TopicPartition

from hub.core.kafka import ensure_topics, make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Ping",
        "namespace": "xhub.test",
        "fields": [{"name": "n", "type": "int"}, {"name": "text", "type": "string"}],
    }
)


def _encode(record: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, SCHEMA, record)
    return buf.getvalue()


def _decode(data: bytes) -> dict[str, object]:
    return fastavro.schemaless_reader(io.BytesIO(data), SCHEMA, SCHEMA)  # type: ignore[return-value]


def test_avro_roundtrip_through_consumer_group(
    kafka: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    topic, group = unique_name("t"), unique_name("g")
    admin = make_admin(kafka)
    assert ensure_topics(admin, {topic: {}}, partitions=3) == [topic]
    assert ensure_topics(admin, {topic: {}}, partitions=3) == []  # idempotent
    admin.close()

    sent = [{"n": i, "text": f"记录 {i}"} for i in range(50)]
    producer = make_producer(kafka, "test")
    for rec in sent:
        producer.send(topic, key=str(rec["n"]).encode(), value=_encode(rec))
    producer.flush()
    producer.close()

    consumer = make_consumer(kafka, "test", group_id=group)
    consumer.subscribe([topic])
    got: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(_decode(r.value) for r in records)
    consumer.commit()
    assignment = consumer.assignment()
    committed = sum(consumer.committed(tp) or 0 for tp in assignment)
    consumer.close()

    assert sorted(got, key=lambda r: r["n"]) == sent  # type: ignore[arg-type, return-value]
    assert {tp.topic for tp in assignment} == {topic}
    assert committed == len(sent)

    # A new member of the same group starts from the committed offsets: nothing left to read.
    again = make_consumer(kafka, "test", group_id=group)
    again.assign([TopicPartition(topic, p) for p in range(3)])
    assert sum(again.position(TopicPartition(topic, p)) for p in range(3)) == len(sent)
    again.close()
