"""One worker of one exchange hub: the exactly-once consume -> policy -> deliver loop, with backfills.

Per batch, in ONE Kafka transaction (transaction.py): the deliveries, the dead letters, the audit entries
and the consumed offsets (send_offsets_to_transaction with the group metadata). Read_committed on the
way in. Several workers of a hub share the partitions through the consumer group; each has a stable
transactional id (hub + worker id) so a restarted worker fences its predecessor and aborts its open
transaction at once.

The worker's state (where every subscription stands on each partition: live from an offset, or being
backfilled, see handover.py; the keys each filtered subscription holds) lives in its state store
(hub/engine/state/): a local SQLite file per owned partition, backed by the compacted changelog
``xhub.state.<hub>`` written in the same transaction, restored when the worker gains the partition. Each
committed offset carries the head of the worker's audit chain in its metadata.
A partition the group has never committed starts at its end; whatever was there before reaches each
subscription through its backfill, as the current state. Between batches the worker follows the applied
config (live_policy.py), notices validity windows opening and closing, and takes over the subscriptions
whose backfill caught up. Backfills run beside the loop, never inside it: a task on a thread of its own
with its own producer and transactional id (backfill_driver.py), so no live record waits for a chunk.
The pieces: options.py (what it is told), partitions.py (ownership), live_handover.py (a caught-up
backfill goes live), emitter.py (a record and its plans -> deliveries, audit entries, dead letters),
audit_log.py (the hash chain).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from hub.audit.chain import AuditChain
from hub.core import names
from hub.core.envelope import now_ms
from hub.core.errors import RetriableError
from hub.core.group_join import rejoin_if_stranded
from hub.core.hanging_transactions import abort_own_hanging_on
from hub.core.kafka import (
    STATIC_MEMBER_SESSION_TIMEOUT_MS,
    close_producer,
    make_admin,
    make_consumer,
    make_producer,
)
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.engine.audit_log import AuditLog
from hub.engine.backfill import Backfiller
from hub.engine.backfill_driver import BackfillClients, BackfillDriver
from hub.engine.delivery_budget import cut_to_budget
from hub.engine.emitter import Batch, Emitter
from hub.engine.handover import Backfilling, BackfillProgress, Live, PartitionState, establish
from hub.engine.live_handover import LiveHandover
from hub.engine.live_policy import LivePolicy
from hub.engine.options import WorkerOptions, state_directory
from hub.engine.partitions import Partitions
from hub.engine.policy_set import PolicySet
from hub.engine.provenance import topic_owner
from hub.engine.readers import SourceReaders
from hub.engine.records import Serde, SourceRecord
from hub.engine.state.changelog import Changelog
from hub.engine.state.restore import Restorer
from hub.engine.state.store import StateStore
from hub.engine.stats import WorkerStats
from hub.engine.transaction import Positions, TransactionStep
from hub.policy.plan import DeliveryPlan

__all__ = ["HubWorker", "Serde", "WorkerOptions"]

log = get_logger("engine")

RETRY_PAUSE_S = 1.0  # after the broker could not answer, before the loop tries again


class HubWorker:
    """Run with :meth:`run` (blocks) and stop from another thread or a signal handler with :meth:`stop`.

    Read by the monitor: ``stats``, ``policies``, ``ready``, ``assignment``, ``group_id``,
    ``transactional_id`` and ``backfills`` ({subscription: BackfillProgress} of the partitions this
    worker owns; a finished backfill stays as state "done").
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        policies: PolicySet,
        serde: Serde,
        secret: bytes,
        options: WorkerOptions,
        *,
        stats: WorkerStats | None = None,
    ) -> None:
        self.kafka = kafka
        self.serde = serde
        self.secret = secret
        self.options = options
        self.stats = stats or WorkerStats()
        # Called after each install of a new policy set (set it after construction when wanted).
        self.on_policy_change: Callable[[PolicySet], None] | None = None
        self.hub = options.hub
        self.transactional_id = names.hub_transactional_id(self.hub, options.worker_id)
        self.group_id = names.hub_group(self.hub)
        self.audit = AuditLog(self.hub, self.transactional_id, serde, secret, audit_key=options.audit_key)
        self.live = LivePolicy(
            kafka, policies, self.audit, secret, self.stats, verifier=options.config_verifier
        )
        self.readers = SourceReaders(serde, policies)  # source records are read as the catalog has them
        self.state = StateStore(state_directory(options))
        self.emitter = Emitter(self.hub, serde, self.audit, self.readers, state=self.state, secret=secret)
        self.changelog = Changelog(self.hub)
        self.restorer = Restorer(
            kafka, f"hub-{self.hub}-{options.worker_id}-restore", self.changelog, self.stats
        )
        self.partitions = Partitions(
            self.hub, self.live, options.first_start, self._revoked, self.state, self.restorer
        )
        # Large chunks: the backfill's transactions hold up no live record, so fewer commits is all gain.
        chunk = options.backfill_chunk_records or max(50, 10 * options.batch_max_records)
        name = f"hub-{self.hub}-{options.worker_id}-backfill"
        reader = Backfiller(
            kafka,
            name,
            self.readers,
            chunk_records=chunk,
            chunk_deliveries=max(chunk, options.batch_max_deliveries),
        )
        backfill_id = names.hub_backfill_transactional_id(self.hub, options.worker_id)
        backfill_audit = AuditLog(self.hub, backfill_id, serde, secret, audit_key=options.audit_key)
        clients = BackfillClients(
            kafka,
            self.hub,
            options.worker_id,
            options.transaction_timeout_ms,
            backfill_audit,
            Emitter(self.hub, serde, backfill_audit, self.readers, state=self.state, secret=secret),
            self.changelog,
            self._written_topics,
        )
        self.backfill = BackfillDriver(reader, self.live, self.state, self.stats, clients)
        self.backfill.on_failure = self.stop
        self.ready = threading.Event()
        self.assignment: frozenset[TopicPartition] = frozenset()  # partitions this worker owns now
        self._stop = threading.Event()
        self._dirty = True  # policies, windows or ownership changed: reconcile before the next poll
        self._log = log.bind(hub=self.hub)
        self.handover = LiveHandover(self.partitions, self.backfill, self._committed, self._log)

    @property
    def policies(self) -> PolicySet:
        return self.live.policies

    @property
    def backfills(self) -> dict[str, BackfillProgress]:
        return self.backfill.progress

    @property
    def chain(self) -> AuditChain:
        return self.audit.chain

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        client_id = f"hub-{self.hub}-{self.options.worker_id}"
        producer = self._initialised_producer(client_id)
        consumer = make_consumer(
            self.kafka,
            client_id,
            group_id=self.group_id,
            max_poll_records=self.options.batch_max_records,
            # Static membership: a restarted worker takes its old place at once instead of waiting for
            # the dead member's session to expire (45 s by default) before the group rebalances.
            group_instance_id=self.transactional_id,
            session_timeout_ms=STATIC_MEMBER_SESSION_TIMEOUT_MS,
            # Round robin over every partition of every topic: the range assignor (kafka-python's first
            # default) gives partition 0 of each topic to one member, so with one-partition source topics
            # (Pudong's 2,600) a second worker got none. Range stays listed for workers not yet upgraded.
            partition_assignment_strategy=(RoundRobinPartitionAssignor, RangePartitionAssignor),
            # No automatic reset: a partition the group never committed starts at its end (what is
            # already there reaches each subscription through its backfill, as state, not as a replay of
            # every change), while an offset out of range restarts at the beginning (see reposition).
            auto_offset_reset="none",
        )
        producers = [producer]  # the last is in use (TransactionStep.reopen may replace it)
        try:
            self._open_changelog(consumer)
            self.audit.resume(self.kafka)
            if self.options.follow_config:
                self.live.open()
                self.live.follow(wait=True)
                self.readers.update(self.policies)
            self.live.in_force()
            abort_own_hanging_on(self.kafka, self.transactional_id, self._written_topics())
            self._dirty = True
            self.partitions.subscribe(consumer)
            self._log.info(
                "worker_started",
                worker=self.options.worker_id,
                subscriptions=len(self.policies.plans),
                topics=len(self.policies.by_topic),
            )
            tx = TransactionStep(
                producer,
                consumer,
                self.audit.chain,
                self.state,
                self.changelog,
                self.stats,
                hub=self.hub,
                worker_id=self.options.worker_id,
            )
            tx.wait = self._stop.wait  # a backoff pause ends when the worker is stopped

            def reopen() -> KafkaProducer:
                # Until it works: right after a broker's death init_transactions can time out (max_block_ms)
                # while the coordinator moves; a failed reopen must not end the worker.
                while True:
                    try:
                        fresh = self._initialised_producer(client_id)
                    except (KafkaError, RetriableError) as exc:
                        self._log.warning("producer_reopen_failed", error=f"{type(exc).__name__}: {exc}")
                        if self._stop.wait(tx.backoff.next()):
                            raise
                        continue
                    abort_own_hanging_on(self.kafka, self.transactional_id, self._written_topics())
                    producers.append(fresh)
                    return fresh

            tx.reopen = reopen
            tx.timeout_s = self.options.transaction_timeout_ms / 1000
            tx.claim = self.backfill.release
            self.backfill.start()
            self._loop(tx, consumer)
            if self.backfill.error is not None:
                raise self.backfill.error
        finally:
            self._log.info("worker_stopping", worker=self.options.worker_id)
            self.backfill.stop()
            consumer.close()
            self.live.close()
            self.restorer.close()
            self.state.close_all()
            producers[-1].close(timeout=5)

    def _initialised_producer(self, client_id: str) -> KafkaProducer:
        """A fresh transactional producer with its ``init_transactions`` done (closed when that fails)."""
        producer = make_producer(
            self.kafka,
            client_id,
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self.options.transaction_timeout_ms,
        )
        try:
            producer.init_transactions()
        except BaseException:
            close_producer(producer, timeout_s=1)
            raise
        return producer

    def _written_topics(self) -> set[str]:
        """What this worker's transactions write: where one an older instance left may hang."""
        plans = self.policies.plans.values()
        owners = {topic_owner(p.source_topic) for p in plans}
        return {
            self.audit.topic,
            names.state_topic(self.hub),
            *(p.delivery_topic for p in plans),
            *(names.dead_letter_topic(o) for o in owners if o is not None),
        }

    def _open_changelog(self, consumer: KafkaConsumer) -> None:
        admin = make_admin(self.kafka, f"hub-{self.hub}-{self.options.worker_id}-admin")
        try:
            self.changelog.open(consumer, admin, partitions=self.options.state_partitions)
        finally:
            admin.close()

    def _loop(self, tx: TransactionStep, consumer: KafkaConsumer) -> None:
        while not self._stop.is_set():
            if self.options.follow_config:
                new = self.live.follow()
                if new is not None:
                    self.install(new, consumer)
            if self.live.windows_moved():
                self._dirty = True
            if self._dirty or self.live.pending or self.partitions.unpinned:
                self._prepare(tx, consumer)
                self._housekeep(tx, consumer)
            if not self.ready.is_set() and not self._dirty and self.partitions.settled(self.assignment):
                self.ready.set()
            if not self.policies.by_topic:
                self._stop.wait(self.options.batch_max_ms / 1000)
                continue
            try:
                polled = consumer.poll(
                    timeout_ms=self.options.batch_max_ms, max_records=self.options.batch_max_records
                )
            except (NoOffsetForPartitionError, OffsetOutOfRangeError) as exc:
                self.partitions.reposition(consumer, exc)
                continue
            self._rejoin_if_stranded(consumer)
            self.assignment = frozenset(consumer.assignment())
            if self.partitions.to_load and not self._load(consumer):
                # Without their state the records cannot be routed: read them again next time.
                for tp, records in polled.items():
                    consumer.seek(tp, records[0].offset)
                continue
            if polled:
                batch = cut_to_budget(
                    consumer, polled, self.policies.by_topic, self.options.batch_max_deliveries
                )
                self._process_batch(tx, batch)
            self.handover.run(tx, consumer)

    def _rejoin_if_stranded(self, consumer: KafkaConsumer) -> None:
        """Ask for a fresh join when kafka-python left the member stranded in a rebalance that no poll
        completes (hub/core/group_join.py): the worker would keep its old partitions, or none, for good."""
        if rejoin_if_stranded(consumer):
            with self.stats.lock:
                self.stats.rejoins += 1
                rejoins = self.stats.rejoins
            self._log.warning("group_rejoin_requested", reason="stranded in a rebalance", rejoins=rejoins)

    def _prepare(self, tx: TransactionStep, consumer: KafkaConsumer) -> None:
        try:
            self.emitter.prepare(tx.producer, self.policies.plans.values(), consumer.topics)
        except (KafkaError, RetriableError) as exc:  # the transaction will meet it too, and retry
            self._log.warning("delivery_lookup_deferred", error=f"{type(exc).__name__}: {exc}")

    # -- ownership and policy changes --------------------------------------------------------------
    def _load(self, consumer: KafkaConsumer) -> bool:
        if not self.partitions.load(consumer):
            self._stop.wait(RETRY_PAUSE_S)
            return False
        self._dirty = True
        self._offer()
        return True

    def _revoked(self, revoked: set[TopicPartition]) -> None:
        # Before the stores close and the group moves on: the backfill task lets go of these first.
        self.backfill.forget(revoked)
        self.handover.forget(revoked)

    def _offer(self) -> None:
        self.backfill.offer(self.partitions.states, self.partitions.log_start)

    def _committed(self, states: dict[TopicPartition, PartitionState]) -> None:
        """A transaction moved these partitions' states: they become the worker's."""
        self.partitions.commit(states)
        if states:
            owned = {tp: self.partitions.states[tp] for tp in states if tp in self.partitions.states}
            self.backfill.offer(owned, self.partitions.log_start, whole=False)

    def install(self, new: PolicySet, consumer: KafkaConsumer | None = None) -> None:
        """Swap in a new policy set between batches; audit every subscription whose policy changed."""
        topics_changed = self.live.install(new)
        self.readers.update(new)
        self._dirty = True
        if consumer is not None and topics_changed:
            self.partitions.subscribe(consumer)
        self._offer()
        if self.on_policy_change is not None:
            self.on_policy_change(new)

    # -- housekeeping: policy audit, new subscriptions on idle partitions, pins ---------------------
    def _housekeep(self, tx: TransactionStep, consumer: KafkaConsumer) -> None:
        now = now_ms()
        changes: dict[TopicPartition, PartitionState] = {}
        positions: dict[TopicPartition, int] = {}
        started: list[tuple[str, TopicPartition, Backfilling]] = []

        def position(tp: TopicPartition) -> int:
            if tp not in positions:
                positions[tp] = self.partitions.position(consumer, tp)
            return positions[tp]

        try:
            for tp, state in list(self.partitions.states.items()):
                new = self.partitions.reconciled(tp, state, now, partial(position, tp))
                if new != state or tp in self.partitions.unpinned:
                    changes[tp] = new
                    position(tp)
                    started += [
                        (sid, tp, h)
                        for sid, h in new.items()
                        if isinstance(h, Backfilling) and sid not in state
                    ]
        except KafkaError as exc:
            self._log.warning("housekeeping_deferred", error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(RETRY_PAUSE_S)
            return
        entries = list(self.live.pending)
        if not changes and not entries:
            self._dirty = False
            return

        def body(producer: KafkaProducer) -> Positions:
            self.audit.send(producer, entries)
            return {tp: (positions[tp], state) for tp, state in changes.items()}

        if not tx.run(body):
            return
        self.live.committed(len(entries))
        self._committed(changes)
        self._dirty = False
        self.backfill.started(started)

    # -- the batch -------------------------------------------------------------------------------
    def _process_batch(self, tx: TransactionStep, polled: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        batch = Batch()

        def body(producer: KafkaProducer) -> Positions:
            for tp, records in polled.items():
                self._process_partition(producer, tp, records, batch)
            self.emitter.finish(producer, batch)
            return {tp: (records[-1].offset + 1, batch.states[tp]) for tp, records in polled.items()}

        consumer = tx.consumer
        assert consumer is not None  # the main loop's step has the group consumer

        def rewind() -> None:
            # Re-read the batch: seek back to the first record of each partition.
            for tp, records in polled.items():
                consumer.seek(tp, records[0].offset)

        if not tx.run(body, rewind=rewind, held=batch.held):
            return
        self._committed(batch.states)
        self.backfill.started(batch.started)
        batch.account(self.stats, time.perf_counter() - started)

    def _process_partition(
        self, producer: KafkaProducer, tp: TopicPartition, records: list[Any], batch: Batch
    ) -> None:
        """Route the records of one partition to the subscriptions the main loop serves on it.

        One ``now`` per partition and batch: the decision to serve a subscription and every refusal
        inside the batch agree, so no record slips between a backfill and the live stream.
        """
        now = now_ms()
        serve, late = self._served(tp, records[0].offset, now, batch)
        batch.consumed += len(records)
        emitter = self.emitter
        decoded = [(record, emitter.decode(record)) for record in map(SourceRecord.of, records)]
        emitter.read_held_ahead(tp, [event for _, event in decoded], serve, batch)
        for record, event in decoded:
            plans = [p for p in serve if late.get(p.subscription, -1) <= record.offset] if late else serve
            emitter.emit(producer, record, event, plans, now, batch)

    def _served(
        self, tp: TopicPartition, first: int, now: int, batch: Batch
    ) -> tuple[list[DeliveryPlan], dict[str, int]]:
        """The plans the main loop serves on ``tp`` from offset ``first``, and those live only from later.

        The partition's state for this batch goes into ``batch.states`` (subscriptions that start, or
        stop being served because a record is refused to them).
        """
        policies = self.policies
        plans = policies.by_topic.get(tp.topic, [])
        ids = {p.subscription for p in plans}
        state = {sid: h for sid, h in self.partitions.states.get(tp, {}).items() if sid in ids}
        batch.states[tp] = state
        serve: list[DeliveryPlan] = []
        late: dict[str, int] = {}
        for plan in plans:
            sid = plan.subscription
            h = state.get(sid)
            deliverable = plan.refusal_at(now) is None
            if isinstance(h, Backfilling):
                if deliverable:
                    continue  # its backfill serves it until it catches up with this loop
                del state[sid]
                h = None
            if h is None and deliverable:
                start = self.partitions.log_start.get(tp, 0)
                h = establish(first, start, backfill=policies.backfill_wanted(sid))
                state[sid] = h
                if isinstance(h, Backfilling):
                    batch.started.append((sid, tp, h))
                    continue
            if isinstance(h, Live):
                if not deliverable:
                    # It misses these records: when deliverable again it starts from the current state.
                    del state[sid]
                elif h.offset > first:
                    late[sid] = h.offset
            serve.append(plan)
        return serve, late
