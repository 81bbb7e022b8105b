"""SinkLoop + SqlSink with a real broker, a real memory_registry server and real SQLite / PostgreSQL."""

from __future__ import annotations

import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable

from pydantic import SecretStr

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import SqlSink, SqlSinkConfig
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import dead_letter_topic, delivery_topic
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.registry.server import RegistryServer
from tests.integration.sinks_support import (
    EVENT_V2,
    Change,
    DeliveryProducer,
    Sent,
    TcpProxy,
    expected_rows,
    fetch,
    licence,
    make_topic,
    next_offsets,
    read_topic,
    wait_for,
)

OTHER = {
    "type": "record",
    "name": "Other",
    "namespace": "gov.xhub.test",
    "fields": [{"name": "x", "type": "int"}],
}


class Running:
    """A SinkLoop on a thread; ``stop`` joins it and re-raises what it raised."""

    def __init__(self, loop: SinkLoop) -> None:
        self.loop = loop
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.loop.run()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "sink loop did not stop"
        if self.error is not None:
            raise self.error


def sql_loop(
    kafka: KafkaSettings, memory_registry: RegistryServer, topic: str, group: str, dsn: str, *, dept: str
) -> SinkLoop:
    sink = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="licences", applied_log_table="applied"))
    return SinkLoop(
        kafka,
        memory_registry.url,
        topic,
        group,
        sink,
        dept=dept,
        poll_timeout_ms=200,
        retry_initial_s=0.1,
        retry_max_s=1.0,
    )


def caught_up(dsn: str, topic: str, sent: list[Sent]) -> Callable[[], bool]:
    want = next_offsets(topic, sent)

    def check() -> bool:
        probe = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="licences"))
        try:
            return probe.committed_offsets(want) == want
        finally:
            probe.close()

    return check


def assert_table_matches(dsn: str, changes: list[Change]) -> None:
    rows = {r[0]: r[1:] for r in fetch(dsn, "SELECT xhub_key, _xhub_seq, holder FROM licences")}
    expected = expected_rows(changes)
    assert set(rows) == set(expected)
    for key, change in expected.items():
        assert change.data is not None
        assert rows[key] == (change.seq, change.data["holder"]), key


def assert_each_applied_once(dsn: str, topic: str, sent: list[Sent]) -> None:
    counts = Counter(fetch(dsn, 'SELECT topic, partition, "offset" FROM applied'))
    expected = {(topic, s.partition, s.offset) for s in sent if s.change is not None}
    assert set(counts) == expected
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]


def test_loop_applies_deliveries_exactly_once_and_resumes_from_the_database(
    kafka: KafkaSettings, memory_registry: RegistryServer, dsn: str, unique_name: Callable[[str], str]
) -> None:
    topic = delivery_topic("hub1", unique_name("lic"))
    dept = unique_name("dept")
    make_topic(kafka, topic)
    producer = DeliveryProducer(kafka, memory_registry.url, topic)
    first = [
        Change("L1", "c", 1, licence("L1", 1)),
        Change("L2", "c", 2, licence("L2", 2)),
        Change("L3", "c", 4, licence("L3", 4)),
        Change("L4", "u", 5, licence("L4", 5)),
        Change("L5", "d", 10),
        Change("L6", "r", 6, licence("L6", 6)),
    ]
    second = [
        Change("L1", "u", 3, licence("L1", 3)),
        Change("L3", "d", 5),
        Change("L4", "u", 3, licence("L4", 3)),  # older than seq 5: ignored
        Change("L5", "c", 8, licence("L5", 8)),  # older than the delete: must not resurrect L5
        Change("L2", "u", 9, licence("L2", 9)),
    ]
    sent = producer.send(first)
    running = Running(sql_loop(kafka, memory_registry, topic, unique_name("g"), dsn, dept=dept))
    try:
        wait_for(caught_up(dsn, topic, sent), 30, "first batch applied")
        not_an_event = producer.serde.encode("some-other-value", OTHER, {"x": 1})
        sent += producer.send(second, raw=[(b"L9", b"not a framed value"), (b"L10", not_an_event)])
        wait_for(caught_up(dsn, topic, sent), 30, "second batch applied")
    finally:
        running.stop()
    assert_table_matches(dsn, first + second)
    stats = running.loop.stats
    assert stats.dead_lettered == 2
    assert stats.consumed == stats.written + stats.dead_lettered + stats.skipped == 13

    # What could not be decoded went to the department's dead-letter topic, bytes intact.
    serde = AvroSerde(RegistryClient(memory_registry.url))
    letters = {
        serde.decode(m.value)[1]["reason"]: (m, serde.decode(m.value)[1])
        for m in read_topic(kafka, dead_letter_topic(dept), 2)
    }
    assert set(letters) == {"bad_wire_format", "not_a_change_event"}
    message, value = letters["bad_wire_format"]
    assert value["original"] == b"not a framed value"
    assert value["origin"].startswith(f"{topic}-")
    assert value["owner"] == dept
    assert dict(message.headers)["xhub.reason"] == b"bad_wire_format"
    message, value = letters["not_a_change_event"]
    assert value["original"] == not_an_event
    assert "not a change event" in value["detail"]

    # Restart with a NEW consumer group (no Kafka offsets at all): the database's offsets decide, so
    # nothing is applied twice. The new change carries a schema with one more field.
    third = [Change("L1", "u", 20, licence("L1", 20, note="新备注"), schema=EVENT_V2)]
    sent += producer.send(third)
    producer.close()
    running = Running(sql_loop(kafka, memory_registry, topic, unique_name("g2"), dsn, dept=dept))
    try:
        wait_for(caught_up(dsn, topic, sent), 30, "third batch applied after restart")
    finally:
        running.stop()
    assert running.loop.stats.consumed == 1
    assert_table_matches(dsn, first + second + third)
    assert fetch(dsn, "SELECT note FROM licences WHERE xhub_key = 'L1'") == [("新备注",)]
    assert_each_applied_once(dsn, topic, sent)


def test_loop_rides_out_a_database_outage(
    kafka: KafkaSettings, memory_registry: RegistryServer, pg_database: str, unique_name: Callable[[str], str]
) -> None:
    parts = urllib.parse.urlsplit(pg_database)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    topic = delivery_topic("hub1", unique_name("lic"))
    make_topic(kafka, topic)
    producer = DeliveryProducer(kafka, memory_registry.url, topic)
    changes = [Change(f"K{i % 7}", "u", i, licence(f"K{i % 7}", i)) for i in range(1, 21)]
    sent = producer.send(changes[:10])
    loop = sql_loop(kafka, memory_registry, topic, unique_name("g"), proxied, dept=unique_name("dept"))
    running = Running(loop)
    try:
        wait_for(caught_up(pg_database, topic, sent), 30, "first half applied")
        proxy.down()
        sent += producer.send(changes[10:])
        wait_for(lambda: loop.stats.retries >= 3, 30, "retries during the outage")
        assert running.thread.is_alive()
        proxy.up()
        wait_for(caught_up(pg_database, topic, sent), 30, "second half applied after the outage")
    finally:
        running.stop()
        proxy.close()
        producer.close()
    assert_table_matches(pg_database, changes)
    assert_each_applied_once(pg_database, topic, sent)
