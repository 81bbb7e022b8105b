"""Reading the audit topic: entries in order (optionally a time range), the last entry of one chain (to
resume writing), the anchors a hub stored with its committed offsets, and one record by its place (the
trace follows audit entries to the records they name).

The topic holds ``AuditBatch`` records (schemas/hub/audit_batch.avsc): the entries one worker wrote in one
transaction. Readers see entries: :func:`iter_entries` for the entries alone, :func:`read_records` for each
entry with where it is (the record's offset and the entry's index in it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kafka import TopicPartition

from hub.audit.anchor import Anchor, anchor_from_metadata
from hub.core.errors import RetriableError
from hub.core.kafka import make_admin, make_consumer
from hub.core.kafka_settings import KafkaSettings

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.core.registry.serde import AvroSerde

# Entries are stamped when the hub decides; the Kafka record is written within the transaction, which
# cannot outlive the transaction timeout. Seeking by record time with this margin misses nothing.
TIME_MARGIN_MS = 5 * 60 * 1000


class Decoder(Protocol):
    def decode(
        self, data: bytes, reader_schema: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry and where it is; an undecodable Kafka record is one AuditRecord with no entry."""

    offset: int  # of the Kafka record (the batch) holding the entry
    timestamp_ms: int  # the Kafka record's timestamp
    entry: dict[str, Any] | None  # None when undecodable
    raw: bytes | None  # the Kafka record's value
    index: int = 0  # of the entry within its batch


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
    """Committed audit entries of ``span`` in order (the whole topic by default), one per entry.

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
                    entries = batch_entries(decoder, rec.value)
                    if entries is None:  # reported by the verifier as undecodable
                        yield AuditRecord(rec.offset, rec.timestamp, None, rec.value)
                        continue
                    for index, entry in enumerate(entries):
                        yield AuditRecord(rec.offset, rec.timestamp, entry, rec.value, index)
    finally:
        consumer.close()


def batch_entries(decoder: Decoder, value: bytes | None) -> list[dict[str, Any]] | None:
    """The entries of one audit record; None when it is not an ``AuditBatch``.

    Raises:
        RetriableError: the registry did not answer. That says nothing of the record: taken for an
            undecodable one, it made a verify report every chain cut and a report count no deliveries.
    """
    if value is None:
        return None
    try:
        _, batch = decoder.decode(value)
    except RetriableError:
        raise
    except Exception:  # noqa: BLE001 - any other failure means "not an audit record"; the verifier says so
        return None
    entries = batch.get("entries") if isinstance(batch, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    return entries


def iter_entries(
    kafka: KafkaSettings, topic: str, decoder: Decoder, span: ReadSpan = ReadSpan()
) -> Iterator[dict[str, Any]]:
    """The decodable audit entries of ``span`` in order (what counts and reports need)."""
    for rec in read_records(kafka, topic, decoder, span):
        if rec.entry is not None:
            yield rec.entry


def read_entries(
    kafka: KafkaSettings, topic: str, decoder: Decoder, *, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, dict[str, Any] | None, bytes | None]]:
    """(offset of its batch, entry or None when undecodable, raw value) of each committed audit entry."""
    for rec in read_records(kafka, topic, decoder, ReadSpan(start=start, end=end)):
        yield rec.offset, rec.entry, rec.raw


def end_offset(kafka: KafkaSettings, topic: str) -> int:
    """The audit topic's end offset now (read_committed: its last stable offset)."""
    consumer = make_consumer(kafka, "audit-end", group_id=None)
    tp = TopicPartition(topic, 0)
    try:
        return int(consumer.end_offsets([tp]).get(tp, 0))
    finally:
        consumer.close()


def last_entry_of_chain(
    kafka: KafkaSettings, topic: str, chain: str, decoder: Decoder
) -> dict[str, Any] | None:
    """The newest committed entry of ``chain``, scanning back from the end in windows of records."""
    consumer = make_consumer(kafka, "audit-resume", group_id=None)
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        end = consumer.end_offsets([tp]).get(tp, 0)
        begin = consumer.beginning_offsets([tp]).get(tp, 0)
    finally:
        consumer.close()
    window = 200  # Kafka records, each a batch of entries
    hi = end
    while hi > begin:
        lo = max(begin, hi - window)
        found: dict[str, Any] | None = None
        for rec in read_records(kafka, topic, decoder, ReadSpan(start=lo, end=hi)):
            if rec.entry is not None and rec.entry.get("chain") == chain:
                found = rec.entry
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


@contextmanager
def open_decoder(cfg: ConfigDir, *, client_id: str = "audit-registry") -> Iterator[AvroSerde]:
    """A decoder on the registry of ``cfg``; the built-in one is served in-process while needed."""
    from hub.registry.local import open_serde

    registry = cfg.hubs_file.registry
    with open_serde(cfg.hubs_file.kafka, registry.url, registry.topic, client_id=client_id) as serde:
        yield serde


def read_record_at(
    kafka: KafkaSettings, origin: str, *, timeout_s: float = 15.0
) -> tuple[list[tuple[str, bytes]], bytes | None] | None:
    """(headers, value) of the committed record at ``origin`` (``topic-partition@offset``, as audit entries
    and dead letters name records); None when it is not there (compacted away, aborted, or no such place).
    """
    where, _, offset_text = origin.rpartition("@")
    topic, _, partition_text = where.rpartition("-")
    if not (topic and partition_text.isdigit() and offset_text.isdigit()):
        return None
    tp, offset = TopicPartition(topic, int(partition_text)), int(offset_text)
    consumer = make_consumer(kafka, "audit-trace", group_id=None)
    try:
        consumer.assign([tp])
        if offset >= consumer.end_offsets([tp]).get(tp, 0):
            return None
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and consumer.position(tp) <= offset:
            for rec in consumer.poll(timeout_ms=500, max_records=1).get(tp, []):
                if rec.offset == offset:
                    return [(k, bytes(v)) for k, v in rec.headers or [] if v is not None], rec.value
                if rec.offset > offset:
                    return None
        return None
    finally:
        consumer.close()
