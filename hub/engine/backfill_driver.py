"""Drives the backfills of one worker: one chunk per step, each in its own transaction, and the progress.

The reader (backfill.py) says what to send; this module groups the subscriptions being backfilled into
tasks, sends a chunk through the emitter in a transaction that also records the new position in the
partition's committed state (handover.py), and keeps ``progress`` for the monitor.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub.core.envelope import now_ms
from hub.core.errors import InvalidRecord, RetriableError
from hub.core.log import get_logger
from hub.engine.backfill import BackfillChunk, Backfiller, BackfillTask
from hub.engine.emitter import Batch, Decoded, Emitter
from hub.engine.handover import Backfilling, BackfillProgress, Live, PartitionState, partition_progress
from hub.engine.live_policy import LivePolicy
from hub.engine.partitions import Partitions
from hub.engine.records import SourceRecord
from hub.engine.stats import WorkerStats
from hub.engine.transaction import Positions, TransactionStep
from hub.policy.plan import DeliveryPlan

log = get_logger("engine")

PROGRESS_LOG_S = 2.0  # at most one backfill_progress line per subscription this often


class BackfillDriver:
    """The backfills of the partitions one worker owns.

    ``progress``: {subscription: BackfillProgress} (a finished backfill stays as state "done"), replaced
    whole on each change: the monitor reads it from another thread.
    """

    def __init__(
        self,
        reader: Backfiller,
        partitions: Partitions,
        policy: LivePolicy,
        emitter: Emitter,
        stats: WorkerStats,
    ) -> None:
        self.reader = reader
        self.partitions = partitions
        self.policy = policy
        self.emitter = emitter
        self.stats = stats
        self.due = False  # some subscription is being backfilled here: the loop does not wait for records
        self.progress: dict[str, BackfillProgress] = {}
        self._progress_logged: dict[str, float] = {}
        self._spans: dict[str, dict[TopicPartition, int]] = {}  # backfills seen: sid -> {partition: total}
        self._log = log.bind(hub=policy.hub)

    def refresh(self) -> None:
        """After the states changed: whether a backfill is due (progress cleared when the last ends)."""
        was = self.due
        self.due = self.partitions.backfilling()
        if was and not self.due:
            self.update_progress(None)

    def forget(self, tps: set[TopicPartition]) -> None:
        """Partitions lost: their backfills go on elsewhere."""
        self.reader.forget(tps)
        self.refresh()

    def committed(self, states: dict[TopicPartition, PartitionState]) -> None:
        """A transaction moved these partitions' states: they become the worker's."""
        self.partitions.commit(states)
        self.refresh()

    def started(self, started: list[tuple[str, TopicPartition, Backfilling]]) -> None:
        for sid, tp, h in started:
            _, total = partition_progress(h, self.partitions.log_start.get(tp, 0))
            self._log.info(
                "backfill_started",
                subscription=sid,
                topic=tp.topic,
                partition=tp.partition,
                handover=h.snapshot_end,
                total=total,
            )

    # -- one step --------------------------------------------------------------------------------
    def step(self, tx: TransactionStep, consumer: KafkaConsumer) -> bool:
        """Advance the first backfill of this worker by one chunk, in its own transaction.

        Returns:
            False when the source could not be read (the caller pauses before trying again).
        """
        now = now_ms()
        tasks = self._tasks(now)
        if not tasks:
            self.update_progress(None)
            return True
        task = tasks[0]
        self.reader.retain(tasks)
        try:
            loop_position = self.partitions.position(consumer, task.tp)
            chunk = self.reader.step(task, loop_position)
        except (KafkaError, RetriableError) as exc:  # the broker or the registry: try again later
            self._log.warning("backfill_read_failed", error=f"{type(exc).__name__}: {exc}")
            self.reader.rewind()
            return False
        self.update_progress(task)
        if chunk is None:
            return True
        started = time.perf_counter()
        batch = Batch(kind="snapshot" if chunk.snapshot else "catch_up")

        def body(producer: KafkaProducer) -> Positions:
            plans = list(task.plans)
            for row in chunk.rows:
                decoded: Decoded = (
                    row.event
                    if row.event is not None
                    else row.error or InvalidRecord("undecodable", "undecodable record")
                )
                self.emitter.emit(producer, SourceRecord.of(row.record), decoded, plans, now, batch)
            self.emitter.finish(producer, batch)
            state = dict(self.partitions.states.get(task.tp, {}))
            for sid in task.subscriptions:
                if chunk.live_at is not None:
                    state[sid] = Live(chunk.live_at)
                else:
                    state[sid] = Backfilling(task.snapshot_end, chunk.position)
            batch.states[task.tp] = state
            return {task.tp: (loop_position, state)}

        if not tx.run(body, rewind=self.reader.rewind, held=batch.held):
            return True
        self.committed(batch.states)
        batch.account(self.stats, time.perf_counter() - started)
        if chunk.live_at is not None:
            self._finished(task, chunk)
        else:
            self.update_progress(task)
        return True

    def _tasks(self, now: int) -> list[BackfillTask]:
        groups: dict[tuple[TopicPartition, int, int], list[DeliveryPlan]] = {}
        states = self.partitions.states
        plans = self.policy.policies.plans
        for tp in sorted(states):
            for sid, h in sorted(states[tp].items()):
                if not isinstance(h, Backfilling):
                    continue
                plan = plans.get(sid)
                if plan is None or plan.source_topic != tp.topic or plan.refusal_at(now) is not None:
                    continue
                groups.setdefault((tp, h.snapshot_end, h.position), []).append(plan)
        log_start = self.partitions.log_start
        return [
            BackfillTask(tp, end, pos, log_start.get(tp, 0), tuple(plans))
            for (tp, end, pos), plans in groups.items()
        ]

    def _finished(self, task: BackfillTask, chunk: BackfillChunk) -> None:
        self.update_progress(None)
        for sid in task.subscriptions:
            self._log.info(
                "backfill_live",
                subscription=sid,
                topic=task.tp.topic,
                partition=task.tp.partition,
                live_from=chunk.live_at,
            )
            progress = self.progress.get(sid)
            if progress is not None and progress.state == "done":
                self._log.info("backfill_done", subscription=sid, records=progress.total)

    # -- progress --------------------------------------------------------------------------------
    def update_progress(self, active: BackfillTask | None) -> None:
        """Rebuild ``progress``.

        A subscription's backfill spans the partitions this worker owns; a partition whose backfill has
        gone live counts as done, and when none is left the subscription shows "done".
        """
        active_phase = self.reader.phase(active) if active is not None else None
        states = self.partitions.states
        spans = self._spans
        for sid in list(spans):  # forget partitions lost, and backfills abandoned
            kept = {tp: t for tp, t in spans[sid].items() if sid in states.get(tp, {})}
            if kept and sid in self.policy.policies.plans:
                spans[sid] = kept
            else:
                del spans[sid]
        sums: dict[str, list[int]] = {}
        phases: dict[str, str] = {}
        for tp, state in states.items():
            start = self.partitions.log_start.get(tp, 0)
            for sid, h in state.items():
                if not isinstance(h, Backfilling):
                    continue
                done, total = partition_progress(h, start)
                spans.setdefault(sid, {})[tp] = total
                acc = sums.setdefault(sid, [0, 0])
                acc[0] += done
                acc[1] += total
                if active is not None and active_phase and tp == active.tp and sid in active.subscriptions:
                    phases[sid] = active_phase
                else:
                    phases.setdefault(sid, "waiting")
        out: dict[str, BackfillProgress] = {}
        clock = time.monotonic()
        for sid, by_tp in spans.items():
            acc = sums.setdefault(sid, [0, 0])
            for tp, total in by_tp.items():
                if not isinstance(states[tp][sid], Backfilling):
                    acc[0] += total  # live there: its part is done
                    acc[1] += total
            done, total = acc
            phase = phases.get(sid, "done")
            out[sid] = BackfillProgress(done, total, phase)
            if phase != "done" and clock - self._progress_logged.get(sid, 0.0) >= PROGRESS_LOG_S:
                self._progress_logged[sid] = clock
                self._log.info("backfill_progress", subscription=sid, done=done, total=total, state=phase)
        self.progress = out
