"""A transaction one of whose records was never written must not commit (issue 18), on a real broker.

``make chaos`` lost a contiguous range of the court's rows (rows 205-409 when the source partition's
leader was SIGKILLed, rows 220-224 and, reproduced, rows 212-414 when the hub's transaction coordinator
was) while the court's sidecar logged no failed transaction; the rows were missing from the source topic
itself (read_committed), so the hub never had them. kafka-python 3.0.x fails a produce batch that ran out
of delivery time with a *retriable* error (KafkaTimeoutError "Expiring N record(s)") without marking the
transaction failed (``TransactionManager.classify_batch_error`` -> RETRIABLE -> no state change), so
``commit_transaction`` commits what did get through, or only the markers, and the sidecar's publisher
(flush, commit; its futures unread) went on past the rows. A broker's death holds batches back: every
batch waits until the transaction coordinator has added its partition to the transaction, a batch for a
partition whose leader died waits for the new leader, and the sidecar's delivery timeout is 10 s. The
Java producer makes such a transaction abortable; so does hub.core.kafka now (``TransactionalProducer``,
``commit_transaction_within``).

The tests lose the produce requests of one topic on their way, as a request to a killed leader is: the
batch stays in flight until its delivery timeout expires it: the same expiry, the same commit.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from connectors.errors import PublishFailed
from connectors.runtime.positions import read_position
from connectors.runtime.publisher import OutRecord, TransactionalPublisher
from hub.core.kafka import abort_transaction_within, commit_transaction_within, make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from tests.fixtures.hubkit import read_all

DELIVERY_TIMEOUT_MS = 6_000  # the lost batch expires after this (the sidecar's is 10 s; > its 5 s requests)


def _topics(kafka: KafkaSettings, *names: str) -> None:
    admin = make_admin(kafka, "test-lost-send-admin")
    try:
        admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        admin.close()


def _lose_produce_requests(producer: KafkaProducer, topic: str) -> list[int]:
    """From now on the produce requests for ``topic`` never reach the broker (their batches stay in
    flight until the delivery timeout expires them); returns the record counts lost, as they go."""
    sender: Any = producer._sender
    create = sender._create_produce_requests
    lost: list[int] = []

    def without_topic(batches_by_node: dict[int, list[Any]]) -> Any:
        for node, batches in list(batches_by_node.items()):
            lost.extend(b.record_count for b in batches if b.topic_partition.topic == topic)
            kept = [b for b in batches if b.topic_partition.topic != topic]
            if kept:
                batches_by_node[node] = kept
            else:
                del batches_by_node[node]
        return create(batches_by_node)

    sender._create_produce_requests = without_topic
    return lost


def _values(kafka: KafkaSettings, topic: str) -> list[bytes]:
    return [r.value for r in read_all(kafka, topic, idle=1.5)]


def test_a_transaction_with_a_lost_send_does_not_commit(kafka: KafkaSettings, unique_name: Any) -> None:
    rows, positions = unique_name("rows"), unique_name("positions")
    _topics(kafka, rows, positions)
    producer = make_producer(
        kafka,
        "test-lost-send",
        transactional_id=unique_name("txn"),
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        request_timeout_ms=5_000,
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(rows, value=b"row 1")
        producer.send(positions, value=b"position 0")
        producer.flush()
        commit_transaction_within(producer, 30)
        lost = _lose_produce_requests(producer, rows)
        producer.begin_transaction()
        row = producer.send(rows, value=b"row 2")
        producer.send(positions, value=b"position 1")
        producer.flush()
        assert lost == [1], "the injection did not lose the row's produce request"
        assert row.failed()
        refused: KafkaError | None = None
        try:
            commit_transaction_within(producer, 30)
        except KafkaError as exc:
            refused = exc
            abort_transaction_within(producer, 30)
    finally:
        producer.close(timeout=2)
    # Committed: the first transaction whole and nothing of the second. Before the fix the commit went
    # through and "position 1" was there without its row: the row lost for good.
    assert (_values(kafka, positions), _values(kafka, rows)) == ([b"position 0"], [b"row 1"])
    assert refused is not None
    assert "not written" in str(refused)


def test_the_sidecar_publishes_rows_again_when_a_send_of_theirs_was_lost(
    kafka: KafkaSettings, unique_name: Any
) -> None:
    """The court sidecar's publisher: rows and position in one transaction. A lost send of the rows must
    fail the publish (the runtime reopens and publishes them again from the committed position), never
    commit the position past rows that were not written."""
    rows, positions = unique_name("src"), unique_name("pos")
    _topics(kafka, rows, positions)
    publisher = TransactionalPublisher(
        kafka,
        transactional_id=unique_name("txn"),
        position_topic=positions,
        position_key="debtors",
        written_topics=[rows],
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
    )
    try:
        assert publisher.open() is None
        publisher.commit([OutRecord(rows, b"r1", b"row 1")], {"at": 1})
        assert publisher._producer is not None
        lost = _lose_produce_requests(publisher._producer, rows)
        with pytest.raises(PublishFailed, match="not written"):
            publisher.commit([OutRecord(rows, b"r2", b"row 2"), OutRecord(rows, b"r3", b"row 3")], {"at": 3})
        assert lost, "the injection did not lose the rows' produce request"
        # The runtime's next step: open again (fencing, aborting), resume from the committed position.
        resumed = publisher.open()
        assert resumed is not None
        assert resumed["at"] == 1  # before the fix {"at": 3}: rows 2 and 3 never written
        publisher.commit([OutRecord(rows, b"r2", b"row 2"), OutRecord(rows, b"r3", b"row 3")], {"at": 3})
    finally:
        publisher.close()
    assert _values(kafka, rows) == [b"row 1", b"row 2", b"row 3"]
    position = read_position(kafka, positions, "debtors", client_id="test-lost-send-pos")
    assert position is not None
    assert position["at"] == 3
