"""Reading the audit topic: entries in order (optionally a time range), the last entry of one chain (to
resume writing), and the anchors a hub stored with its committed offsets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import TopicPartition

from hub.audit.anchor import Anchor, anchor_from_metadata
from hub.core.kafka import make_admin, make_consumer
from hub.core.kafka_settings import KafkaSettings

# Entries are stamped when the hub decides; the Kafka record is written within the transaction, which
# cannot outlive the transaction timeout. Seeking by record time with this margin misses nothing.
TIME_MARGIN_MS = 5 * 60 * 1000


class Decoder(Protocol):
    def decode(
        self, data: bytes, reader_schema: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    offset: int
    timestamp_ms: int  # the Kafka record's timestamp
    entry: dict[str, Any] | None  # None when undecodable
    raw: bytes | None


@dataclass(frozen=True, slots=True)
class ReadSpan:
    """Which part of the audit topic to read: offsets, or entry times (the range a query asks for).

    Attributes:
        start: first offset.
        end: offset to stop before; None reads to the end the topic has when reading starts.
        since_ms: start about here instead, if later than ``start`` (found from the records' times).
        until_ms: stop once records are well past this time (entries are filtered by the caller).
    """

    start: int = 0
    end: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def read_records(
    kafka: KafkaSettings, topic: str, decoder: Decoder, span: ReadSpan = ReadSpan()
) -> Iterator[AuditRecord]:
    """Committed audit records of ``span`` in order (the whole topic by default).

    Entries are decoded with their writer schema, so hashes are recomputed over exactly what was written.
    """
    consumer = make_consumer(kafka, "audit-reader", group_id=None)
    tp = TopicPartition(topic, 0)
    until_ms = span.until_ms
    try:
        consumer.assign([tp])
        stop = consumer.end_offsets([tp]).get(tp, 0) if span.end is None else span.end
        start = span.start
        if span.since_ms is not None:
            found = consumer.offsets_for_times({tp: max(0, span.since_ms - TIME_MARGIN_MS)}).get(tp)
            start = max(start, found.offset) if found is not None else stop
        consumer.seek(tp, start)
        while consumer.position(tp) < stop:
            for records in consumer.poll(timeout_ms=1000, max_records=2000).values():
                for rec in records:
                    if rec.offset >= stop:
                        return
                    if until_ms is not None and rec.timestamp > until_ms + TIME_MARGIN_MS:
                        return
                    entry: dict[str, Any] | None
                    try:
                        _, entry = decoder.decode(rec.value)
                    except Exception:  # noqa: BLE001 - an undecodable entry is reported by the verifier
                        entry = None
                    yield AuditRecord(rec.offset, rec.timestamp, entry, rec.value)
    finally:
        consumer.close()


def read_entries(
    kafka: KafkaSettings, topic: str, decoder: Decoder, *, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, dict[str, Any] | None, bytes | None]]:
    """Yield (offset, entry or None when undecodable, raw value) of committed audit records in order."""
    for rec in read_records(kafka, topic, decoder, ReadSpan(start=start, end=end)):
        yield rec.offset, rec.entry, rec.raw


def last_entry_of_chain(
    kafka: KafkaSettings, topic: str, chain: str, decoder: Decoder
) -> dict[str, Any] | None:
    """The newest committed entry of ``chain``, scanning back from the end in windows."""
    consumer = make_consumer(kafka, "audit-resume", group_id=None)
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        end = consumer.end_offsets([tp]).get(tp, 0)
        begin = consumer.beginning_offsets([tp]).get(tp, 0)
    finally:
        consumer.close()
    window = 2000
    hi = end
    while hi > begin:
        lo = max(begin, hi - window)
        found: dict[str, Any] | None = None
        for _, entry, _ in read_entries(kafka, topic, decoder, start=lo, end=hi):
            if entry is not None and entry.get("chain") == chain:
                found = entry
        if found is not None:
            return found
        hi = lo
        window *= 2
    return None


def read_anchors(kafka: KafkaSettings, group_id: str) -> list[Anchor]:
    """The chain heads stored in the committed offsets of a hub's consumer group (``xhub-hub-<hub>``)."""
    admin = make_admin(kafka, "audit-anchors")
    try:
        offsets = admin.list_group_offsets([group_id]).get(group_id, {})
    finally:
        admin.close()
    anchors: list[Anchor] = []
    for tp, committed in sorted(offsets.items()):
        where = f"the offset of {tp.topic}-{tp.partition} committed by group {group_id}"
        anchor = anchor_from_metadata(getattr(committed, "metadata", None), where)
        if anchor is not None:
            anchors.append(anchor)
    return anchors
