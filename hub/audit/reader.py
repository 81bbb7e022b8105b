"""Reading the audit topic: all entries in order, or the last entry of one chain (to resume writing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from kafka import TopicPartition

from hub.kafka_client import KafkaSettings, make_consumer


class Decoder(Protocol):
    def decode(self, data: bytes, reader_schema: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]: ...


def read_entries(
    kafka: KafkaSettings, topic: str, decoder: Decoder, *, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, dict[str, Any] | None, bytes | None]]:
    """Yield (offset, entry or None when undecodable, raw value) of committed audit records in order."""
    consumer = make_consumer(kafka, "audit-reader", group_id=None)
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        stop = consumer.end_offsets([tp]).get(tp, 0) if end is None else end
        consumer.seek(tp, start)
        while consumer.position(tp) < stop:
            for records in consumer.poll(timeout_ms=1000, max_records=2000).values():
                for rec in records:
                    if rec.offset >= stop:
                        return
                    entry: dict[str, Any] | None
                    try:
                        _, entry = decoder.decode(rec.value)
                    except Exception:  # noqa: BLE001 - an undecodable entry is reported by the verifier
                        entry = None
                    yield rec.offset, entry, rec.value
    finally:
        consumer.close()


def last_entry_of_chain(kafka: KafkaSettings, topic: str, chain: str, decoder: Decoder) -> dict[str, Any] | None:
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
