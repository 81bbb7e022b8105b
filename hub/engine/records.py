"""What the engine passes around about one source record: small values instead of long argument lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hub.core.dead_letters import DeadLetter
from hub.core.provenance import Provenance, from_headers


class Serde(Protocol):
    """What the engine needs of a serde (``hub.core.registry.serde.AvroSerde`` is one)."""

    def encode(self, subject: str, schema: dict[str, Any], record: dict[str, Any]) -> bytes: ...

    def decode(
        self, data: bytes, reader_schema: dict[str, Any] | None = None, *, logical: bool = True
    ) -> tuple[int, dict[str, Any]]: ...


def millis(value: Any) -> int:
    """Epoch milliseconds of an Avro ``timestamp-millis`` value (decoded as a datetime) or an int."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else 0


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of a source topic, as read by the main loop or by a backfill."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def of(cls, record: Any) -> SourceRecord:
        """From a kafka-python ``ConsumerRecord``."""
        headers = tuple(getattr(record, "headers", None) or ())
        return cls(record.topic, record.partition, record.offset, record.value, headers)

    @property
    def origin(self) -> str:
        return f"{self.topic}-{self.partition}@{self.offset}"

    def dead_letter(
        self,
        owner: str,
        reason: str,
        detail: str,
        field: str | None = None,
        *,
        resource: str | None = None,
        subscription: str | None = None,
    ) -> DeadLetter:
        """This record as a dead letter of ``owner`` (the original bytes kept, none for a tombstone)."""
        return DeadLetter(
            owner=owner,
            reason=reason,
            detail=detail,
            origin=self.origin,
            original=self.value or b"",
            field=field,
            resource=resource,
            subscription=subscription,
        )


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """A decoded change event with its record: what every outcome (delivery, refusal...) refers to."""

    record: SourceRecord
    event: dict[str, Any]
    event_id: str
    commit_ms: int  # source commit time, for the delivery latency
    now: int  # the routing clock: one per partition and batch, so every decision in it agrees
    provenance: Provenance  # the original change and the hubs before this one

    @classmethod
    def of(cls, record: SourceRecord, event: dict[str, Any], now: int) -> SourceEvent:
        commit_ms = millis(event["source"]["commit_ts_ms"])
        carried = from_headers(record.headers)
        # Only a change that came through a hub (a link's copy) has hops to keep; a department's own
        # event is its own source, whatever header its writer added.
        provenance = (
            carried if carried is not None and carried.hops else Provenance.of_event(event, commit_ms)
        )
        return cls(record, event, str(event["event_id"]), commit_ms, now, provenance)
