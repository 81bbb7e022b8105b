"""A Kafka transaction that commits without its records must not count as published (issue 19).

kafka-python (3.0.x) fails a record batch that runs out of time (``delivery_timeout_ms``, e.g. while the
broker is away) with a retriable error and leaves the transaction as it was: ``flush`` returns, and
``commit_transaction`` commits the transaction without those records once the broker answers again
(seen on a real broker: the batch's events and position expired, the commit succeeded). The sidecar took
that for "published" and told the replication slot to let the WAL go; a logical slot never streams
anything before its confirmed position again, so the changes were lost for good (most likely the
broker-restart test's 18 of 1,600; that run's logs are gone). A trigger-captured source can read its
change log again; the slot cannot.

Here a real PostgreSQL slot and a real broker; the fault is exactly kafka-python's: every record of one
transaction comes back as expired, without reaching the broker, and the transaction goes on to commit.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

from connectors.testing import PgLogicalHarness, assert_exactly_once
from connectors.testing.catalog import installed_sidecar
from connectors.testing.kafka import TopicReader, events_of
from connectors.testing.records import RESOURCE, record
from connectors.testing.runtime import running_sidecar, serde_for, shared_registry, wait_for
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import position_topic, source_topic, source_transactional_id

INSERT = "INSERT INTO enrolee (id_number, name, gender, birth_date, score) VALUES (%s, %s, %s, %s, %s)"


class _ExpireOneTransaction:
    """``KafkaProducer.send`` of one transactional id, patched: once armed, every record it sends up to and
    including the next position record fails as kafka-python fails a batch that expired, and never
    reaches the broker; the transaction itself goes on (kafka-python's state does not change)."""

    def __init__(self, transactional_id: str, positions: str) -> None:
        self.transactional_id = transactional_id
        self.positions = positions
        self.armed = threading.Event()
        self.fired = threading.Event()
        self.dropped: list[str] = []

    def applies(self, producer: KafkaProducer) -> bool:
        ours = producer.config.get("transactional_id") == self.transactional_id
        return ours and self.armed.is_set() and not self.fired.is_set()

    def expire(self, topic: str) -> FutureRecordMetadata:
        self.dropped.append(topic)
        if topic == self.positions:
            self.fired.set()
        produced = FutureProduceResult(None)
        future = FutureRecordMetadata(produced, 0, -1, None, 0, 0, -1)
        produced.failure(
            KafkaTimeoutError(f"Expiring 1 record(s) for {topic}-0: 10000 ms has passed since batch creation")
        )
        return future


@pytest.fixture
def expiring(monkeypatch: pytest.MonkeyPatch) -> list[_ExpireOneTransaction]:
    """Install a fault with ``expiring.append(_ExpireOneTransaction(...))``."""
    faults: list[_ExpireOneTransaction] = []
    send = KafkaProducer.send

    def patched(producer: KafkaProducer, topic: str, *args: Any, **kwargs: Any) -> Any:
        for fault in faults:
            if fault.applies(producer):
                return fault.expire(topic)
        return send(producer, topic, *args, **kwargs)

    monkeypatch.setattr(KafkaProducer, "send", patched)
    return faults


def test_records_that_expired_in_a_committed_transaction_are_published_again(
    pg_logical_harness: PgLogicalHarness,
    kafka: KafkaSettings,
    tmp_path: Path,
    expiring: list[_ExpireOneTransaction],
) -> None:
    registry = shared_registry()
    source = pg_logical_harness.source_config("src")
    source.update(snapshot=False, batch_size=10)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    fault = _ExpireOneTransaction(source_transactional_id(dept, "src"), position_topic(dept))
    expiring.append(fault)
    topic = source_topic(dept, RESOURCE)
    dsn = str(pg_logical_harness.pg_dsn)

    def insert(conn: psycopg.Connection[Any], numbers: range) -> None:
        for n in numbers:
            rec = record(n)
            conn.execute(
                INSERT, (rec["id_number"], rec["name"], rec["gender"], rec["birth_date"], rec["score"])
            )

    with running_sidecar(config) as sidecar, psycopg.connect(dsn, autocommit=True) as conn:
        runner = sidecar.runners[0]
        reader = TopicReader(kafka, [topic], serde_for(registry.url))
        insert(conn, range(10))
        reader.read_until(lambda rs: len(rs) >= 10, timeout_s=30)
        assert len(reader.records) == 10, "the first changes are published"
        fault.armed.set()
        insert(conn, range(10, 20))  # their transaction's records expire: none reaches the broker
        assert fault.fired.wait(30), "the sidecar published the next changes"
        insert(conn, range(20, 30))
        reader.read_until(lambda rs: len(rs) >= 30, timeout_s=60)
        records = reader.read_quiet(quiet_s=1.0)
        reader.close()
        assert wait_for(lambda: runner.state == "running", timeout_s=30), runner.status()
    events = events_of(records, topic)
    assert len(fault.dropped) > 1, fault.dropped  # events and the position of one transaction
    assert sorted(e["key"] for e in events) == sorted(record(n)["id_number"] for n in range(30)), (
        f"{len(events)} events for 30 changes"
    )
    assert_exactly_once(events)
