"""Where a hub link stands on a district's delivery topic, read where the link keeps it.

A hub link reads the district's delivery topic without a consumer group: its position (the next offset
per partition) is written in the cluster it carries to, on ``xhub.pos.<link-dept>``, in the same
transaction as the records it carried (``connectors.sources.hub_link``). So the district cluster cannot
say how far the link read; this reads it from the city cluster.

The record's key is the link source's name, which the city's config does not know; the value names the
topic (``{"position": {"topic": ..., "offsets": {"0": 812}}, "ts_ms": ...}``). So every partition of the
position topic is read backwards from its end, in growing windows, until a window holds a position on
that topic, and the newest such position wins (a source renamed to start the topic again writes under
a new key, later). The topic is compacted, and a running link writes a position per batch: the newest
window of the partition holding it usually has it.
"""

from __future__ import annotations

import json
import time
from typing import Final

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub.core import names
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.errors import LagUnavailable

FIRST_WINDOW: Final = 256  # records read at the end of a partition first; then 8 times more each time
READ_TIMEOUT_S: Final = 10.0


def position_on(value: bytes | None, topic: str) -> tuple[int, dict[int, int]] | None:
    """(ts_ms, next offset per partition) of a position record when it is a link's position on ``topic``."""
    if not value:
        return None
    try:
        doc = json.loads(value)
        position = doc["position"]
        if not isinstance(position, dict) or position.get("topic") != topic:
            return None
        offsets = {int(p): int(o) for p, o in dict(position["offsets"]).items()}
        return int(doc.get("ts_ms") or 0), offsets
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # another source's position (not a link's), or not ours to read


class LinkPositions:
    """Reads hub links' positions in the cluster they carry to. Not thread-safe: one thread owns it.

    Args:
        kafka: the cluster the links carry to (the city's), where their positions are.
        client_id: Kafka client id suffix.
    """

    def __init__(self, kafka: KafkaSettings, *, client_id: str = "lag-links") -> None:
        self.kafka = kafka
        self._consumer: KafkaConsumer = make_consumer(kafka, client_id, group_id=None, max_poll_records=1000)

    def close(self) -> None:
        """Close the Kafka client."""
        self._consumer.close()

    def of(self, dept: str, topic: str) -> dict[int, int] | None:
        """Where the link of department ``dept`` stands on ``topic``; None when it never carried from it.

        Raises:
            LagUnavailable: the cluster did not answer, or an open transaction held the read too long.
        """
        position_topic = names.position_topic(dept)
        try:
            partitions = self._consumer.partitions_for_topic(position_topic)
            if not partitions:
                return None  # the link never wrote a position (its sidecar never ran against this cluster)
            tps = [TopicPartition(position_topic, p) for p in sorted(partitions)]
            ends = self._consumer.end_offsets(tps)
            starts = self._consumer.beginning_offsets(tps)
            found = [self._newest(tp, int(starts[tp]), int(ends[tp]), topic) for tp in tps]
        except KafkaError as exc:
            raise LagUnavailable(
                f"hub link position of {dept} on {topic}: Kafka at {self.kafka.bootstrap_servers} "
                f"answered {type(exc).__name__}: {exc}",
                retry_after=2.0,
            ) from exc
        finally:
            self._consumer.unsubscribe()
        newest = max((f for f in found if f is not None), key=lambda f: f[0], default=None)
        return None if newest is None else newest[1]

    def _newest(
        self, tp: TopicPartition, low: int, high: int, topic: str
    ) -> tuple[int, dict[int, int]] | None:
        """The newest position on ``topic`` in partition ``tp`` (offsets ``low`` to ``high``)."""
        end, window = high, FIRST_WINDOW
        while end > low:
            start = max(low, end - window)
            found = self._last_in(tp, start, end, topic)
            if found is not None:
                return found
            end, window = start, window * 8
        return None

    def _last_in(
        self, tp: TopicPartition, start: int, end: int, topic: str
    ) -> tuple[int, dict[int, int]] | None:
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: tuple[int, dict[int, int]] | None = None
        deadline = time.monotonic() + READ_TIMEOUT_S
        # read_committed: the position moves past commit markers and aborted records on its own
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise LagUnavailable(
                    f"reading {tp.topic} partition {tp.partition} stalled at offset "
                    f"{consumer.position(tp)} of {end} (an open transaction?)",
                    retry_after=5.0,
                )
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.offset < end:
                        found = position_on(record.value, topic) or found
        return found
