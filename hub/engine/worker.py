"""One worker of one exchange hub: the exactly-once consume -> policy -> deliver loop, with backfills.

Per batch, in ONE Kafka transaction: the deliveries, the dead letters, the audit entries and the consumed
offsets (send_offsets_to_transaction with the group metadata). Read_committed on the way in. Several
workers of a hub share the partitions through the consumer group; each has a stable transactional id
(hub + worker id) so a restarted worker fences its predecessor and aborts its open transaction at once.

Each committed offset also carries, in its metadata, where every subscription stands on that partition
(live from an offset, or being backfilled: see handover.py) and the head of the worker's audit chain.
A partition the group has never committed starts at its end; whatever was there before reaches each
subscription through its backfill, as the current state. Between batches the worker follows the applied
config (xhub.cfg.<hub>), notices validity windows opening and closing, and advances one backfill chunk,
each in its own transaction.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

import schemas
from hub.audit.anchor import anchor_value
from hub.audit.chain import AuditChain, key_hash
from hub.core import names
from hub.core.dead_letters import DeadLetter, DeadLetterEncoder
from hub.core.envelope import now_ms
from hub.core.errors import FatalError, InvalidRecord
from hub.core.kafka import make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.engine.backfill import BackfillChunk, Backfiller, BackfillRow, BackfillTask
from hub.engine.changes import describe_change
from hub.engine.errors import WorkerFencedError
from hub.engine.handover import (
    Backfilling,
    BackfillProgress,
    Live,
    PartitionState,
    decode_metadata,
    encode_metadata,
    establish,
    partition_progress,
    written_by_hub,
)
from hub.engine.policy_set import PolicySet, policy_set_from_snapshot, snapshot_of
from hub.engine.router import DeadLettered, Deliver, Filtered, Outcome, Refused, route
from hub.engine.stats import WorkerStats
from hub.policy.plan import DeliveryPlan

log = get_logger("engine")

WINDOW_CHECK_MS = 250  # how often validity windows are re-evaluated between batches
PROGRESS_LOG_S = 2.0  # at most one backfill_progress line per subscription this often


class Serde(Protocol):
    def encode(self, subject: str, schema: dict[str, Any], record: dict[str, Any]) -> bytes: ...

    def decode(
        self, data: bytes, reader_schema: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]: ...


@dataclass
class WorkerOptions:
    hub: str
    worker_id: int = 0
    batch_max_records: int = 500
    batch_max_ms: int = 100
    transaction_timeout_ms: int = 30000
    follow_config: bool = True  # follow xhub.cfg.<hub> for live policy changes
    backfill_chunk_records: int | None = None  # records per backfill transaction (default 4 batches)
    # Where a partition the hub group never committed starts: "state" = at its end, each subscription
    # getting what is there through its backfill (op "r"); "replay" = at its beginning, every retained
    # event going through the main loop as it is (benchmarks of the main loop, or a full history).
    first_start: Literal["state", "replay"] = "state"


@dataclass
class _Pending:
    """A delivery sent in the open transaction, audited once its offset is known."""

    outcome: Deliver
    future: Any
    origin: str
    event_id: str
    event: dict[str, Any]


@dataclass
class _Batch:
    """What one transaction carries, applied to the counters and the state only after it commits."""

    pending: list[_Pending] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[int] = field(default_factory=list)
    last_commit_ms: dict[str, int] = field(default_factory=dict)
    consumed: int = 0
    undecodable: int = 0
    states: dict[TopicPartition, PartitionState] = field(default_factory=dict)  # partitions whose state moves
    started: list[tuple[str, TopicPartition, Backfilling]] = field(default_factory=list)
    snapshot: bool = False  # backfill state rows: their source commit time says nothing about latency


def _millis(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else 0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python ships no type hints
    """Tells the worker which partitions it gained or lost (called inside ``poll``: no I/O here)."""

    def __init__(self, worker: HubWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.worker._partitions_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.worker._partitions_assigned(set(assigned))


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
        on_policy_change: Callable[[PolicySet], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.policies = policies
        self.serde = serde
        self.secret = secret
        self.options = options
        self.stats = stats or WorkerStats()
        self.on_policy_change = on_policy_change
        self.hub = options.hub
        self.transactional_id = names.hub_transactional_id(self.hub, options.worker_id)
        self.group_id = names.hub_group(self.hub)
        self.audit_topic = names.audit_topic(self.hub)
        self.dlq_topic = names.dead_letter_topic(self.hub)
        self.chain = AuditChain(self.transactional_id)
        self._stop = threading.Event()
        self._audit_schema = schemas.load("hub/audit_record.avsc")
        self._dead_letters = DeadLetterEncoder(self.hub, serde)
        self._pending_policy_audit: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.assignment: frozenset[TopicPartition] = frozenset()  # partitions this worker owns now
        self.backfills: dict[str, BackfillProgress] = {}
        # Committed state of the partitions this worker owns (see handover.py).
        self._parts: dict[TopicPartition, PartitionState] = {}
        self._log_start: dict[TopicPartition, int] = {}
        self._unpinned: set[TopicPartition] = set()  # owned, never committed by the group: commit soon
        self._to_load: set[TopicPartition] = set()
        self._joined_empty_since: float | None = None
        self._dirty = True  # policies, windows or ownership changed: reconcile before the next poll
        self._backfill_due = False
        self._refusals: dict[str, str | None] = {}  # subscription -> refusal when last looked
        self._next_window_check = 0
        self._progress_logged: dict[str, float] = {}
        self._spans: dict[str, dict[TopicPartition, int]] = {}  # backfills seen: sid -> {partition: total}
        self._cfg_end = 0
        chunk = options.backfill_chunk_records or max(50, 4 * options.batch_max_records)
        self._backfiller = Backfiller(
            kafka, f"hub-{self.hub}-{options.worker_id}-backfill", serde, chunk_records=chunk
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        producer = make_producer(
            self.kafka,
            f"hub-{self.hub}-{self.options.worker_id}",
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self.options.transaction_timeout_ms,
        )
        consumer = make_consumer(
            self.kafka,
            f"hub-{self.hub}-{self.options.worker_id}",
            group_id=self.group_id,
            max_poll_records=self.options.batch_max_records,
            # Static membership: a restarted worker takes its old place at once instead of waiting for
            # the dead member's session to expire (45 s by default) before the group rebalances.
            group_instance_id=self.transactional_id,
            session_timeout_ms=15000,
            # No automatic reset: a partition the group never committed starts at its end (what is
            # already there reaches each subscription through its backfill, as state, not as a replay of
            # every change), while an offset out of range restarts at the beginning (see _reposition).
            auto_offset_reset="none",
        )
        follower = self._config_follower() if self.options.follow_config else None
        try:
            producer.init_transactions()
            self._resume_chain()
            if follower is not None:
                self._follow_config(follower, None, wait=True)
            self._policies_in_force()
            self._subscribe(consumer)
            log.info(
                "worker_started",
                hub=self.hub,
                worker=self.options.worker_id,
                subscriptions=len(self.policies.plans),
                topics=len(self.policies.by_topic),
            )
            self._loop(producer, consumer, follower)
        finally:
            log.info("worker_stopping", hub=self.hub, worker=self.options.worker_id)
            consumer.close()
            if follower is not None:
                follower.close()
            self._backfiller.close()
            producer.close(timeout=5)

    def _loop(self, producer: KafkaProducer, consumer: KafkaConsumer, follower: KafkaConsumer | None) -> None:
        while not self._stop.is_set():
            if follower is not None:
                self._follow_config(follower, consumer)
            self._check_windows()
            if self._dirty or self._pending_policy_audit or self._unpinned:
                self._housekeep(producer, consumer)
            if not self.ready.is_set() and not self._dirty and self._settled():
                self.ready.set()
            if not self.policies.by_topic:
                self._stop.wait(self.options.batch_max_ms / 1000)
                continue
            try:
                # While a backfill is under way, do not wait for live records: the backfill has work.
                batch = consumer.poll(
                    timeout_ms=0 if self._backfill_due else self.options.batch_max_ms,
                    max_records=self.options.batch_max_records,
                )
            except (NoOffsetForPartitionError, OffsetOutOfRangeError) as exc:
                self._reposition(consumer, exc)
                continue
            self.assignment = frozenset(consumer.assignment())
            if self._to_load and not self._load_state(consumer):
                # Without their state the records cannot be routed: read them again next time.
                for tp, records in batch.items():
                    consumer.seek(tp, records[0].offset)
                continue
            if batch:
                self._process_batch(producer, consumer, batch)
            if self._backfill_due:
                self._backfill_step(producer, consumer)

    # -- ownership ---------------------------------------------------------------------------------
    def _settled(self) -> bool:
        """Joined with partitions (or with nothing to own for a while: more workers than partitions)."""
        if not self.policies.by_topic or self.assignment:
            return True
        return self._joined_empty_since is not None and time.monotonic() - self._joined_empty_since > 3.0

    def _partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # The first assignment of a new member is often empty (the leader had no metadata for the topics
        # yet); readiness waits for partitions, or for an empty assignment that lasts.
        if assigned:
            self._joined_empty_since = None
        elif self._joined_empty_since is None:
            self._joined_empty_since = time.monotonic()
        self._to_load |= assigned

    def _position(self, consumer: KafkaConsumer, tp: TopicPartition) -> int:
        for _ in range(5):
            try:
                return int(consumer.position(tp))
            except (NoOffsetForPartitionError, OffsetOutOfRangeError) as exc:
                self._reposition(consumer, exc)
        raise FatalError(f"hub {self.hub}: no position for partition {tp.topic}-{tp.partition}")

    def _reposition(self, consumer: KafkaConsumer, exc: KafkaError) -> None:
        """Where to read partitions that have no valid committed offset."""
        found = exc.args[0] if exc.args else None
        if isinstance(exc, NoOffsetForPartitionError):
            tps = [tp for tp in (found or ()) if isinstance(tp, TopicPartition)]
            if tps:
                replay = self.options.first_start == "replay"
                (consumer.seek_to_beginning if replay else consumer.seek_to_end)(*tps)
                log.info(
                    "partitions_first_read",
                    hub=self.hub,
                    start="beginning" if replay else "end",
                    partitions=[f"{t.topic}-{t.partition}" for t in tps],
                )
            return
        tps = [tp for tp in (found or {}) if isinstance(tp, TopicPartition)]
        if tps:
            # The committed offset fell out of the log (records deleted, topic re-created): read it all
            # again rather than skip what is there. Subscribers may get events twice; none is lost.
            consumer.seek_to_beginning(*tps)
            log.warning(
                "offset_out_of_range", hub=self.hub, partitions=[f"{t.topic}-{t.partition}" for t in tps]
            )

    def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._parts.pop(tp, None)
        self._to_load -= revoked
        self._unpinned -= revoked
        self._backfiller.forget(revoked)
        self._refresh_backfill_flags()

    def _load_state(self, consumer: KafkaConsumer) -> bool:
        """Read the committed state of newly owned partitions (stable reads: read_committed consumer)."""
        owned = set(consumer.assignment())
        tps = sorted(self._to_load & owned)
        loaded: dict[TopicPartition, PartitionState] = {}
        unpinned: set[TopicPartition] = set()
        try:
            for tp in tps:
                committed = consumer.committed(tp, metadata=True)
                if committed is None:
                    loaded[tp] = {}
                    unpinned.add(tp)
                elif written_by_hub(committed.metadata):
                    loaded[tp], _ = decode_metadata(committed.metadata)
                else:
                    # Committed by a hub from before backfills: its subscriptions were live there.
                    loaded[tp] = {p.subscription: Live(committed.offset) for p in self._plans_of(tp)}
            starts = consumer.beginning_offsets(tps) if tps else {}
        except KafkaError as exc:
            log.warning("partition_state_unavailable", hub=self.hub, error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(1.0)
            return False
        self._parts.update(loaded)
        self._unpinned |= unpinned
        self._log_start.update(starts)
        self._to_load.clear()
        self._dirty = True
        self._refresh_backfill_flags()
        return True

    def _plans_of(self, tp: TopicPartition) -> list[DeliveryPlan]:
        now = now_ms()
        return [p for p in self.policies.by_topic.get(tp.topic, []) if p.refusal_at(now) is None]

    def _metadata(self, tp: TopicPartition, state: PartitionState) -> str:
        return encode_metadata(
            state, anchor_value(self.chain), where=f"hub {self.hub} partition {tp.topic}-{tp.partition}"
        )

    def _commit_states(self, states: dict[TopicPartition, PartitionState]) -> None:
        """After a commit: the new state becomes the worker's (partitions lost meanwhile stay lost)."""
        for tp, state in states.items():
            if tp in self._parts:
                self._parts[tp] = state
            self._unpinned.discard(tp)
        self._refresh_backfill_flags()

    def _refresh_backfill_flags(self) -> None:
        was = self._backfill_due
        self._backfill_due = any(
            isinstance(h, Backfilling) for st in self._parts.values() for h in st.values()
        )
        if was and not self._backfill_due:
            self._update_progress(None)

    def _reconciled(
        self, tp: TopicPartition, state: PartitionState, now: int, offset: Callable[[], int]
    ) -> PartitionState:
        """The state ``tp`` should have under the current policies at ``now``.

        A subscription that is deliverable and has no state starts at ``offset()`` (backfill first when
        there is anything before it); an unfinished backfill of a subscription no longer deliverable is
        abandoned (it starts afresh when deliverable again). A live subscription keeps its state until a
        record is actually refused to it, so a refusal window with no traffic costs no new backfill.
        """
        plans = self.policies.by_topic.get(tp.topic, [])
        ids = {p.subscription for p in plans}
        new = {sid: h for sid, h in state.items() if sid in ids}
        for plan in plans:
            sid = plan.subscription
            h = new.get(sid)
            deliverable = plan.refusal_at(now) is None
            if h is None and deliverable:
                new[sid] = establish(
                    offset(), self._log_start.get(tp, 0), backfill=self.policies.backfill_wanted(sid)
                )
            elif isinstance(h, Backfilling) and not deliverable:
                del new[sid]
                log.info(
                    "backfill_abandoned",
                    hub=self.hub,
                    subscription=sid,
                    topic=tp.topic,
                    partition=tp.partition,
                    reason=plan.refusal_at(now),
                )
        return new

    # -- housekeeping: policy audit, new subscriptions on idle partitions, pins ---------------------
    def _housekeep(self, producer: KafkaProducer, consumer: KafkaConsumer) -> None:
        now = now_ms()
        changes: dict[TopicPartition, PartitionState] = {}
        positions: dict[TopicPartition, int] = {}
        started: list[tuple[str, TopicPartition, Backfilling]] = []

        def position(tp: TopicPartition) -> int:
            if tp not in positions:
                positions[tp] = self._position(consumer, tp)
            return positions[tp]

        try:
            for tp, state in list(self._parts.items()):
                new = self._reconciled(tp, state, now, partial(position, tp))
                if new != state or tp in self._unpinned:
                    changes[tp] = new
                    position(tp)
                    started += [
                        (sid, tp, h)
                        for sid, h in new.items()
                        if isinstance(h, Backfilling) and sid not in state
                    ]
        except KafkaError as exc:
            log.warning("housekeeping_deferred", hub=self.hub, error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(1.0)
            return
        entries = list(self._pending_policy_audit)
        if not changes and not entries:
            self._dirty = False
            return
        chain_state = self.chain.snapshot()
        try:
            producer.begin_transaction()
            self._send_audit(producer, entries)
            if changes:
                offsets = {
                    tp: OffsetAndMetadata(positions[tp], self._metadata(tp, st), -1)
                    for tp, st in changes.items()
                }
                producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        except ProducerFencedError as exc:
            raise self._fenced() from exc
        except KafkaError as exc:
            self._abort(producer, chain_state, exc)
            return
        del self._pending_policy_audit[: len(entries)]
        self._commit_states(changes)
        self._dirty = False
        self._log_started(started)

    def _log_started(self, started: list[tuple[str, TopicPartition, Backfilling]]) -> None:
        for sid, tp, h in started:
            _, total = partition_progress(h, self._log_start.get(tp, 0))
            log.info(
                "backfill_started",
                hub=self.hub,
                subscription=sid,
                topic=tp.topic,
                partition=tp.partition,
                handover=h.snapshot_end,
                total=total,
            )

    # -- the batch -------------------------------------------------------------------------------
    def _process_batch(
        self, producer: KafkaProducer, consumer: KafkaConsumer, batch: dict[TopicPartition, list[Any]]
    ) -> None:
        started = time.perf_counter()
        chain_state = self.chain.snapshot()
        work = _Batch()
        try:
            producer.begin_transaction()
            for tp, records in batch.items():
                self._process_partition(producer, tp, records, work)
            producer.flush()
            self._write_audit(producer, work)
            offsets = {
                tp: OffsetAndMetadata(records[-1].offset + 1, self._metadata(tp, work.states[tp]), -1)
                for tp, records in batch.items()
            }
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        except ProducerFencedError as exc:
            raise self._fenced() from exc
        except KafkaError as exc:
            self._abort(producer, chain_state, exc)
            # Re-read the batch: seek back to the first record of each partition.
            for tp, records in batch.items():
                consumer.seek(tp, records[0].offset)
            return
        self._commit_states(work.states)
        self._log_started(work.started)
        self._account(work, time.perf_counter() - started)

    def _process_partition(
        self, producer: KafkaProducer, tp: TopicPartition, records: list[Any], work: _Batch
    ) -> None:
        """Route the records of one partition to the subscriptions the main loop serves on it.

        One ``now`` per partition and batch: the decision to serve a subscription and every refusal
        inside the batch agree, so no record slips between a backfill and the live stream.
        """
        plans = self.policies.by_topic.get(tp.topic, [])
        ids = {p.subscription for p in plans}
        state = {sid: h for sid, h in self._parts.get(tp, {}).items() if sid in ids}
        work.states[tp] = state
        now = now_ms()
        first = records[0].offset
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
                h = state[sid] = establish(
                    first, self._log_start.get(tp, 0), backfill=self.policies.backfill_wanted(sid)
                )
                if isinstance(h, Backfilling):
                    work.started.append((sid, tp, h))
                    continue
            if isinstance(h, Live):
                if not deliverable:
                    # It misses these records: when deliverable again it starts from the current state.
                    del state[sid]
                elif h.offset > first:
                    late[sid] = h.offset
            serve.append(plan)
        for rec in records:
            if late:
                chosen = [p for p in serve if late.get(p.subscription, -1) <= rec.offset]
                self._process_record(producer, rec, chosen, now, work)
            else:
                self._process_record(producer, rec, serve, now, work)

    def _process_record(
        self, producer: KafkaProducer, rec: Any, plans: list[DeliveryPlan], now: int, work: _Batch
    ) -> None:
        work.consumed += 1
        origin = f"{rec.topic}-{rec.partition}@{rec.offset}"
        try:
            if rec.value is None:
                raise InvalidRecord("tombstone", "compaction tombstone on a source topic carries no event")  # noqa: TRY301
            _, event = self.serde.decode(rec.value)
        except InvalidRecord as exc:
            work.undecodable += 1
            self._dead_letter(
                producer, rec.value or b"", exc.reason, exc.detail, exc.field, origin, None, None
            )
            for plan in plans:
                work.counts[(plan.subscription, "dead_lettered")] += 1
            return
        resource = event.get("resource")
        plans_for = [p for p in plans if p.resource == resource]
        if len(plans_for) != len(plans):
            detail = f'event names resource "{resource}", which topic {rec.topic} does not carry'
            self._dead_letter(
                producer, rec.value, "unknown_resource", detail, "resource", origin, resource, None
            )
            for plan in plans:
                if plan.resource != resource:
                    work.counts[(plan.subscription, "dead_lettered")] += 1
        event_id = str(event["event_id"])
        commit_ms = _millis(event["source"]["commit_ts_ms"])
        for outcome in route(event, plans_for, now):
            self._handle(producer, outcome, rec.value, origin, event_id, event, commit_ms, now, work)

    def _handle(  # noqa: PLR0917 - the per-outcome hot path passes what it already has
        self,
        producer: KafkaProducer,
        outcome: Outcome,
        original: bytes,
        origin: str,
        event_id: str,
        event: dict[str, Any],
        commit_ms: int,
        now: int,
        work: _Batch,
    ) -> None:
        plan = outcome.plan
        if isinstance(outcome, Deliver):
            value = self.serde.encode(
                f"{outcome.plan.delivery_topic}-value", outcome.plan.delivery_schema, outcome.value
            )
            sid = outcome.plan.subscription
            headers = [
                ("xhub.event_id", event_id.encode()),
                ("xhub.policy_version", outcome.plan.version.encode()),
                ("xhub.hub", self.hub.encode()),
                ("xhub.subscription", sid.encode()),
                ("xhub.source", origin.encode()),
            ]
            future = producer.send(
                outcome.plan.delivery_topic, key=outcome.key.encode("utf-8"), value=value, headers=headers
            )
            work.pending.append(_Pending(outcome, future, origin, event_id, event))
            work.counts[(sid, "delivered")] += 1
            if not work.snapshot:
                work.latencies.append(now - commit_ms)
            work.last_commit_ms[sid] = max(work.last_commit_ms.get(sid, 0), commit_ms)
        elif isinstance(outcome, Filtered):
            work.counts[(outcome.plan.subscription, "filtered")] += 1
        elif isinstance(outcome, Refused):
            work.counts[(outcome.plan.subscription, "refused")] += 1
            work.audit.append(
                self._audit_entry(
                    "refused",
                    outcome.plan,
                    now,
                    event_id=event_id,
                    event=event,
                    origin=origin,
                    reason=outcome.reason,
                )
            )
        elif isinstance(outcome, DeadLettered):
            self._dead_letter(
                producer,
                original,
                outcome.reason,
                outcome.detail,
                outcome.field,
                origin,
                event.get("resource"),
                plan.subscription if plan else None,
            )
            if plan is not None:
                work.counts[(plan.subscription, "dead_lettered")] += 1

    # -- backfill ----------------------------------------------------------------------------------
    def _backfill_tasks(self, now: int) -> list[BackfillTask]:
        groups: dict[tuple[TopicPartition, int, int], list[DeliveryPlan]] = {}
        for tp in sorted(self._parts):
            for sid, h in sorted(self._parts[tp].items()):
                if not isinstance(h, Backfilling):
                    continue
                plan = self.policies.plans.get(sid)
                if plan is None or plan.source_topic != tp.topic or plan.refusal_at(now) is not None:
                    continue
                groups.setdefault((tp, h.snapshot_end, h.position), []).append(plan)
        return [
            BackfillTask(tp, end, pos, self._log_start.get(tp, 0), tuple(plans))
            for (tp, end, pos), plans in groups.items()
        ]

    def _backfill_step(self, producer: KafkaProducer, consumer: KafkaConsumer) -> None:
        """Advance the first backfill of this worker by one chunk, in its own transaction."""
        now = now_ms()
        tasks = self._backfill_tasks(now)
        if not tasks:
            self._update_progress(None)
            return
        task = tasks[0]
        self._backfiller.retain(tasks)
        try:
            loop_position = self._position(consumer, task.tp)
            chunk = self._backfiller.step(task, loop_position)
        except KafkaError as exc:
            log.warning("backfill_read_failed", hub=self.hub, error=f"{type(exc).__name__}: {exc}")
            self._backfiller.rewind()
            self._stop.wait(1.0)
            return
        self._update_progress(task)
        if chunk is None:
            return
        started = time.perf_counter()
        chain_state = self.chain.snapshot()
        work = _Batch(snapshot=chunk.snapshot)
        try:
            producer.begin_transaction()
            for row in chunk.rows:
                self._backfill_row(producer, row, chunk, now, work)
            producer.flush()
            self._write_audit(producer, work)
            state = dict(self._parts.get(task.tp, {}))
            for sid in task.subscriptions:
                if chunk.live_at is not None:
                    state[sid] = Live(chunk.live_at)
                else:
                    state[sid] = Backfilling(task.snapshot_end, chunk.position)
            work.states[task.tp] = state
            offsets = {task.tp: OffsetAndMetadata(loop_position, self._metadata(task.tp, state), -1)}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        except ProducerFencedError as exc:
            raise self._fenced() from exc
        except KafkaError as exc:
            self._abort(producer, chain_state, exc)
            self._backfiller.rewind()
            return
        self._commit_states(work.states)
        self._account(work, time.perf_counter() - started)
        if chunk.live_at is not None:
            self._backfill_finished(task, chunk)
        else:
            self._update_progress(task)

    def _backfill_row(
        self, producer: KafkaProducer, row: BackfillRow, chunk: BackfillChunk, now: int, work: _Batch
    ) -> None:
        rec = row.record
        origin = f"{rec.topic}-{rec.partition}@{rec.offset}"
        plans = list(chunk.task.plans)
        if row.event is None:
            error = row.error or InvalidRecord("undecodable", "undecodable record")
            for plan in plans:
                work.counts[(plan.subscription, "dead_lettered")] += 1
                # The main loop dead-lettered catch-up records already; snapshot records it may never
                # have read (they predate the hub), so the subscription that needed them reports them.
                if chunk.snapshot:
                    self._dead_letter(
                        producer,
                        rec.value or b"",
                        error.reason,
                        error.detail,
                        error.field,
                        origin,
                        None,
                        plan.subscription,
                    )
            return
        event = row.event
        resource = event.get("resource")
        plans_for = [p for p in plans if p.resource == resource]
        for plan in plans:
            if plan.resource != resource:
                work.counts[(plan.subscription, "dead_lettered")] += 1
        commit_ms = _millis(event["source"]["commit_ts_ms"])
        event_id = str(event["event_id"])
        for outcome in route(event, plans_for, now):
            self._handle(producer, outcome, rec.value, origin, event_id, event, commit_ms, now, work)

    def _backfill_finished(self, task: BackfillTask, chunk: BackfillChunk) -> None:
        self._update_progress(None)
        for sid in task.subscriptions:
            log.info(
                "backfill_live",
                hub=self.hub,
                subscription=sid,
                topic=task.tp.topic,
                partition=task.tp.partition,
                live_from=chunk.live_at,
            )
            progress = self.backfills.get(sid)
            if progress is not None and progress.state == "done":
                log.info("backfill_done", hub=self.hub, subscription=sid, records=progress.total)

    def _update_progress(self, active: BackfillTask | None) -> None:
        """Rebuild ``backfills`` (replaced whole: the monitor reads it from another thread).

        A subscription's backfill spans the partitions this worker owns; a partition whose backfill has
        gone live counts as done, and when none is left the subscription shows "done".
        """
        active_phase = self._backfiller.phase(active) if active is not None else None
        spans = self._spans
        for sid in list(spans):  # forget partitions lost, and backfills abandoned
            kept = {tp: t for tp, t in spans[sid].items() if sid in self._parts.get(tp, {})}
            if kept and sid in self.policies.plans:
                spans[sid] = kept
            else:
                del spans[sid]
        sums: dict[str, list[int]] = {}
        phases: dict[str, str] = {}
        for tp, state in self._parts.items():
            start = self._log_start.get(tp, 0)
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
                if not isinstance(self._parts[tp][sid], Backfilling):
                    acc[0] += total  # live there: its part is done
                    acc[1] += total
            done, total = acc
            phase = phases.get(sid, "done")
            out[sid] = BackfillProgress(done, total, phase)
            if phase != "done" and clock - self._progress_logged.get(sid, 0.0) >= PROGRESS_LOG_S:
                self._progress_logged[sid] = clock
                log.info(
                    "backfill_progress", hub=self.hub, subscription=sid, done=done, total=total, state=phase
                )
        self.backfills = out

    # -- audit -------------------------------------------------------------------------------------
    def _audit_entry(
        self,
        kind: str,
        plan: DeliveryPlan,
        now: int,
        *,
        event_id: str | None = None,
        event: dict[str, Any] | None = None,
        origin: str | None = None,
        fields: tuple[str, ...] | list[str] = (),
        reason: str | None = None,
        delivered: tuple[str, int, int] | None = None,
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "ts_ms": now,
            "hub": self.hub,
            "subscription": plan.subscription,
            "subscriber": plan.subscriber,
            "resource": plan.resource,
            "policy_version": plan.version,
            "event_id": event_id,
            "key_hash": key_hash(self.secret, plan.resource, event["key"]) if event else None,
            "op": event["op"] if event else None,
            "fields": list(fields),
            "delivered_topic": delivered[0] if delivered else None,
            "delivered_partition": delivered[1] if delivered else None,
            "delivered_offset": delivered[2] if delivered else None,
            "source": origin,
            "reason": reason,
        }

    def _write_audit(self, producer: KafkaProducer, work: _Batch) -> None:
        """Audit entries for the deliveries (their offsets are known after the flush) and refusals."""
        entries: list[dict[str, Any]] = []
        for p in work.pending:
            meta = p.future.get(timeout=30)
            entries.append(
                self._audit_entry(
                    "delivered",
                    p.outcome.plan,
                    now_ms(),
                    event_id=p.event_id,
                    event=p.event,
                    origin=p.origin,
                    fields=p.outcome.fields,
                    delivered=(meta.topic, meta.partition, meta.offset),
                )
            )
        entries.extend(work.audit)
        self._send_audit(producer, entries)

    def _send_audit(self, producer: KafkaProducer, entries: list[dict[str, Any]]) -> None:
        subject = f"{self.audit_topic}-value"
        key = self.chain.chain.encode()
        for entry in entries:
            chained = self.chain.append(entry)
            producer.send(
                self.audit_topic, key=key, value=self.serde.encode(subject, self._audit_schema, chained)
            )

    def _dead_letter(  # noqa: PLR0917 - every field of the dead-letter record, in its order
        self,
        producer: KafkaProducer,
        original: bytes,
        reason: str,
        detail: str,
        field_name: str | None,
        origin: str,
        resource: str | None,
        subscription: str | None,
    ) -> None:
        letter = DeadLetter(
            owner=self.hub,
            reason=reason,
            detail=detail,
            origin=origin,
            original=original,
            field=field_name,
            resource=resource,
            subscription=subscription,
        )
        value = self._dead_letters.encode(letter)
        producer.send(self.dlq_topic, key=None, value=value, headers=letter.headers())
        log.warning(
            "record_dead_lettered",
            hub=self.hub,
            reason=reason,
            field=field_name,
            origin=origin,
            subscription=subscription,
        )

    def _fenced(self) -> FatalError:
        return WorkerFencedError(
            f"hub {self.hub} worker {self.options.worker_id}: transactional id {self.transactional_id} "
            "was taken over by another worker (two workers with the same --worker-id?)"
        )

    def _abort(self, producer: KafkaProducer, chain_state: tuple[int, str], exc: Exception) -> None:
        log.warning("transaction_aborted", hub=self.hub, error=f"{type(exc).__name__}: {exc}")
        with self.stats.lock:
            self.stats.aborted_transactions += 1
        self.chain.restore(chain_state)
        try:
            producer.abort_transaction()
        except KafkaError as abort_exc:
            raise FatalError(
                f"hub {self.hub}: could not abort a failed transaction: {abort_exc}"
            ) from abort_exc
        time.sleep(1.0)

    def _account(self, work: _Batch, seconds: float) -> None:
        stats = self.stats
        with stats.lock:
            stats.consumed += work.consumed
            stats.undecodable += work.undecodable
            for (sub, outcome), n in work.counts.items():
                s = stats.subscriptions[sub]
                setattr(s, outcome, getattr(s, outcome) + n)
                if outcome == "delivered":
                    s.last_delivery_ms = now_ms()
            for sub, commit_ms in work.last_commit_ms.items():
                s = stats.subscriptions[sub]
                s.last_source_commit_ms = max(s.last_source_commit_ms or 0, commit_ms)
        stats.record_tx(seconds)
        stats.record_latencies(work.latencies)

    # -- audit chain resume ----------------------------------------------------------------------
    def _resume_chain(self) -> None:
        """Continue this worker's chain from its last committed entry in the audit topic."""
        from hub.audit.reader import last_entry_of_chain

        found = last_entry_of_chain(self.kafka, self.audit_topic, self.chain.chain, self.serde)
        if found is not None:
            self.chain.restore((int(found["seq"]), str(found["hash"])))
        log.info("audit_chain_resumed", chain=self.chain.chain, seq=self.chain.seq)

    # -- live policy -----------------------------------------------------------------------------
    def _subscribe(self, consumer: KafkaConsumer) -> None:
        if self.policies.source_topics:
            consumer.subscribe(self.policies.source_topics, listener=_Rebalance(self))
        else:
            consumer.unsubscribe()
            self._partitions_revoked(set(self._parts))

    def _config_follower(self) -> KafkaConsumer:
        follower = make_consumer(self.kafka, f"hub-{self.hub}-cfg", group_id=None)
        tp = TopicPartition(names.config_topic(self.hub), 0)
        follower.assign([tp])
        self._cfg_end = follower.end_offsets([tp]).get(tp, 0)
        follower.seek(tp, max(0, self._cfg_end - 1))
        return follower

    def _follow_config(
        self, follower: KafkaConsumer, consumer: KafkaConsumer | None, *, wait: bool = False
    ) -> None:
        """Install the newest applied config. ``wait``: at start, read up to the newest one first."""
        latest: bytes | None = None
        tp = TopicPartition(names.config_topic(self.hub), 0)
        deadline = time.monotonic() + 15
        while True:
            for records in follower.poll(timeout_ms=200 if wait else 0).values():
                for rec in records:
                    if rec.value:
                        latest = rec.value
            if not wait or follower.position(tp) >= self._cfg_end or time.monotonic() > deadline:
                break
        if latest is None:
            return
        digest, config = snapshot_of(latest)
        if digest == self.policies.digest:
            return
        new = policy_set_from_snapshot(config, secret=self.secret, digest=digest)
        if wait:
            # At start the applied config simply is the policy in force (audited as such just after).
            self.policies = new
            log.info("config_installed", hub=self.hub, digest=digest)
            return
        self._install(new, consumer)

    def _policies_in_force(self) -> None:
        """Audit the policy of every subscription as this worker starts with it."""
        now = now_ms()
        for sid, plan in sorted(self.policies.plans.items()):
            reason = describe_change(None, plan, None, self.policies.subscriptions.get(sid), verb="in force")
            self._pending_policy_audit.append(
                self._audit_entry(
                    "policy_changed",
                    plan,
                    now,
                    fields=plan.fields if plan.refusal is None else (),
                    reason=reason,
                )
            )
            self._refusals[sid] = plan.refusal_at(now)
        self._dirty = True

    def install(self, new: PolicySet, consumer: KafkaConsumer | None = None) -> None:
        """Swap in a new policy set between batches; audit every subscription whose policy changed."""
        self._install(new, consumer)

    def _install(self, new: PolicySet, consumer: KafkaConsumer | None) -> None:
        old = self.policies
        now = now_ms()
        for sid in sorted(set(old.plans) | set(new.plans)):
            before, after = old.plans.get(sid), new.plans.get(sid)
            if before is not None and after is not None and before.version == after.version:
                continue
            plan = after or before
            assert plan is not None  # one of the two exists: sid comes from their keys
            reason = describe_change(before, after, old.subscriptions.get(sid), new.subscriptions.get(sid))
            entry = self._audit_entry(
                "policy_changed",
                plan,
                now,
                fields=after.fields if after is not None and after.refusal is None else (),
                reason=reason,
            )
            if after is None:
                entry["policy_version"] = "removed"
            self._pending_policy_audit.append(entry)
            log.info(
                "policy_changed",
                hub=self.hub,
                subscription=sid,
                change=reason.split(";")[0],
                version=after.version if after else None,
            )
        topics_changed = old.source_topics != new.source_topics
        self.policies = new
        self._refusals = {sid: plan.refusal_at(now) for sid, plan in new.plans.items()}
        self._dirty = True
        if consumer is not None and topics_changed:
            self._subscribe(consumer)
        self._refresh_backfill_flags()
        if self.on_policy_change is not None:
            self.on_policy_change(new)

    def _check_windows(self) -> None:
        """Audit validity windows opening and closing on their own (valid_from, valid_until)."""
        now = now_ms()
        if now < self._next_window_check:
            return
        self._next_window_check = now + WINDOW_CHECK_MS
        for sid, plan in self.policies.plans.items():
            if plan.refusal is not None or (plan.valid_from_ms is None and plan.valid_until_ms is None):
                continue
            refusal = plan.refusal_at(now)
            if sid in self._refusals and self._refusals[sid] != refusal:
                reason = f"window {'closed: ' + refusal if refusal else 'open'}"
                fields = () if refusal else tuple(plan.fields)
                self._pending_policy_audit.append(
                    self._audit_entry("policy_changed", plan, now, fields=fields, reason=reason)
                )
                self._dirty = True
                log.info("policy_window", hub=self.hub, subscription=sid, state=refusal or "open")
            self._refusals[sid] = refusal
