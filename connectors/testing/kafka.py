"""Reading what a sidecar published, as a read_committed consumer would (test helpers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.serde import AvroSerde


@dataclass
class Consumed:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    value: Any
    headers: dict[str, bytes] = field(default_factory=dict)


class TopicReader:
    """Follows topics from the beginning with read_committed, decoding values with the registry.

    Keep one reader per topic set and call ``read_until`` repeatedly: it returns everything read so far.
    """

    def __init__(self, settings: KafkaSettings, topics: list[str], serde: AvroSerde) -> None:
        self.serde = serde
        self.records: list[Consumed] = []
        self._consumer = make_consumer(settings, "test-reader", group_id=None)
        parts: list[TopicPartition] = []
        for topic in topics:
            deadline = time.monotonic() + 30
            found = self._consumer.partitions_for_topic(topic)
            while not found and time.monotonic() < deadline:
                time.sleep(0.2)
                self._consumer.topics()  # fetches fresh metadata; the cached answer may be old
                found = self._consumer.partitions_for_topic(topic)
            if not found:
                raise AssertionError(f"topic {topic} does not exist")
            parts.extend(TopicPartition(topic, p) for p in sorted(found))
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning()

    def poll(self) -> int:
        """Read what is there now; return how many new records."""
        new = 0
        for records in self._consumer.poll(timeout_ms=300, max_records=5000).values():
            for r in records:
                value = None if r.value is None else self.serde.decode(r.value)[1]
                headers = dict(r.headers or [])
                self.records.append(Consumed(r.topic, r.partition, r.offset, r.key, r.value, value, headers))
                new += 1
        return new

    def read_until(
        self, done: Callable[[list[Consumed]], bool], *, timeout_s: float = 30.0
    ) -> list[Consumed]:
        """Poll until ``done(records)`` or the timeout; return every record read (check it yourself)."""
        deadline = time.monotonic() + timeout_s
        while not done(self.records) and time.monotonic() < deadline:
            self.poll()
        return self.records

    def read_quiet(self, *, quiet_s: float = 2.0, timeout_s: float = 30.0) -> list[Consumed]:
        """Poll until nothing new arrived for ``quiet_s`` (to check that nothing MORE comes)."""
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_new < quiet_s:
            if self.poll():
                last_new = time.monotonic()
        return self.records

    def close(self) -> None:
        self._consumer.close()


def events_of(records: list[Consumed], topic: str) -> list[dict[str, Any]]:
    """The decoded change events of ``topic``, in the order read."""
    return [r.value for r in records if r.topic == topic and r.value is not None]
