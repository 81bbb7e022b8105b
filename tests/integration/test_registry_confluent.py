"""Stock Confluent tooling against the built-in registry, through real Kafka.

A message the project encodes (AvroSerde, Confluent wire format) and produces with kafka-python is consumed
back and decoded by confluent-kafka's SchemaRegistryClient + AvroDeserializer pointed at the built-in
registry; and the other way round, confluent-kafka's AvroSerializer registers and encodes, the project
decodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from kafka import TopicPartition

from hub.core.kafka import ensure_topics, make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.registry.server import RegistryServer
from hub.registry.store import SchemaStore

PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.xhub",
    "fields": [
        {"name": "id_number", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "phone", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["ACTIVE", "MOVED"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}
RECORDS = [
    {
        "id_number": "110101199003074514",
        "name": "张三",
        "age": 34,
        "phone": None,
        "status": "ACTIVE",
        "tags": [],
    },
    {
        "id_number": "440301198512120025",
        "name": "李四",
        "age": 39,
        "phone": "13800138000",
        "status": "MOVED",
        "tags": ["户籍", "社保"],
    },
]


@pytest.fixture
def server(kafka: KafkaSettings, unique_name: Callable[[str], str]) -> Iterator[RegistryServer]:
    store = SchemaStore(kafka, unique_name("_xhub_schemas"), timeout=20)
    store.start()
    srv = RegistryServer(store)
    srv.start()
    yield srv
    srv.stop()
    store.stop()


def produce_and_consume(kafka: KafkaSettings, topic: str, values: list[bytes]) -> list[bytes]:
    """Send values through a real topic with kafka-python and read them back."""
    admin = make_admin(kafka)
    ensure_topics(admin, {topic: {}}, partitions=1)
    admin.close()
    producer = make_producer(kafka, "registry-test")
    for value in values:
        producer.send(topic, key=b"k", value=value)
    producer.flush()
    producer.close()

    consumer = make_consumer(kafka, "registry-test", group_id=None)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < len(values) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=300).values():
            got.extend(r.value for r in records)
    consumer.close()
    return got


def test_confluent_deserializer_reads_a_project_written_message(
    kafka: KafkaSettings, unique_name: Callable[[str], str], server: RegistryServer
) -> None:
    topic = unique_name("people")
    serde = AvroSerde(RegistryClient(server.url))
    sent = [serde.encode(f"{topic}-value", PERSON, record) for record in RECORDS]

    received = produce_and_consume(kafka, topic, sent)
    assert received == sent

    confluent = SchemaRegistryClient({"url": server.url})
    deserializer = AvroDeserializer(confluent)
    context = SerializationContext(topic, MessageField.VALUE)
    decoded: list[Any] = [deserializer(value, context) for value in received]
    assert decoded == RECORDS

    # the rest of what a stock client reads agrees too
    latest = confluent.get_latest_version(f"{topic}-value")
    assert latest.schema_id == 1
    assert latest.version == 1
    assert json.loads(latest.schema.schema_str or "null") == PERSON
    assert confluent.get_subjects() == [f"{topic}-value"]
    assert confluent.get_compatibility() == "BACKWARD"


def test_project_reads_a_confluent_written_message(
    kafka: KafkaSettings, unique_name: Callable[[str], str], server: RegistryServer
) -> None:
    topic = unique_name("people")
    confluent = SchemaRegistryClient({"url": server.url})
    serializer = AvroSerializer(
        confluent, json.dumps(PERSON)
    )  # registers through POST /subjects/{s}/versions
    context = SerializationContext(topic, MessageField.VALUE)
    sent = [serializer(record, context) for record in RECORDS]
    assert all(isinstance(v, bytes) for v in sent)

    received = produce_and_consume(kafka, topic, [v for v in sent if v is not None])
    serde = AvroSerde(RegistryClient(server.url))
    assert [serde.decode(value) for value in received] == [(1, r) for r in RECORDS]


def test_confluent_client_sees_compatibility_refusals(server: RegistryServer) -> None:
    confluent = SchemaRegistryClient({"url": server.url})
    confluent.register_schema("p-value", Schema(json.dumps(PERSON), "AVRO"))
    breaking = {**PERSON, "fields": [*PERSON["fields"], {"name": "email", "type": "string"}]}
    assert confluent.test_compatibility("p-value", Schema(json.dumps(breaking), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as caught:
        confluent.register_schema("p-value", Schema(json.dumps(breaking), "AVRO"))
    assert caught.value.http_status_code == 409
    assert caught.value.error_code == 409
    assert 'field "email"' in caught.value.error_message
    answer: Any = confluent.set_compatibility("p-value", "NONE")  # typed str, returns the response body
    assert answer == {"compatibility": "NONE"}
    assert confluent.get_compatibility("p-value") == "NONE"
    assert confluent.register_schema("p-value", Schema(json.dumps(breaking), "AVRO")) == 2
