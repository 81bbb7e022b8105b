"""What every sink is: ``Sink.write(batch)`` of decoded ``Delivery`` objects, plus flush and close.

A sink either stores its consumed offsets itself, atomically with what it applied
(``stores_offsets = True``: the sink loop seeks to ``committed_offsets`` on every assignment and treats
Kafka's group offsets as information for lag tools only), or it does not (``stores_offsets = False``:
the loop commits Kafka group offsets after ``write`` returns, which gives at-least-once delivery).

Records a sink cannot apply go to the department's dead-letter topic through the ``DeadLetters`` the
loop binds; a sink flushes them before it commits the batch, so a dead letter is never lost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.core.errors import FatalError

TopicPartitionKey = tuple[str, int]
"""(topic, partition); kafka-python's ``TopicPartition`` is such a tuple."""


@dataclass(slots=True)
class Delivery:
    """One decoded record of a delivery topic (xhub.dlv.<hub>.<subscription>).

    Attributes:
        topic: delivery topic it was read from.
        partition: its partition.
        offset: its offset.
        key: the envelope key (the business key, or its HMAC pseudonym when the key is masked).
        op: ``c`` insert, ``u`` update, ``d`` delete, ``r`` snapshot/backfill row.
        seq: per-key sequence from the source; a newer change has a larger seq.
        event_id: the change event's id (a UUID), stable across redeliveries.
        policy_version: the hub's plan hash that produced this delivery (header), if present.
        subscription: the subscription served (header, else the last part of the topic name).
        data: the projected, masked record; ``None`` on delete.
        source_commit_ts_ms: commit time at the source department, epoch milliseconds.
        headers: the Kafka headers, decoded names to raw values.
        resource: the catalog code of the resource.
        value: the value bytes exactly as delivered (what a dead letter carries).
        schema_id: registry id of the writer schema.
        data_schema: the Avro record schema of ``data`` (shared by all deliveries of one schema id).
    """

    topic: str
    partition: int
    offset: int
    key: str
    op: str
    seq: int
    event_id: str
    policy_version: str | None
    subscription: str
    data: dict[str, Any] | None
    source_commit_ts_ms: int
    headers: Mapping[str, bytes] = field(default_factory=dict)
    resource: str = ""
    value: bytes = b""
    schema_id: int = 0
    data_schema: dict[str, Any] | None = None

    @property
    def origin(self) -> str:
        """``topic-partition@offset``: where this delivery was read (dead letters name it)."""
        return f"{self.topic}-{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one partition was consumed by a batch: offsets ``first_offset`` .. ``next_offset - 1``.

    The batch's records need not cover the whole range (dead-lettered records, transaction markers and
    compacted-away offsets leave gaps); an exactly-once sink stores ``next_offset`` and refuses the batch
    when its store is already beyond ``first_offset``.
    """

    topic: str
    partition: int
    first_offset: int
    next_offset: int


def progress_of(batch: Iterable[Delivery]) -> list[PartitionProgress]:
    """The partition progress a batch implies when the caller passes none (records in offset order)."""
    spans: dict[TopicPartitionKey, list[int]] = {}
    for delivery in batch:
        tp = (delivery.topic, delivery.partition)
        span = spans.get(tp)
        if span is None:
            spans[tp] = [delivery.offset, delivery.offset + 1]
        else:
            span[0] = min(span[0], delivery.offset)
            span[1] = max(span[1], delivery.offset + 1)
    return [PartitionProgress(t, p, first, nxt) for (t, p), (first, nxt) in spans.items()]


class DeadLetters(Protocol):
    """Where a sink sends what it cannot apply (the sink loop binds xhub.dlq.<dept>)."""

    def publish(self, delivery: Delivery, reason: str, detail: str, *, field: str | None = None) -> None:
        """Queue one dead letter. ``detail`` names fields, never personal values."""

    def flush(self) -> None:
        """Block until every queued dead letter is stored; raise ``RetriableError`` if it cannot be."""


@dataclass(frozen=True, slots=True)
class ListedDeadLetter:
    """One dead letter as ``ListDeadLetters`` keeps it."""

    delivery: Delivery
    reason: str
    detail: str
    field: str | None = None


class ListDeadLetters:
    """Dead letters kept in a list: for sinks used without a sink loop, and for tests."""

    def __init__(self) -> None:
        self.items: list[ListedDeadLetter] = []

    def publish(self, delivery: Delivery, reason: str, detail: str, *, field: str | None = None) -> None:
        """Append one dead letter."""
        self.items.append(ListedDeadLetter(delivery, reason, detail, field))

    def flush(self) -> None:
        """Nothing is buffered."""


class _UnboundDeadLetters:
    """Refuses loudly: dropping a record silently would lose data."""

    def publish(self, delivery: Delivery, reason: str, detail: str, *, field: str | None = None) -> None:
        raise FatalError(
            f"delivery {delivery.origin} must be dead-lettered ({reason}: {detail}) but the sink has no "
            "dead-letter target: call sink.bind_dead_letters() (the sink loop does)"
        )

    def flush(self) -> None:
        return


class Sink(ABC):
    """Base of every sink. Subclasses are named ``{Technology}Sink`` and have a pydantic config beside.

    Lifecycle: ``open()`` (idempotent; ``write`` opens lazily too), ``write(batch)`` any number of
    times, ``flush()``, ``close()``.
    """

    stores_offsets: bool = False
    """True when the sink keeps consumed offsets in its own store, committed with what it applied."""

    def __init__(self) -> None:
        self.dead_letters: DeadLetters = _UnboundDeadLetters()

    def bind_dead_letters(self, dead_letters: DeadLetters) -> None:
        """Set where records the sink cannot apply are sent (the loop binds the department's DLQ)."""
        self.dead_letters = dead_letters

    def open(self) -> None:  # noqa: B027 - optional hook; most sinks connect lazily
        """Connect or open files. Safe to call more than once."""

    @abstractmethod
    def write(self, batch: Sequence[Delivery], progress: Sequence[PartitionProgress] | None = None) -> None:
        """Apply a batch (in offset order per partition) and record ``progress`` as consumed.

        Args:
            batch: the decoded deliveries to apply.
            progress: per partition, the offset range the batch consumed, including records that were
                dead-lettered before reaching the sink; derived from ``batch`` when omitted.

        Raises:
            SinkUnavailable: transient failure; nothing of the batch is committed (for exactly-once
                sinks) and the same batch may be written again.
            OffsetConflict: the sink's offset store is ahead of this batch; nothing was applied.
        """

    def committed_offsets(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The next offset to consume per partition, from the sink's own store (missing: none stored).

        Only sinks with ``stores_offsets`` keep any; the base returns an empty mapping.
        """
        del partitions
        return {}

    def flush(self) -> None:  # noqa: B027 - optional hook; write() is synchronous in our sinks
        """Make everything written so far durable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. Safe to call more than once."""

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
