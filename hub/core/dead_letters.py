"""The one dead-letter builder: every record that cannot go on (sidecar, sink or hub) becomes one of these.

A dead letter keeps the reason, a detail that names the field or cause, where the record came from
(``origin``: a source position or ``topic-partition@offset``) and the original bytes, so nothing is lost.
The same reason/origin/field also travel as headers, so tools can count dead letters without decoding.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import schemas
from hub.core.envelope import now_ms
from hub.core.names import dead_letter_topic

MAX_ORIGINAL_BYTES = 256 * 1024
"""Originals above this are cut (and the detail says so): a dead letter must fit in a Kafka message."""

# Reasons of the hub's own dead letters (a sidecar's validators add theirs, e.g. ``bad_check_digit``).
BAD_WIRE_FORMAT = "bad_wire_format"  # not a Confluent-framed value at all
UNKNOWN_SCHEMA = "unknown_schema_id"  # framed with a schema id the registry does not have
UNDECODABLE = "undecodable"  # the bytes do not decode with their writer schema
SCHEMA_MISMATCH = "schema_mismatch"  # decodes, but does not resolve to the catalog's schema
UNENCODABLE = "unencodable"  # does not fit a subscription's delivery schema
MASK_FAILED = "mask_failed"  # a mask of a subscription cannot apply to the value
UNDELIVERABLE = "undeliverable"  # Kafka refused the delivery every time (e.g. too large for its topic)
UNPROCESSABLE = "unprocessable"  # the hub failed on this record in a way it did not foresee
NOT_A_CHANGE_EVENT = "not_a_change_event"  # decodes, but its schema is not a change-event envelope

REASON_HEADER = "xhub.reason"
ORIGIN_HEADER = "xhub.origin"
FIELD_HEADER = "xhub.field"


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One record that could not go on, and why."""

    owner: str
    reason: str
    detail: str
    origin: str
    original: bytes
    field: str | None = None
    resource: str | None = None
    subscription: str | None = None
    ts_ms: int = dataclasses.field(default_factory=now_ms)

    def value(self) -> dict[str, Any]:
        """The record as the ``DeadLetter`` Avro schema has it (the original cut to MAX_ORIGINAL_BYTES)."""
        original, detail = self.original, self.detail
        if len(original) > MAX_ORIGINAL_BYTES:
            detail = f"{detail} (original truncated to {MAX_ORIGINAL_BYTES} of {len(original)} bytes)"
            original = original[:MAX_ORIGINAL_BYTES]
        return {
            "reason": self.reason,
            "detail": detail,
            "field": self.field,
            "owner": self.owner,
            "resource": self.resource,
            "origin": self.origin,
            "subscription": self.subscription,
            "ts_ms": self.ts_ms,
            "original": original,
        }

    def headers(self) -> list[tuple[str, bytes]]:
        """Reason, origin and field (empty when none is to blame) as Kafka headers."""
        return [
            (REASON_HEADER, self.reason.encode("utf-8")),
            (ORIGIN_HEADER, self.origin.encode("utf-8", "replace")),
            (FIELD_HEADER, (self.field or "").encode("utf-8")),
        ]


class ValueEncoder(Protocol):
    """What the encoder needs of a serde (``AvroSerde`` is one)."""

    def encode(self, subject: str, schema: dict[str, Any], record: dict[str, Any]) -> bytes: ...


class DeadLetterEncoder:
    """Encodes the dead letters of one owner for its ``xhub.dlq.<owner>`` topic."""

    def __init__(self, owner: str, serde: ValueEncoder) -> None:
        self.owner = owner
        self.topic = dead_letter_topic(owner)
        self.subject = f"{self.topic}-value"
        self.schema = schemas.load("hub/dead_letter.avsc")
        self._serde = serde

    def encode(self, letter: DeadLetter) -> bytes:
        """The Confluent-framed Avro value of ``letter``."""
        return self._serde.encode(self.subject, self.schema, letter.value())
