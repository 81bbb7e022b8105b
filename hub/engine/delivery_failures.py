"""Deliveries Kafka refuses for good: retried a few times, then dead-lettered instead of stalling forever.

A produce that fails aborts the batch's transaction and the batch is read again (transaction.py). When
the failure is one that will not go away for that record (too large for its delivery topic, refused as
an invalid record), the same delivery would fail on every retry and the hub would stall. So each such
failure is counted per (source record, subscription); once a delivery has failed ``PRODUCE_ATTEMPTS``
times it is sent to the dead letters as ``undeliverable`` (the source record's bytes kept), and the other
deliveries of the record and of the batch go on. A broker that does not answer is not the record's
fault: those failures are not counted, the batch is simply retried with backoff.
"""

from __future__ import annotations

from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)

from hub.core.log import get_logger

log = get_logger("engine")

PRODUCE_ATTEMPTS = 3  # failed produces of one delivery before it is dead-lettered
MAX_TRACKED = 10_000  # deliveries remembered at once (the oldest are forgotten first)

# Errors that say the record itself cannot be written, however often it is retried.
PERMANENT: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)


def permanent(exc: BaseException) -> bool:
    """Whether a produce failure will happen again for the same record."""
    return isinstance(exc, PERMANENT)


class DeliveryFailures:
    """Counts the permanent produce failures of each delivery (source record origin, subscription)."""

    def __init__(self, attempts: int = PRODUCE_ATTEMPTS) -> None:
        self.attempts = attempts
        self._failed: dict[tuple[str, str], tuple[int, str]] = {}  # -> (failures, last error)

    def failed(self, origin: str, subscription: str, exc: BaseException) -> None:
        """One produce of this delivery failed (counted only when the failure is permanent)."""
        if not permanent(exc):
            return
        key = (origin, subscription)
        count = self._failed.pop(key, (0, ""))[0] + 1
        self._failed[key] = (count, type(exc).__name__)
        while len(self._failed) > MAX_TRACKED:
            del self._failed[next(iter(self._failed))]
        log.warning(
            "delivery_failed",
            origin=origin,
            subscription=subscription,
            error=type(exc).__name__,
            attempt=count,
            of=self.attempts,
        )

    def delivered(self, origin: str, subscription: str) -> None:
        if self._failed:
            self._failed.pop((origin, subscription), None)

    def has_failed(self, origin: str, subscription: str) -> bool:
        """Whether this delivery failed before (it is retried alone, see Emitter._deliver)."""
        return bool(self._failed) and (origin, subscription) in self._failed

    def given_up(self, origin: str, subscription: str) -> str | None:
        """The dead-letter detail when this delivery has failed too often, else None."""
        entry = self._failed.get((origin, subscription)) if self._failed else None
        if entry is None or entry[0] < self.attempts:
            return None
        return f"Kafka refused the delivery to subscription {subscription} {entry[0]} times ({entry[1]})"

    def __len__(self) -> int:
        return len(self._failed)
