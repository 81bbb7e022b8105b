"""The main loop's side of a backfill's end: a caught-up subscription goes live (see backfill_driver.py).

The backfill task parks a subscription at its committed position P once it has caught up. The loop then
serves it from P on (``Live(P)``, committed in a transaction of its own), or, when the loop is already past
P, pauses that partition and lets the task catch up to the loop's position first: so nothing between the
two is lost, nothing sent twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub.engine.backfill_driver import BackfillDriver
from hub.engine.handover import Backfilling, Live, PartitionState
from hub.engine.partitions import Partitions
from hub.engine.transaction import Positions, TransactionStep


class LiveHandover:
    """Hands caught-up backfills to the live loop; ``paused``: partitions held while a gap closes."""

    def __init__(
        self,
        partitions: Partitions,
        backfill: BackfillDriver,
        committed: Callable[[dict[TopicPartition, PartitionState]], None],
        log: Any,
    ) -> None:
        self.partitions = partitions
        self.backfill = backfill
        self.committed = committed  # the worker takes the states a handover committed
        self.paused: set[TopicPartition] = set()
        self._log = log

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions lost: nothing is held there any more."""
        self.paused -= revoked

    def run(self, tx: TransactionStep, consumer: KafkaConsumer) -> None:
        """Serve the caught-up subscriptions from where their backfill stopped.

        Past that point already (the loop went on meanwhile), the loop holds the partition and lets the
        backfill catch up to it first: then nothing between the two is lost, nothing sent twice.
        """
        parked = self.backfill.parked()
        for tp in [tp for tp in self.paused if tp not in parked and not self.backfill.extending(tp)]:
            consumer.resume(tp)  # nothing to wait for there any more (handed over, or abandoned)
            self.paused.discard(tp)
        if not parked:
            return
        changes: dict[TopicPartition, PartitionState] = {}
        positions: dict[TopicPartition, int] = {}
        live: list[tuple[TopicPartition, str, int]] = []
        try:
            for tp, sids in parked.items():
                state = self.partitions.states.get(tp)
                if state is None:
                    continue  # lost meanwhile
                loop_at = self.partitions.position(consumer, tp)
                behind = [sid for sid, at in sids.items() if at < loop_at]
                if behind:
                    consumer.pause(tp)
                    self.paused.add(tp)
                    self.backfill.extend(tp, behind, loop_at)
                new = dict(state)
                for sid, at in sids.items():
                    if at >= loop_at and isinstance(new.get(sid), Backfilling):
                        new[sid] = Live(at)
                        live.append((tp, sid, at))
                if new != state:
                    changes[tp], positions[tp] = new, loop_at
        except KafkaError as exc:
            self._log.warning("handover_deferred", error=f"{type(exc).__name__}: {exc}")
            return
        if not changes:
            return

        def body(producer: KafkaProducer) -> Positions:
            return {tp: (positions[tp], state) for tp, state in changes.items()}

        if not tx.run(body):
            return
        self.committed(changes)
        for tp, sid, at in live:
            self.backfill.handed_over(tp, [sid])
            self._log.info(
                "backfill_live", subscription=sid, topic=tp.topic, partition=tp.partition, live_from=at
            )
