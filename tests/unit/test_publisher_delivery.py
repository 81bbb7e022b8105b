"""TransactionalPublisher.commit commits only when the broker took every record of the transaction.

kafka-python fails a batch that runs out of time (delivery_timeout_ms) with a retriable error and leaves
the transaction open and healthy: ``flush`` returns and ``commit_transaction`` commits the rest. The
publisher reads every record's outcome after the flush and does not commit when one failed (issue 19:
a pg_logical sidecar confirmed its slot past changes that never reached Kafka).
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, ProducerFencedError
from kafka.future import Future

from connectors.errors import Fenced, PublishFailed
from connectors.runtime.publisher import OutRecord, TransactionalPublisher
from hub.core.kafka_settings import KafkaSettings


class _Manager:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def begin_commit(self) -> Any:
        self.log.append("commit")
        return _Result()


class _Result:
    def wait(self, timeout_ms: int | None = None) -> bool:
        return True


class _Sender:
    def wakeup(self) -> None:
        pass


class _Producer:
    """Records what the publisher asks; ``fail`` names the topics whose records come back failed."""

    def __init__(
        self, fail: set[str], pending: frozenset[str] = frozenset(), error: Exception | None = None
    ) -> None:
        self.fail = fail
        self.pending = pending
        self.error = error
        self.log: list[str] = []
        self._transaction_manager = _Manager(self.log)
        self._sender = _Sender()

    def begin_transaction(self) -> None:
        self.log.append("begin")

    def send(self, topic: str, **_: Any) -> Future:
        self.log.append(f"send {topic}")
        future = Future()
        if topic in self.fail:
            future.failure(
                self.error or KafkaTimeoutError(f"Expiring 1 record(s) for {topic}-0: 10000 ms has passed")
            )
        elif topic not in self.pending:
            future.success(None)
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.log.append("flush")

    def close(self, timeout: float | None = None) -> None:
        self.log.append("close")


def _publisher(producer: _Producer) -> TransactionalPublisher:
    publisher = TransactionalPublisher(
        KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        transactional_id="xhub-src-d-s",
        position_topic="xhub.pos.d",
        position_key="s",
    )
    publisher._producer = producer
    publisher._position_partition = 0
    return publisher


def _records() -> list[OutRecord]:
    return [OutRecord("xhub.src.d.r", b"k1", b"v1"), OutRecord("xhub.src.d.r", b"k2", b"v2")]


def test_every_record_delivered_commits() -> None:
    producer = _Producer(fail=set())
    _publisher(producer).commit(_records(), {"lsn": "0/10"})
    assert producer.log[-2:] == ["flush", "commit"]


@pytest.mark.parametrize("topic", ["xhub.src.d.r", "xhub.pos.d"])
def test_a_record_that_expired_fails_the_batch_without_committing(topic: str) -> None:
    producer = _Producer(fail={topic})
    publisher = _publisher(producer)
    with pytest.raises(PublishFailed, match="Expiring 1 record"):
        publisher.commit(_records(), {"lsn": "0/10"})
    assert "commit" not in producer.log
    assert producer.log[-1] == "close"
    assert not publisher.is_open  # the next open aborts the transaction (init_transactions)


def test_a_record_still_pending_after_the_flush_fails_the_batch() -> None:
    producer = _Producer(fail=set(), pending=frozenset({"xhub.pos.d"}))
    with pytest.raises(PublishFailed, match="not acknowledged"):
        _publisher(producer).commit(_records(), {"lsn": "0/10"})
    assert "commit" not in producer.log


def test_a_record_refused_by_fencing_is_fenced_not_retried() -> None:
    """A newer sidecar took the transactional id: the records come back fenced, and this one stops."""
    producer = _Producer(fail={"xhub.src.d.r", "xhub.pos.d"}, error=ProducerFencedError())
    with pytest.raises(Fenced):
        _publisher(producer).commit(_records(), {"lsn": "0/10"})
    assert "commit" not in producer.log
