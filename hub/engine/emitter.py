"""From a source record and the plans that serve it to what one transaction carries.

The one place where a record becomes deliveries, audit entries and dead letters, for the main loop
("live") and for backfills ("snapshot": the state rows as op "r"; "catch_up": the records after the
handover offset). Every record ends, per subscription, as exactly one of delivered / filtered / refused /
dead-lettered; the counts go into the :class:`Batch` and reach the worker's counters only after commit.
For filtered subscriptions the state store says which keys each subscriber holds (router.py keeps the
views true with it); the keys taken or released go into the batch and reach the store with the commit.
"""

from __future__ import annotations

import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from hub.core.dead_letters import UNDELIVERABLE, UNENCODABLE, UNPROCESSABLE, DeadLetter, DeadLetterEncoder
from hub.core.envelope import now_ms
from hub.core.errors import FatalError, HubError, InvalidRecord, RetriableError
from hub.core.kafka import learn_partitions
from hub.core.log import get_logger
from hub.core.provenance import POLICY_HEADER, Hop
from hub.engine.audit_log import AuditLog
from hub.engine.delivery_failures import DeliveryFailures
from hub.engine.handover import Backfilling, PartitionState
from hub.engine.readers import SourceReaders
from hub.engine.records import Serde, SourceEvent, SourceRecord
from hub.engine.router import DeadLettered, Deliver, Filtered, Holds, Outcome, Refused, route
from hub.engine.state.keys import held_key
from hub.engine.state.store import HeldChanges, KnownHeld, StateStore
from hub.engine.stats import WorkerStats
from hub.policy.plan import DeliveryPlan

# How long a batch's deliveries may take to be acknowledged. kafka-python would hold a batch up to its
# delivery timeout (120 s) when the broker coordinating the transaction dies: every batch waits until the
# coordinator has added its partition (make chaos: 120 s after the kill). Past this the step is read again
# with a fresh producer, whose init_transactions fences this one and aborts its transaction.
DELIVERY_WAIT_S = 30.0
MISSING_RECHECK_S = 10.0  # how often prepare asks the cluster again for delivery topics it found missing
FUTURE_GRACE_S = 2.0  # after the flush, for the sender thread to mark the futures of finished batches

log = get_logger("engine")

Pass = Literal["live", "snapshot", "catch_up"]
Decoded = dict[str, Any] | InvalidRecord  # a change event, or why the record is not one


@dataclass
class Pending:
    """A delivery sent in the open transaction, audited once its offset is known."""

    outcome: Deliver
    future: Any
    source: SourceEvent
    audit_seq: int  # the seq its audit entry gets, announced in its provenance header


@dataclass
class Batch:
    """What one transaction carries, applied to the counters and the state only after it commits."""

    kind: Pass = "live"
    pending: list[Pending] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[int] = field(default_factory=list)
    last_commit_ms: dict[str, int] = field(default_factory=dict)
    consumed: int = 0
    undecodable: int = 0
    states: dict[TopicPartition, PartitionState] = field(default_factory=dict)  # partitions whose state moves
    started: list[tuple[str, TopicPartition, Backfilling]] = field(default_factory=list)
    held: HeldChanges = field(default_factory=dict)  # keys filtered subscriptions take or release
    known_held: KnownHeld = field(default_factory=dict)  # read ahead for the records being routed
    key_hashes: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (resource, key) -> held_key

    def count(self, plans: Sequence[DeliveryPlan], outcome: str) -> None:
        for plan in plans:
            self.counts[(plan.subscription, outcome)] += 1

    def account(self, stats: WorkerStats, seconds: float) -> None:
        """Add this committed batch to the worker's counters."""
        with stats.lock:
            stats.consumed += self.consumed
            stats.undecodable += self.undecodable
            for (sub, outcome), n in self.counts.items():
                s = stats.subscriptions[sub]
                setattr(s, outcome, getattr(s, outcome) + n)
                if outcome == "delivered":
                    s.last_delivery_ms = now_ms()
            for sub, commit_ms in self.last_commit_ms.items():
                s = stats.subscriptions[sub]
                s.last_source_commit_ms = max(s.last_source_commit_ms or 0, commit_ms)
        stats.record_tx(seconds)
        stats.record_latencies(self.latencies)


class Emitter:
    """Turns source records into deliveries, audit entries and dead letters of one hub.

    Nothing a record carries escapes as an exception: a record that cannot be read, routed, encoded or
    delivered becomes a dead letter (of the record, or of one subscription) and the batch goes on. Only
    failures that are not the record's fault propagate: ``RetriableError`` (the registry did not answer)
    and ``KafkaError`` (the transaction aborts and the batch is read again; see transaction.py).
    """

    def __init__(
        self,
        hub: str,
        serde: Serde,
        audit: AuditLog,
        readers: SourceReaders,
        *,
        state: StateStore | None = None,
        secret: bytes = b"",
    ) -> None:
        self.hub = hub
        self.serde = serde
        self.audit = audit
        self.readers = readers
        self.state = state
        self._secret = secret
        self._prepared: set[tuple[str, str]] = set()  # (subscription, policy version)
        # Subscriptions whose delivery topic did not exist at the last prepare, and when to ask again.
        self._missing: set[str] = set()
        self._missing_recheck_at = 0.0
        self.failures = DeliveryFailures()
        self._letters = DeadLetterEncoder(hub, serde)
        self._log = log.bind(hub=hub)

    def prepare(
        self, producer: KafkaProducer, plans: Iterable[DeliveryPlan], topics: Callable[[], Collection[str]]
    ) -> None:
        """Look up, outside any transaction, what a plan's first delivery would otherwise wait for inside
        one: its delivery schema's id in the registry and its topic's metadata. A hub that starts serving
        hundreds of new subscriptions at once would spend its transaction timeout on those round trips.

        A plan whose delivery topic is not among ``topics()`` (the cluster's, asked only when some plan
        is not prepared yet) is left for a later call: looking it up would block for the producer's
        ``max_block_ms`` (60 s) per missing topic. Topics found missing are asked after again at most every
        ``MISSING_RECHECK_S``; how many there are is logged when it changes.

        Raises:
            RetriableError, KafkaError: the registry or the broker did not answer (try again later).
        """
        todo = [p for p in plans if (p.subscription, p.version) not in self._prepared and p.refusal is None]
        if not todo or (
            time.monotonic() < self._missing_recheck_at and all(p.subscription in self._missing for p in todo)
        ):
            return
        existing = topics()
        ready = [p for p in todo if p.delivery_topic in existing]
        missing = [p.subscription for p in todo if p.delivery_topic not in existing]
        learn_partitions(producer, sorted({p.delivery_topic for p in ready}))
        schema_id = getattr(self.serde, "schema_id", None)
        for plan in ready:
            if schema_id is not None:
                schema_id(f"{plan.delivery_topic}-value", plan.delivery_schema)
            self._prepared.add((plan.subscription, plan.version))
        if len(missing) != len(self._missing) and missing:
            self._log.warning("delivery_topics_missing", subscriptions=len(missing), first=missing[:5])
        self._missing = set(missing)
        self._missing_recheck_at = time.monotonic() + MISSING_RECHECK_S

    def decode(self, record: SourceRecord) -> Decoded:
        """The change event of a record read by the main loop, resolved to the catalog's schema.

        Raises:
            RetriableError: the registry did not answer (the record is not at fault).
        """
        if record.value is None:
            return InvalidRecord("tombstone", "compaction tombstone on a source topic carries no event")
        try:
            return self.readers.decode(record.topic, record.value)
        except InvalidRecord as exc:
            return exc

    def read_held_ahead(
        self, tp: TopicPartition, events: Sequence[Decoded], plans: Sequence[DeliveryPlan], batch: Batch
    ) -> None:
        """Read in one go which of these events' keys the filtered ``plans`` hold on ``tp``, so routing
        them asks the store nothing more (one lookup per record and filtered subscription otherwise)."""
        state = self.state
        sids = sorted({p.subscription for p in plans if p.row_filter is not None})
        if state is None or not sids:
            return
        keys = {
            self._held_key(batch, str(e.get("resource")), str(e.get("key")))
            for e in events
            if not isinstance(e, InvalidRecord)
        }
        batch.known_held[tp] = state.held_among(tp, sids, sorted(keys))

    def _held_key(self, batch: Batch, resource: str, key: str) -> bytes:
        """The store's hash of a business key, computed once per batch (read ahead, then routed)."""
        hashed = batch.key_hashes.get((resource, key))
        if hashed is None:
            hashed = batch.key_hashes[(resource, key)] = held_key(self._secret, resource, key)
        return hashed

    def emit(  # noqa: PLR0917 - the record, what it decoded to, who it is for, when, and where it goes
        self,
        producer: KafkaProducer,
        record: SourceRecord,
        decoded: Decoded,
        plans: Sequence[DeliveryPlan],
        now: int,
        batch: Batch,
    ) -> None:
        """Route one record through ``plans`` at ``now``; send what it yields in the open transaction."""
        if isinstance(decoded, InvalidRecord):
            self._undecodable(producer, record, decoded, plans, batch)
            return
        resource = decoded.get("resource")
        plans_for = [p for p in plans if p.resource == resource]
        if len(plans_for) != len(plans):
            if batch.kind == "live":  # a backfill reads records the main loop has dead-lettered already
                detail = f'event names resource "{resource}", which topic {record.topic} does not carry'
                letter = record.dead_letter(
                    self.hub, "unknown_resource", detail, "resource", resource=resource
                )
                self._dead_letter(producer, letter)
            batch.count([p for p in plans if p.resource != resource], "dead_lettered")
        if batch.kind == "snapshot" and decoded.get("op") == "d":
            # A key deleted before the handover: only a filtered subscription that holds it hears of it.
            plans_for = [p for p in plans_for if p.row_filter is not None]
        try:
            source = SourceEvent.of(record, decoded, now)
            held = self._held(record, decoded, plans_for, batch)
            outcomes = route(decoded, plans_for, now, held[0] if held else None)
        except Exception as exc:  # noqa: BLE001 - a failure one record triggers must not stop the hub
            detail = f"routing failed ({type(exc).__name__}); the hub's log has the place"
            self._log.error(
                "record_unprocessable", origin=record.origin, error=type(exc).__name__, at=_where(exc)
            )
            self._undecodable(producer, record, InvalidRecord(UNPROCESSABLE, detail), plans_for, batch)
            return
        for outcome in outcomes:
            sent = self._handle(producer, outcome, source, batch)
            if sent and held is not None and isinstance(outcome, Deliver):
                held[1](outcome.plan, outcome.value["data"] is not None)

    def _held(
        self, record: SourceRecord, event: dict[str, Any], plans: Sequence[DeliveryPlan], batch: Batch
    ) -> tuple[Holds, Any] | None:
        """(whether a plan's subscriber holds the record's key, what notes a delivery of it) or None."""
        state = self.state
        if state is None or not any(p.row_filter is not None for p in plans):
            return None
        tp = TopicPartition(record.topic, record.partition)
        key = self._held_key(batch, str(event["resource"]), str(event["key"]))

        known = batch.known_held.get(tp)

        def holds(plan: DeliveryPlan) -> bool:
            return state.holds(tp, plan.subscription, key, batch.held, known)

        def delivered(plan: DeliveryPlan, row: bool) -> None:
            if plan.row_filter is not None and holds(plan) != row:
                batch.held[(tp, plan.subscription, key)] = row

        return holds, delivered

    def finish(self, producer: KafkaProducer, batch: Batch) -> None:
        """Audit the batch: its deliveries (their offsets are known after the flush), then the rest.

        Raises:
            KafkaError: a delivery failed (the transaction aborts; a delivery Kafka refuses for good is
                dead-lettered once it has failed ``PRODUCE_ATTEMPTS`` times, see delivery_failures.py).
            KafkaTimeoutError: a delivery was not acknowledged in ``DELIVERY_WAIT_S`` (the step is read
                again with a fresh producer; not counted against the delivery).
        """
        try:
            producer.flush(timeout=DELIVERY_WAIT_S)
        except KafkaError as exc:
            # kafka-python's flush can report a failed batch as "Future not done" (UnknownError) before
            # the batch's futures are marked: the outcome of each delivery is read from its future below.
            log.debug("flush_reported", hub=self.hub, error=type(exc).__name__)
        unanswered = _unanswered(batch.pending)
        if unanswered:
            raise KafkaTimeoutError(
                f"{unanswered} of {len(batch.pending)} deliveries not acknowledged in {DELIVERY_WAIT_S:.0f} s"
            )
        entries: list[dict[str, Any]] = []
        failed: KafkaError | None = None
        first_seq = self.audit.chain.seq + 1
        for i, p in enumerate(batch.pending):
            if p.audit_seq != first_seq + i:
                # The header would name another entry than the delivery's: abort rather than mislead.
                raise FatalError(f"audit seq {p.audit_seq} announced for entry {first_seq + i}")
            try:
                meta = p.future.get(timeout=30)
            except KafkaError as exc:
                self.failures.failed(p.source.record.origin, p.outcome.plan.subscription, exc)
                failed = failed or exc
                continue
            self.failures.delivered(p.source.record.origin, p.outcome.plan.subscription)
            at = (meta.topic, meta.partition, meta.offset)
            entry = self.audit.delivered(p.outcome.plan, p.source, p.outcome.fields, at)
            if p.outcome.reason is not None:  # a delete of a row the source did not delete
                entry["op"] = p.outcome.value["op"]
                entry["reason"] = p.outcome.reason
            entries.append(entry)
        if failed is not None:
            raise failed
        entries.extend(batch.audit)
        self.audit.send(producer, entries)

    def _undecodable(
        self,
        producer: KafkaProducer,
        record: SourceRecord,
        error: InvalidRecord,
        plans: Sequence[DeliveryPlan],
        batch: Batch,
    ) -> None:
        batch.count(plans, "dead_lettered")
        if batch.kind == "live":
            batch.undecodable += 1
            self._dead_letter(producer, record.dead_letter(self.hub, error.reason, error.detail, error.field))
        elif batch.kind == "snapshot":
            # The main loop dead-lettered catch-up records already; snapshot records it may never have
            # read (they predate the hub), so the subscription that needed them reports them.
            for plan in plans:
                letter = record.dead_letter(
                    self.hub, error.reason, error.detail, error.field, subscription=plan.subscription
                )
                self._dead_letter(producer, letter)

    def _handle(self, producer: KafkaProducer, outcome: Outcome, source: SourceEvent, batch: Batch) -> bool:
        """Send or account one outcome; True when it is a delivery, sent."""
        if isinstance(outcome, Deliver):
            try:
                self._deliver(producer, outcome, source, batch)
            except InvalidRecord as exc:
                outcome = DeadLettered(outcome.plan, exc.reason, exc.detail, exc.field)
            except (RetriableError, KafkaError):
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. the registry refused the delivery schema
                detail = f"delivery of subscription {outcome.plan.subscription} failed: {type(exc).__name__}"
                self._log.error(
                    "delivery_unencodable",
                    origin=source.record.origin,
                    subscription=outcome.plan.subscription,
                    error=f"{type(exc).__name__}: {exc}" if isinstance(exc, HubError) else type(exc).__name__,
                    at=_where(exc),
                )
                outcome = DeadLettered(outcome.plan, UNENCODABLE, detail, None)
            else:
                return True
        if isinstance(outcome, Filtered):
            batch.counts[(outcome.plan.subscription, "filtered")] += 1
        elif isinstance(outcome, Refused):
            batch.counts[(outcome.plan.subscription, "refused")] += 1
            batch.audit.append(self.audit.refused(outcome.plan, source, outcome.reason))
        elif isinstance(outcome, DeadLettered):
            plan = outcome.plan
            letter = source.record.dead_letter(
                self.hub,
                outcome.reason,
                outcome.detail,
                outcome.field,
                resource=source.event.get("resource"),
                subscription=plan.subscription if plan else None,
            )
            self._dead_letter(producer, letter)
            if plan is not None:
                batch.counts[(plan.subscription, "dead_lettered")] += 1
        return False

    def _deliver(self, producer: KafkaProducer, outcome: Deliver, source: SourceEvent, batch: Batch) -> None:
        plan = outcome.plan
        sid = plan.subscription
        origin = source.record.origin
        given_up = self.failures.given_up(origin, sid)
        if given_up is not None:
            raise InvalidRecord(UNDELIVERABLE, given_up)
        value = self.serde.encode(f"{plan.delivery_topic}-value", plan.delivery_schema, outcome.value)
        # Its audit entry is appended in finish(), in the order of batch.pending: seq known now.
        audit_seq = self.audit.chain.seq + len(batch.pending) + 1
        hop = Hop(self.hub, plan.version, self.audit.chain.chain, audit_seq, sid)
        headers = [
            ("xhub.event_id", source.event_id.encode()),
            (POLICY_HEADER, plan.version.encode()),
            ("xhub.hub", self.hub.encode()),
            ("xhub.subscription", sid.encode()),
            ("xhub.source", source.record.origin.encode()),
            source.provenance.with_hop(hop).header(),
        ]
        if outcome.reason is not None:
            headers.append(("xhub.reason", outcome.reason.encode()))
        # A delivery that failed before goes in a produce batch of its own: the broker refuses a whole
        # batch (e.g. over the topic's max.message.bytes), so its neighbours would fail with it again.
        alone = self.failures.has_failed(origin, sid)
        try:
            if alone:
                producer.flush()
            future = producer.send(
                plan.delivery_topic, key=outcome.key.encode("utf-8"), value=value, headers=headers
            )
            if alone:
                future.get(timeout=30)  # its outcome now: a failure here must count against it alone
        except KafkaError as exc:  # refused before sending, e.g. over the producer's max_request_size
            self.failures.failed(origin, sid, exc)
            raise
        batch.pending.append(Pending(outcome, future, source, audit_seq))
        batch.counts[(sid, "delivered")] += 1
        if batch.kind != "snapshot":  # a state row's source commit time says nothing about latency
            batch.latencies.append(source.now - source.commit_ms)
        batch.last_commit_ms[sid] = max(batch.last_commit_ms.get(sid, 0), source.commit_ms)

    def _dead_letter(self, producer: KafkaProducer, letter: DeadLetter) -> None:
        value = self._letters.encode(letter)
        producer.send(self._letters.topic, key=None, value=value, headers=letter.headers())
        self._log.warning(
            "record_dead_lettered",
            reason=letter.reason,
            field=letter.field,
            origin=letter.origin,
            subscription=letter.subscription,
        )


def _where(exc: BaseException) -> str:
    """Where ``exc`` was raised (file:line function): for the log, since its message may quote values."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} {last.name}"


def _unanswered(pending: Sequence[Pending], grace_s: float = FUTURE_GRACE_S) -> int:
    """How many of ``pending`` have no outcome after the flush, once the sender thread had ``grace_s`` to
    mark them: kafka-python marks a batch done before the futures of its records."""
    deadline = time.monotonic() + grace_s
    while True:
        left = sum(1 for p in pending if not p.future.is_done)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)
