"""The bookkeeping of hub.core.kafka.TransactionalProducer: a failed send of the open transaction stops
its commit; one of an earlier transaction does not (issue 18; the real-broker tests are in
tests/integration/test_transaction_lost_send.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError

from hub.core.kafka import TransactionalProducer, UnwrittenRecordsError


def _producer(transaction: int = 1) -> Any:
    """Without a broker: the state ``begin_transaction`` leaves, and a flush with nothing in flight."""
    producer: Any = TransactionalProducer.__new__(TransactionalProducer)
    producer._transaction = transaction
    producer._unwritten = []
    producer.flush = lambda timeout=None: None
    producer.config, producer._closed = {}, True  # so that kafka-python's __del__ has nothing to close
    return producer


def test_a_send_that_failed_in_the_open_transaction_stops_the_commit() -> None:
    producer = _producer()
    producer.check_written()  # nothing failed
    expired = KafkaTimeoutError("Expiring 205 record(s) for xhub.src.court.pd-crd-0001-0")
    producer._failed(1, expired)
    producer._failed(1, KafkaTimeoutError("Expiring 1 record(s) for xhub.pos.court-0"))
    with pytest.raises(UnwrittenRecordsError, match="2 send") as raised:
        producer.check_written()
    assert "Expiring 205 record(s)" in str(raised.value)  # the first failure, by name
    assert isinstance(raised.value, KafkaError)
    assert raised.value.retriable


def test_a_late_failure_of_an_earlier_transaction_does_not_stop_this_one() -> None:
    producer = _producer(transaction=2)
    producer._failed(1, KafkaTimeoutError("a batch of the transaction before"))
    producer.check_written()
