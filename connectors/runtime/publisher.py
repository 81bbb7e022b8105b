"""One Kafka transaction per batch: change events, dead letters and the source position together.

The transactional id is stable per department and source (``xhub-src-<dept>-<source>``). Opening the
publisher calls ``init_transactions``, which fences any older instance still alive with the same id and
aborts its unfinished transaction; only then is the last committed position read. So after a crash at
any point, the events visible to read_committed consumers are exactly those up to the stored position:
nothing lost (the source resumes there), nothing repeated (what was in flight was aborted).

Any failure while a transaction is open leaves the producer unusable by design: the publisher closes it
and raises ``PublishFailed``; the runtime opens a new one (fencing the old epoch) and resumes from the
committed position.

A commit Kafka accepts is not enough: kafka-python drops a record whose batch ran out of
``delivery_timeout_ms`` without failing the transaction. The producer from ``make_producer`` refuses to
commit such a transaction (``UnwrittenRecordsError``, a ``PublishFailed`` here), so ``commit`` returning
still means every record reached the broker: a logical replication slot confirmed past changes never
streams them again (issue 19).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError, ProducerFencedError

from connectors.errors import Fenced, PublishFailed
from connectors.runtime.positions import encode_position, partition_for, read_position
from hub.core.envelope import now_ms
from hub.core.hanging_transactions import abort_own_hanging_on
from hub.core.kafka import close_producer, commit_transaction_within, make_producer
from hub.core.kafka_settings import KafkaSettings


@dataclass(slots=True)
class OutRecord:
    """A record to produce inside the transaction."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


class TransactionalPublisher:
    """A transactional producer bound to one source and its position key.

    Args:
        settings: the Kafka cluster.
        transactional_id: stable per department and source.
        position_topic: xhub.pos.<dept>.
        position_key: the source name.
        written_topics: the other topics its transactions write (source and dead-letter topics): where
            a transaction an older instance left hanging is looked for after ``init_transactions``.
        transaction_timeout_ms: the broker aborts a transaction left open longer (a hung sidecar).
        max_block_ms: how long a send may wait for metadata or buffer space before failing.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id: str,
        position_topic: str,
        position_key: str,
        written_topics: Sequence[str] = (),
        transaction_timeout_ms: int = 30_000,
        max_block_ms: int = 10_000,
        delivery_timeout_ms: int = 10_000,
    ) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.position_topic = position_topic
        self.position_key = position_key
        self._key = position_key.encode("utf-8")
        self.written_topics = (position_topic, *written_topics)
        self.transaction_timeout_ms = transaction_timeout_ms
        self.max_block_ms = max_block_ms
        self.delivery_timeout_s = delivery_timeout_ms / 1000
        self._producer: Any = None
        self._position_partition: int | None = None

    @property
    def is_open(self) -> bool:
        return self._producer is not None

    def open(self) -> Any | None:
        """Start the producer, fence older instances, and return the last committed position."""
        self.close()
        try:
            producer = make_producer(
                self.settings,
                self.transactional_id,
                transactional_id=self.transactional_id,
                transaction_timeout_ms=self.transaction_timeout_ms,
                max_block_ms=self.max_block_ms,
                request_timeout_ms=5_000,
                delivery_timeout_ms=int(self.delivery_timeout_s * 1000),
                max_request_size=2 * 1024 * 1024,
            )
        except KafkaError as exc:
            raise PublishFailed(f"producer {self.transactional_id}: {type(exc).__name__}: {exc}") from exc
        self._producer = producer
        try:
            producer.init_transactions()
            partitions = producer.partitions_for(self.position_topic)
            self._position_partition = partition_for(self._key, len(partitions))
            # What an older instance left open and the coordinator lost: init_transactions cannot abort
            # it, and reading the position back (and the hub reading our topics) would stall there.
            abort_own_hanging_on(self.settings, self.transactional_id, self.written_topics)
        except ProducerFencedError as exc:
            self.close()
            raise Fenced(f"transactional id {self.transactional_id} is in use by a newer sidecar") from exc
        except KafkaError as exc:
            self.close()
            raise PublishFailed(
                f"producer {self.transactional_id}: init_transactions failed: {type(exc).__name__}: {exc}"
            ) from exc
        return read_position(
            self.settings, self.position_topic, self.position_key, client_id=f"{self.transactional_id}-pos"
        )

    def commit(self, records: Sequence[OutRecord], position: Any) -> None:
        """Produce ``records`` and the position record in one transaction and commit it.

        Raises:
            PublishFailed: the transaction did not commit (the producer is closed; ``open`` again).
            Fenced: a newer sidecar owns this transactional id.
        """
        producer = self._producer
        if producer is None:
            raise PublishFailed(f"producer {self.transactional_id} is not open")
        began = time.monotonic()
        try:
            producer.begin_transaction()
            for record in records:
                producer.send(record.topic, value=record.value, key=record.key, headers=record.headers)
            producer.send(
                self.position_topic,
                value=encode_position(position, now_ms()),
                key=self._key,
                partition=self._position_partition,
            )
            # Bounded: a broker that went away fails the batch here instead of blocking the commit.
            producer.flush(timeout=self.delivery_timeout_s + 5)
            commit_transaction_within(producer, self.delivery_timeout_s + 5)
        except KafkaError as exc:
            fenced = _fenced(producer, exc)
            self.close()
            # The broker also fences a transaction it aborted for running too long (after an outage):
            # that is ours to retry. Fenced quickly means another sidecar took over: stop.
            if fenced and time.monotonic() - began < self.transaction_timeout_ms / 1000 * 0.8:
                raise Fenced(
                    f"transactional id {self.transactional_id} is in use by a newer sidecar"
                ) from exc
            raise PublishFailed(
                f"transaction of {self.transactional_id} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the producer without waiting long; an open transaction is aborted by the next ``open``."""
        producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, timeout_s=2)


def _fenced(producer: Any, exc: KafkaError) -> bool:
    """True when the failure is a fencing (kafka-python often wraps it in a plain KafkaError)."""
    if isinstance(exc, ProducerFencedError):
        return True
    manager = getattr(producer, "_transaction_manager", None)
    last = getattr(manager, "last_error", None)  # a property in kafka-python 3
    return isinstance(last, ProducerFencedError)
