"""Which delivery topics a department's identity may read now (READ comes and goes with its grants).

A subscription whose grant is not (or no longer) in force has no READ on its delivery topic. In one
consumer group with the department's other subscriptions, such a topic failed the whole sink: the demo's
transport department received nothing, not even its unconditional deliveries, until psb answered its
share request, because its static group member was given back an assignment from the last run, which
still held the refused topic. The sink loop reads the permitted topics and asks for the others again
every ``PERMISSION_RECHECK_S``.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError

PERMISSION_RECHECK_S = 10.0  # how often a topic the broker refused is asked for again


class ReadPermissions:
    """The refused topics of one sink, and the check that sorts topics into permitted and refused."""

    def __init__(self, log: structlog.stdlib.BoundLogger) -> None:
        self.refused: set[str] = set()
        self._log = log

    def permitted(self, consumer: KafkaConsumer, topics: Sequence[str]) -> list[str]:
        """The topics of ``topics`` the broker lets ``consumer``'s identity read; the others are refused."""
        permitted: list[str] = []
        for topic in topics:
            # Knowing the partitions first also matters for the join: a sink whose first join went
            # ahead without them was assigned nothing and stayed so (test_filtered_views).
            if not consumer.partitions_for_topic(topic):
                try:
                    consumer.end_offsets([TopicPartition(topic, 0)])  # empty metadata: refused or missing
                except TopicAuthorizationFailedError:
                    if topic not in self.refused:
                        self._log.warning("topic_not_permitted", topic=topic, recheck_s=PERMISSION_RECHECK_S)
                    self.refused.add(topic)
                    continue
                except KafkaError:
                    pass  # not a refusal (e.g. not created yet): subscribe, as before
            if topic in self.refused:
                self._log.info("topic_permitted", topic=topic)
            self.refused.discard(topic)
            permitted.append(topic)
        return permitted
