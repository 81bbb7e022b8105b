"""A producer closed while records are still pending must end closed, or its garbage collection warns.

kafka-python's ``close`` flushes first and raises when the flush times out (a broker gone, or a short
timeout), and then the producer is still open: the ``__del__`` that runs whenever it is dropped closes it
again, waits once more and reports an exception nobody can catch (CI showed it in the broker restart test:
"Exception ignored in KafkaProducer.__del__ … Timeout waiting for future"). ``close_producer`` closes
without raising and leaves nothing to close. The pending record is made with a long linger, so the
flush cannot finish within a zero timeout: the real client, no stand-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from hub.core.kafka import close_producer, ensure_topics, make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings


@pytest.fixture
def topic(kafka: KafkaSettings, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("xhub-test-close")
    admin = make_admin(kafka)
    ensure_topics(admin, {name: {}}, partitions=1)
    yield name
    admin.delete_topics([name])
    admin.close()


def _pending(kafka: KafkaSettings, topic: str) -> KafkaProducer:
    """A producer holding one record it will not send for a minute (linger), its metadata known."""
    producer = make_producer(kafka, "test-close", linger_ms=60_000)
    producer.partitions_for(topic)
    producer.send(topic, key=b"k", value=b"v")
    return producer


def test_kafka_python_close_that_times_out_leaves_the_producer_open(kafka: KafkaSettings, topic: str) -> None:
    """The defect's cause, shown on the real client: open after its close, its network thread running,
    so its ``__del__`` closes it again later (and, with the broker gone, times out where nobody catches)."""
    producer = _pending(kafka, topic)
    with pytest.raises(KafkaTimeoutError):
        producer.close(timeout=0)
    assert not producer._closed
    assert producer._sender.is_alive()
    close_producer(producer)


def test_close_producer_with_a_record_pending_leaves_nothing_to_close(
    kafka: KafkaSettings, topic: str
) -> None:
    producer = _pending(kafka, topic)
    close_producer(producer, timeout_s=0)  # does not raise
    assert producer._closed, "left open: its __del__ would close it again"
    assert not producer._sender.is_alive(), "the producer's network thread still runs"
