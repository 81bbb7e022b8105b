"""Source positions on xhub.pos.<dept>: key = source name, value = JSON {"position": ..., "ts_ms": ...}.

A position record is written in the same Kafka transaction as the events it covers, so the last
committed position of a source is exactly where its committed events end. It is always written to the
partition Kafka's default partitioner picks for the key (murmur2), set explicitly so that a reader knows
which partition to scan.

Reading: the topic is compacted, but its active segment is not, so the newest record of a key is found
by scanning the partition backwards in growing windows from its end. The scan reads with
read_committed up to the high watermark; a transaction of another source still open in the same
partition holds the read until it ends, so our own later record is never missed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from connectors.errors import PublishFailed
from hub.core.errors import FatalError
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (Java-compatible murmur2)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def encode_position(position: Any, ts_ms: int) -> bytes:
    """The value of a position record."""
    return json.dumps(
        {"position": position, "ts_ms": ts_ms}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def read_position(
    settings: KafkaSettings,
    topic: str,
    key: str,
    *,
    client_id: str,
    timeout_s: float = 90.0,
    first_window: int = 256,
) -> Any | None:
    """The last committed position of source ``key`` on ``topic``; None if it never committed one.

    Raises:
        PublishFailed: Kafka did not answer, or an open transaction held the read past ``timeout_s``.
        FatalError: the stored position is not JSON (someone else wrote to the topic).
    """
    key_bytes = key.encode("utf-8")
    try:
        tp, low, high = _locate(settings, topic, key_bytes, client_id)
        if high <= low:
            return None
        value = _scan(
            settings,
            tp,
            key_bytes,
            low=low,
            high=high,
            client_id=client_id,
            timeout_s=timeout_s,
            first_window=first_window,
        )
    except KafkaError as exc:
        raise PublishFailed(
            f"reading position of {key} on {topic} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return None if value is _NOT_FOUND else _decode(value, topic, key)


_NOT_FOUND: Any = object()


def _locate(
    settings: KafkaSettings, topic: str, key: bytes, client_id: str
) -> tuple[TopicPartition, int, int]:
    """The partition of ``key``, its first offset and its high watermark."""
    # The high watermark counts records of open transactions too; a read_committed consumer's
    # end offset would stop at the first open transaction and could hide our last record.
    probe = make_consumer(settings, f"{client_id}-hw", group_id=None, isolation_level="read_uncommitted")
    try:
        partitions = probe.partitions_for_topic(topic)
        if not partitions:
            raise PublishFailed(f"position topic {topic} does not exist (yet)", retry_after=2.0)
        tp = TopicPartition(topic, partition_for(key, len(partitions)))
        high = int(probe.end_offsets([tp])[tp])
        low = int(probe.beginning_offsets([tp])[tp])
    finally:
        probe.close()
    return tp, low, high


def _scan(
    settings: KafkaSettings,
    tp: TopicPartition,
    key: bytes,
    *,
    low: int,
    high: int,
    client_id: str,
    timeout_s: float,
    first_window: int,
) -> Any:
    """The newest committed value of ``key`` in ``tp`` below ``high`` (``_NOT_FOUND`` if none)."""
    consumer = make_consumer(settings, client_id, group_id=None)
    try:
        consumer.assign([tp])
        deadline = time.monotonic() + timeout_s
        end, window = high, first_window
        while end > low:
            start = max(low, end - window)
            found = _last_value(consumer, tp, key, start=start, end=end, deadline=deadline)
            if found is not _NOT_FOUND:
                return found
            end, window = start, window * 8
        return _NOT_FOUND
    finally:
        consumer.close()


def _last_value(
    consumer: Any, tp: TopicPartition, key: bytes, *, start: int, end: int, deadline: float
) -> Any:
    consumer.seek(tp, start)
    found: Any = _NOT_FOUND
    while consumer.position(tp) < end:
        if time.monotonic() > deadline:
            raise PublishFailed(
                f"reading positions on {tp.topic} partition {tp.partition} stalled at offset "
                f"{consumer.position(tp)} of {end} (an open transaction?)",
                retry_after=5.0,
            )
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.offset < end and record.key == key:
                    found = record.value
    return found


def _decode(value: bytes | None, topic: str, key: str) -> Any | None:
    if value is None:
        return None  # a tombstone: the position was deleted on purpose (reset)
    try:
        return json.loads(value)["position"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FatalError(
            f'position of source "{key}" on {topic} is not {{"position": ...}} JSON: {exc}'
        ) from exc
