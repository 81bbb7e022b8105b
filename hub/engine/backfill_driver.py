"""The backfill task of one worker: its own thread, producer, transactional id and audit chain.

The main loop never waits for a backfill chunk. It only says which subscriptions are being backfilled
(``offer``, after each commit that moved the partitions' states) and takes a subscription back when the
backfill is caught up (``parked``). This task reads the source in large chunks (backfill.py) and
delivers each chunk in a transaction of its own producer that also carries the new position as a state
changelog entry, so a restart resumes exactly where the last committed chunk ended. It commits no
consumed offsets: the main loop's are the group's.

Handover, per partition and subscription: the catch-up reads to (near) the partition's end, then the
task parks the subscription at its committed position P and delivers nothing more for it. The main loop then
serves it from P on (``Live(P)``) when its own position is not past P; when it is, the loop pauses the
partition and asks the task to catch up to its position first (``extend``). Every record thus reaches
the subscriber once: below P from this task, from P on from the loop.

Ownership: the main loop ends a backfill (abandoned, dropped by a policy change, partition lost) only
after ``release``, which waits for this task's transaction on it to finish and stops it from starting
another; the two never write the same subscription's state at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub.core import names
from hub.core.envelope import now_ms
from hub.core.errors import InvalidRecord, RetriableError
from hub.core.hanging_transactions import abort_own_hanging_on
from hub.core.kafka import make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.engine.audit_log import AuditLog
from hub.engine.backfill import BackfillChunk, Backfiller, BackfillTask
from hub.engine.backfill_progress import ProgressTracker
from hub.engine.emitter import Batch, Decoded, Emitter
from hub.engine.handover import Backfilling, BackfillProgress, PartitionState, partition_progress
from hub.engine.live_policy import LivePolicy
from hub.engine.records import SourceRecord
from hub.engine.state.changelog import Changelog
from hub.engine.state.store import StateStore
from hub.engine.stats import WorkerStats
from hub.engine.transaction import Positions, TransactionStep
from hub.policy.plan import DeliveryPlan

log = get_logger("engine")

IDLE_S = 0.2  # nothing to do: wait this long for an offer (an offer wakes the task at once)
RETRY_PAUSE_S = 1.0  # after the broker could not answer a read

Pair = tuple[TopicPartition, str]  # (source partition, subscription)


@dataclass(frozen=True)
class BackfillClients:
    """What the backfill task needs of its worker to make its own producer and audit chain."""

    kafka: KafkaSettings
    hub: str
    worker_id: int
    transaction_timeout_ms: int
    audit: AuditLog  # the task's own chain (named after its transactional id)
    emitter: Emitter  # with that audit log, and the worker's state store
    changelog: Changelog
    written_topics: Callable[[], set[str]]  # where a transaction of ours may hang after a crash


class BackfillDriver:
    """The backfills of the partitions one worker owns, run on a thread of their own.

    ``progress``: {subscription: BackfillProgress} (a finished backfill stays as state "done"), replaced
    whole on each change: the monitor reads it from another thread.
    """

    def __init__(
        self,
        reader: Backfiller,
        policy: LivePolicy,
        state: StateStore,
        stats: WorkerStats,
        clients: BackfillClients | None = None,
    ) -> None:
        self.reader = reader
        self.policy = policy
        self.state = state
        self.stats = stats
        self.clients = clients
        self.transactional_id = (
            names.hub_backfill_transactional_id(clients.hub, clients.worker_id) if clients else ""
        )
        self.progress: dict[str, BackfillProgress] = {}
        self.error: BaseException | None = None  # what ended the task (the worker stops on it)
        self.on_failure: Callable[[], None] | None = None
        self._mu = threading.Condition()  # guards the fields below; an offer wakes the task
        self._view: dict[TopicPartition, PartitionState] = {}  # the main loop's committed states
        self._log_start: dict[TopicPartition, int] = {}
        self._parked: dict[Pair, int] = {}  # caught up at this offset: the main loop takes them over
        self._limits: dict[Pair, int] = {}  # catch up to here (the main loop's position), then park
        self._current: set[Pair] = set()  # served by the transaction under way
        # Claimed by the main loop's step under way: the task leaves them alone, but the view keeps their
        # committed state until that step's offer, so their progress does not vanish meanwhile.
        self._released: set[Pair] = set()
        self._busy = threading.Lock()  # held by the task for one chunk; release() waits on it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracker = ProgressTracker(policy.hub)
        self._log = log.bind(hub=policy.hub)

    # -- the main loop's side --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"backfill-{self.transactional_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        with self._mu:
            self._mu.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def offer(
        self,
        states: dict[TopicPartition, PartitionState],
        log_start: dict[TopicPartition, int],
        *,
        whole: bool = True,
    ) -> None:
        """The main loop's committed states: which subscriptions to backfill.

        ``whole``: every owned partition's state (after a load or a policy change); else only the
        partitions a step moved. Only partitions with a backfill, or that had one, are copied: this
        runs after every batch of the main loop.
        """
        with self._mu:
            view = {} if whole else self._view
            if whole:
                view.update({tp: st for tp, st in self._view.items() if tp in states})
            for tp, state in states.items():
                if tp in view or any(isinstance(h, Backfilling) for h in state.values()):
                    view[tp] = dict(state)
            self._view = view
            self._released = {pair for pair in self._released if pair[0] not in states}
            self._log_start.update({tp: log_start[tp] for tp in view if tp in log_start})
            self._mu.notify_all()

    def backfilling(self) -> bool:
        with self._mu:
            return any(isinstance(h, Backfilling) for st in self._view.values() for h in st.values())

    def release(self, pairs: Iterable[Pair]) -> None:
        """The main loop takes these subscriptions over: once this returns the task writes nothing more
        for them (it waits for a transaction of the task that serves one of them)."""
        gone = set(pairs)
        if not gone:
            return
        with self._mu:
            for tp, sid in gone:
                self._parked.pop((tp, sid), None)
                self._limits.pop((tp, sid), None)
            self._released |= gone
            wait = bool(self._current & gone)
        if wait:
            with self._busy:
                pass

    def forget(self, tps: set[TopicPartition]) -> None:
        """Partitions lost: their backfills stop here (and go on at their new owner)."""
        with self._mu:
            pairs = [(tp, sid) for tp in tps for sid in self._view.get(tp, {})]
        self.release(pairs)
        with self._mu:
            for tp in tps:
                self._view.pop(tp, None)
            self._released = {pair for pair in self._released if pair[0] not in tps}
        with self._busy:  # the reader belongs to the task thread: touch it only between chunks
            self.reader.forget(tps)

    def parked(self) -> dict[TopicPartition, dict[str, int]]:
        """Caught-up subscriptions per partition, with the offset the main loop serves them from."""
        out: dict[TopicPartition, dict[str, int]] = {}
        with self._mu:
            for (tp, sid), at in self._parked.items():
                out.setdefault(tp, {})[sid] = at
        return out

    def extend(self, tp: TopicPartition, sids: Iterable[str], limit: int) -> None:
        """The main loop is past where these parked: catch up to ``limit`` (where it waits) first."""
        with self._mu:
            for sid in sids:
                self._parked.pop((tp, sid), None)
                self._limits[(tp, sid)] = limit
            self._mu.notify_all()

    def extending(self, tp: TopicPartition) -> bool:
        """Whether a backfill on ``tp`` is catching up to a position the main loop named."""
        with self._mu:
            return any(pair[0] == tp for pair in self._limits)

    def handed_over(self, tp: TopicPartition, sids: Iterable[str]) -> None:
        """The main loop serves these now."""
        with self._mu:
            for sid in sids:
                self._parked.pop((tp, sid), None)
                self._limits.pop((tp, sid), None)

    def started(self, started: list[tuple[str, TopicPartition, Backfilling]]) -> None:
        for sid, tp, h in started:
            with self._mu:
                start = self._log_start.get(tp, 0)
            _, total = partition_progress(h, start)
            self._log.info(
                "backfill_started",
                subscription=sid,
                topic=tp.topic,
                partition=tp.partition,
                handover=h.snapshot_end,
                total=total,
            )

    # -- the task --------------------------------------------------------------------------------
    def _run(self) -> None:
        assert self.clients is not None
        c = self.clients
        client_id = f"hub-{c.hub}-{c.worker_id}-backfill"
        producer: KafkaProducer | None = None
        try:
            producer = self._producer(client_id)
            c.audit.resume(c.kafka)
            tx = TransactionStep(
                producer,
                None,
                c.audit.chain,
                self.state,
                c.changelog,
                self.stats,
                hub=c.hub,
                worker_id=c.worker_id,
                transactional_id=self.transactional_id,
            )
            tx.wait = self._stop.wait
            tx.reopen = lambda: self._reopen(client_id, tx)
            tx.timeout_s = c.transaction_timeout_ms / 1000  # a fence after most of it: the broker's abort
            while not self._stop.is_set():
                if not self._step(tx):
                    self._stop.wait(RETRY_PAUSE_S)
            producer = tx.producer
        except BaseException as exc:  # noqa: BLE001 - handed to the worker, which stops on it
            self.error = exc
            self._log.exception("backfill_task_failed", error=f"{type(exc).__name__}: {exc}")
            if self.on_failure is not None:
                self.on_failure()
        finally:
            self.reader.close()
            if producer is not None:
                producer.close(timeout=5)

    def _producer(self, client_id: str) -> KafkaProducer:
        """A transactional producer of the task's own id; fences its predecessor, aborts what hangs."""
        assert self.clients is not None
        c = self.clients
        while True:
            try:
                producer = make_producer(
                    c.kafka,
                    client_id,
                    transactional_id=self.transactional_id,
                    transaction_timeout_ms=c.transaction_timeout_ms,
                )
                producer.init_transactions()
            except (KafkaError, RetriableError) as exc:
                self._log.warning("backfill_producer_failed", error=f"{type(exc).__name__}: {exc}")
                if self._stop.wait(RETRY_PAUSE_S):
                    raise
                continue
            abort_own_hanging_on(c.kafka, self.transactional_id, c.written_topics())
            return producer

    def _reopen(self, client_id: str, tx: TransactionStep) -> KafkaProducer:
        return self._producer(client_id)

    def _step(self, tx: TransactionStep) -> bool:
        """One chunk of the first backfill that has work; False when the source could not be read."""
        with self._busy:
            with self._mu:
                tasks = self._tasks(now_ms())
                if tasks:
                    task, limit = tasks[0]
                    self._current = set(self._pairs(task))
            if tasks:
                try:
                    return self._advance(tx, task, limit, [t for t, _ in tasks])
                finally:
                    with self._mu:
                        self._current = set()
        self._update_progress(None)
        with self._mu:
            self._mu.wait(IDLE_S)
        return True

    def _advance(
        self, tx: TransactionStep, task: BackfillTask, limit: int | None, tasks: list[BackfillTask]
    ) -> bool:
        self.reader.retain(tasks)
        try:
            chunk = self.reader.step(task, limit)
        except (KafkaError, RetriableError) as exc:  # the broker or the registry: try again later
            self._log.warning("backfill_read_failed", error=f"{type(exc).__name__}: {exc}")
            self.reader.rewind()
            return False
        self._update_progress(task)
        if chunk is None:
            return True
        if (chunk.rows or chunk.position != task.position) and not self._deliver(tx, task, chunk):
            return True
        if chunk.live_at is not None:
            self._park(task, chunk)
        return True

    def _deliver(self, tx: TransactionStep, task: BackfillTask, chunk: BackfillChunk) -> bool:
        """One chunk and the new position, in one transaction; False when it aborted."""
        started = time.perf_counter()
        batch = Batch(kind="snapshot" if chunk.snapshot else "catch_up")
        assert self.clients is not None
        emitter = self.clients.emitter
        now = now_ms()

        def body(producer: KafkaProducer) -> Positions:
            plans = list(task.plans)
            for row in chunk.rows:
                decoded: Decoded = (
                    row.event
                    if row.event is not None
                    else row.error or InvalidRecord("undecodable", "undecodable record")
                )
                emitter.emit(producer, SourceRecord.of(row.record), decoded, plans, now, batch)
            emitter.finish(producer, batch)
            state: PartitionState = {
                sid: Backfilling(task.snapshot_end, chunk.position) for sid in task.subscriptions
            }
            return {task.tp: (chunk.position, state)}

        if not tx.run(body, rewind=self.reader.rewind, held=batch.held):
            return False
        batch.account(self.stats, time.perf_counter() - started)
        return True

    def _park(self, task: BackfillTask, chunk: BackfillChunk) -> None:
        assert chunk.live_at is not None
        with self._mu:
            for pair in self._pairs(task):
                if pair[1] in self._view.get(pair[0], {}) and pair not in self._released:
                    self._parked[pair] = chunk.live_at
                    self._limits.pop(pair, None)
        self._log.debug(
            "backfill_caught_up", topic=task.tp.topic, partition=task.tp.partition, at=chunk.live_at
        )

    @staticmethod
    def _pairs(task: BackfillTask) -> list[Pair]:
        return [(task.tp, sid) for sid in task.subscriptions]

    def _tasks(self, now: int) -> list[tuple[BackfillTask, int | None]]:
        """The backfills with work (under ``_mu``), grouped by where they stand; positions as committed."""
        groups: dict[tuple[TopicPartition, int, int, int | None], list[DeliveryPlan]] = {}
        plans = self.policy.policies.plans
        for tp in sorted(self._view):
            committed = self.state.handover(tp)
            for sid, seen in sorted(self._view[tp].items()):
                if (
                    not isinstance(seen, Backfilling)
                    or (tp, sid) in self._parked
                    or (tp, sid) in self._released
                ):
                    continue
                plan = plans.get(sid)
                if plan is None or plan.source_topic != tp.topic or plan.refusal_at(now) is not None:
                    continue
                mine = committed.get(sid)
                # The main loop's copy may be behind this task's last commit.
                h = mine if isinstance(mine, Backfilling) and mine.snapshot_end == seen.snapshot_end else seen
                groups.setdefault((tp, h.snapshot_end, h.position, self._limits.get((tp, sid))), []).append(
                    plan
                )
        return [
            (BackfillTask(tp, end, pos, self._log_start.get(tp, 0), tuple(p)), limit)
            for (tp, end, pos, limit), p in groups.items()
        ]

    # -- progress --------------------------------------------------------------------------------
    def _update_progress(self, active: BackfillTask | None) -> None:
        """Rebuild ``progress`` from the main loop's states and this task's committed positions."""
        phase = self.reader.phase(active) if active is not None else None
        with self._mu:
            view = {tp: dict(st) for tp, st in self._view.items()}
            log_start = dict(self._log_start)
        states = {
            tp: {**st, **{s: h for s, h in self.state.handover(tp).items() if s in st}}
            for tp, st in view.items()
        }
        running = (active, phase) if active is not None and phase else None
        self.progress = self._tracker.update(states, log_start, set(self.policy.policies.plans), running)
