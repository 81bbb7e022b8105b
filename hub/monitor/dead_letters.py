"""Dead letters per department: who sends bad data, and why. Read from the headers only, incrementally.

Every dead letter carries ``xhub.reason`` and ``xhub.origin`` (topic-partition@offset, or a source system's
own reference) headers, so no value is decoded. A dead letter counts against the department that sent the
bad record:

    origin xhub.src.<dept>.*   the hub could not use what <dept> published          -> sent by <dept>
    origin xhub.dlv.*          a subscriber's sink could not apply a delivery       -> not applied by the
                               (its own database or endpoint refused it)               topic's department
    anything else              a sidecar refused a row of its own source system     -> sent by the topic's
                                                                                       department
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from hub.core import names
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.monitor.errors import LagUnavailable
from hub.monitor.lag import owner_of_source_topic

log = get_logger("monitor.dead_letters")


@dataclass
class DepartmentDeadLetters:
    """Dead letters attributed to one department.

    Attributes:
        sent: records of this department that were dead-lettered (by its own sidecar or by a hub).
        by_reason: ``sent`` split by reason.
        not_applied: deliveries this department's sinks could not apply.
    """

    sent: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    not_applied: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "by_reason": dict(sorted(self.by_reason.items())),
            "not_applied": self.not_applied,
        }


def origin_topic(origin: str) -> str | None:
    """The topic of a ``topic-partition@offset`` origin; None for any other origin."""
    head, at, offset = origin.partition("@")
    topic, dash, partition = head.rpartition("-")
    if not at or not dash or not partition.isdigit() or not offset.isdigit():
        return None
    return topic


def attribute(dlq_owner: str, origin: str | None) -> tuple[str, bool]:
    """(department to blame, whether it is a sink that could not apply) for one dead letter."""
    topic = origin_topic(origin) if origin else None
    if topic is not None:
        sender = owner_of_source_topic(topic)
        if sender:
            return sender, False
        if topic.startswith(f"{names.PREFIX}.dlv."):
            return dlq_owner, True
    return dlq_owner, False


def _header(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


class DeadLetterTally:
    """Counts the dead letters of ``owners`` (departments and hubs) from the start of their topics.

    :meth:`refresh` reads what was added since the last call. Not thread-safe: one thread refreshes;
    :meth:`snapshot` returns a copy any thread may read.

    Args:
        kafka: how to reach the cluster.
        owners: department ids and hub names whose xhub.dlq.<owner> topics are read.
        client_id: Kafka client id suffix.
        metadata_max_age: seconds before the dead-letter topics are looked up again (listing the topics
            asks for the metadata of the whole cluster: not on every refresh); a tenth of it while some
            owner's topic does not exist yet.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        owners: Iterable[str],
        *,
        client_id: str = "monitor-dlq",
        metadata_max_age: float = 60.0,
    ) -> None:
        self.kafka = kafka
        self.owners = sorted(set(owners))
        self.metadata_max_age = metadata_max_age
        self._topics = {names.dead_letter_topic(o): o for o in self.owners}
        self._consumer = make_consumer(kafka, client_id, group_id=None, max_poll_records=2000)
        self._positions: dict[TopicPartition, int] = {}
        self._counts: dict[str, DepartmentDeadLetters] = {}
        self._tps: list[TopicPartition] = []
        self._tps_due = 0.0  # monotonic time the topics are looked up again

    def close(self) -> None:
        self._consumer.close()

    def refresh(self, timeout: float = 5.0) -> dict[str, DepartmentDeadLetters]:
        """Read the dead letters added since the last refresh (for at most ``timeout`` seconds).

        Raises:
            LagUnavailable: Kafka did not answer.
        """
        try:
            self._refresh(timeout)
        except KafkaError as exc:
            self._tps_due = 0.0  # a topic may have gone: look them up again
            raise LagUnavailable(
                f"dead-letter topics at {self.kafka.bootstrap_servers}: {type(exc).__name__}: {exc}"
            ) from exc
        return self.snapshot()

    def snapshot(self) -> dict[str, DepartmentDeadLetters]:
        return {
            dept: DepartmentDeadLetters(c.sent, Counter(c.by_reason), c.not_applied)
            for dept, c in sorted(self._counts.items())
        }

    def _partitions(self) -> list[TopicPartition]:
        now = time.monotonic()
        if now >= self._tps_due:
            consumer = self._consumer
            known = consumer.topics()
            self._tps = [
                TopicPartition(topic, p)
                for topic in sorted(self._topics)
                if topic in known
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            complete = {tp.topic for tp in self._tps} == set(self._topics)
            self._tps_due = now + self.metadata_max_age / (1 if complete else 10)
        return self._tps

    def _refresh(self, timeout: float) -> None:
        consumer = self._consumer
        tps = self._partitions()
        if not tps:
            return
        if set(tps) != set(consumer.assignment()):
            consumer.assign(tps)
            beginnings: Mapping[TopicPartition, int] = (
                consumer.beginning_offsets([tp for tp in tps if tp not in self._positions])
                if any(tp not in self._positions for tp in tps)
                else {}
            )
            for tp in tps:
                consumer.seek(tp, self._positions.get(tp, beginnings.get(tp, 0)))
        ends = consumer.end_offsets(tps)
        behind = {tp for tp in tps if consumer.position(tp) < ends.get(tp, 0)}
        deadline = time.monotonic() + timeout
        while behind and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                owner = self._topics[tp.topic]
                for rec in records:
                    self._count(owner, rec.headers)
            behind = {tp for tp in behind if consumer.position(tp) < ends.get(tp, 0)}
        for tp in tps:
            self._positions[tp] = consumer.position(tp)

    def _count(self, owner: str, headers: Any) -> None:
        dept, sink_side = attribute(owner, _header(headers, "xhub.origin"))
        counts = self._counts.setdefault(dept, DepartmentDeadLetters())
        if sink_side:
            counts.not_applied += 1
        else:
            counts.sent += 1
            counts.by_reason[_header(headers, "xhub.reason") or "unknown"] += 1
