"""The changelog topic ``xhub.state.<hub>``: what one store change looks like as a Kafka record.

Compacted: one record per store entry, the newest wins, a tombstone (no value) removes it, so the topic
holds the current state and nothing more, whatever its size. The message key names the entry
(``["h", topic, partition, subscription]`` for where a subscription stands on a source partition,
``["k", topic, partition, subscription, key hash]`` for a key a filtered subscription holds); the
changelog partition is the source partition modulo the changelog's partition count, so a worker that
gains a source partition restores from one changelog partition. The records go out inside the
transaction of the step that changed the state (transaction.py), so they commit or vanish with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from hub.core import names
from hub.core.errors import FatalError
from hub.core.kafka import ensure_topics
from hub.core.log import get_logger
from hub.engine.handover import Backfilling, Handover, Live

log = get_logger("engine")

COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True, slots=True)
class HandoverEntry:
    """Where ``sid`` stands on source partition ``tp``; None: it has no state there any more."""

    tp: TopicPartition
    sid: str
    handover: Handover | None


@dataclass(frozen=True, slots=True)
class HeldEntry:
    """Whether filtered subscription ``sid`` holds the key whose keyed hash is ``key`` (see keys.py)."""

    tp: TopicPartition
    sid: str
    key: bytes
    held: bool


Entry = HandoverEntry | HeldEntry


def encode(entry: Entry) -> tuple[bytes, bytes | None]:
    """(message key, value or None for a tombstone) of one entry."""
    tp = entry.tp
    if isinstance(entry, HandoverEntry):
        key: list[Any] = ["h", tp.topic, tp.partition, entry.sid]
        h = entry.handover
        raw = None if h is None else handover_value(h)
    else:
        key = ["k", tp.topic, tp.partition, entry.sid, entry.key.hex()]
        raw = b"1" if entry.held else None
    return json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode(), raw


def decode(key: bytes | None, value: bytes | None) -> Entry | None:
    """The entry of one changelog record; None for a record this module did not write."""
    try:
        parts = json.loads(key) if key else None
        body = json.loads(value) if value else None
    except ValueError:
        return None
    if not isinstance(parts, list) or len(parts) < 4:
        return None
    kind, topic, partition, sid = parts[:4]
    if not isinstance(topic, str) or not isinstance(partition, int) or not isinstance(sid, str):
        return None
    tp = TopicPartition(topic, partition)
    if kind == "k" and len(parts) == 5 and isinstance(parts[4], str):
        return HeldEntry(tp, sid, bytes.fromhex(parts[4]), body is not None)
    if kind != "h":
        return None
    h = _handover(body)
    return HandoverEntry(tp, sid, h) if body is None or h is not None else None


def handover_value(h: Handover) -> bytes:
    """The stored form of a handover: the live offset, or [snapshot end, position]."""
    return json.dumps(h.offset if isinstance(h, Live) else [h.snapshot_end, h.position]).encode()


def handover_of(value: bytes) -> Handover | None:
    """The handover stored as ``value`` (see :func:`handover_value`); None when malformed."""
    try:
        return _handover(json.loads(value))
    except ValueError:
        return None


def _handover(body: Any) -> Handover | None:
    if isinstance(body, int):
        return Live(body)
    if isinstance(body, list) and len(body) == 2 and all(isinstance(v, int) for v in body):
        return Backfilling(body[0], body[1])
    return None


class Changelog:
    """The changelog topic of one hub: its partition count, and sending entries in a transaction."""

    def __init__(self, hub: str) -> None:
        self.hub = hub
        self.topic = names.state_topic(hub)
        self.partitions = 0  # known after :meth:`open`

    def open(self, consumer: KafkaConsumer, admin: KafkaAdminClient | None, *, partitions: int) -> None:
        """Learn the changelog's partition count; create the topic when missing (`xhub apply` does).

        Raises:
            FatalError: the topic is missing and could not be created.
        """
        found = consumer.partitions_for_topic(self.topic)
        if not found and admin is not None:
            created = ensure_topics(admin, {self.topic: COMPACTED}, partitions=partitions)
            if created:
                log.warning("state_topic_created", hub=self.hub, topic=self.topic, partitions=partitions)
            for _ in range(50):
                consumer.topics()  # refresh the metadata
                found = consumer.partitions_for_topic(self.topic)
                if found:
                    break
        if not found:
            raise FatalError(
                f"hub {self.hub}: state topic {self.topic} does not exist and could not be created "
                "(run `xhub apply`, which creates it)"
            )
        self.partitions = len(found)

    def partition_of(self, tp: TopicPartition) -> int:
        """The changelog partition that holds the state of source partition ``tp``."""
        return int(tp.partition) % self.partitions

    def send(self, producer: KafkaProducer, entries: Iterable[Entry]) -> list[tuple[Entry, Any]]:
        """Send ``entries`` in the producer's open transaction; (entry, future) pairs."""
        out = []
        for entry in entries:
            key, value = encode(entry)
            future = producer.send(self.topic, key=key, value=value, partition=self.partition_of(entry.tp))
            out.append((entry, future))
        return out
