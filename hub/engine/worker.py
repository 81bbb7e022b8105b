"""One worker of one exchange hub: the exactly-once consume -> policy -> deliver loop.

Per batch, in ONE Kafka transaction: the deliveries, the dead letters, the audit entries and the consumed
offsets (send_offsets_to_transaction with the group metadata). Read_committed on the way in. Several
workers of a hub share the partitions through the consumer group; each has a stable transactional id
(hub + worker id) so a restarted worker fences its predecessor and aborts its open transaction at once.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

import schemas
from hub import topics
from hub.audit.chain import AuditChain, key_hash
from hub.catalog.envelope import now_ms
from hub.engine.policy_set import PolicySet, policy_set_from_snapshot, snapshot_of
from hub.engine.router import DeadLetter, Deliver, Filtered, Outcome, Refused, route
from hub.engine.stats import WorkerStats
from hub.errors import FatalError, InvalidRecord
from hub.kafka_client import KafkaSettings, make_consumer, make_producer
from hub.log import get_logger

log = get_logger("engine")


class Serde(Protocol):
    def encode(self, subject: str, schema: dict[str, Any], record: dict[str, Any]) -> bytes: ...

    def decode(self, data: bytes, reader_schema: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]: ...


@dataclass
class WorkerOptions:
    hub: str
    worker_id: int = 0
    batch_max_records: int = 500
    batch_max_ms: int = 100
    transaction_timeout_ms: int = 30000
    follow_config: bool = True  # follow xhub.cfg.<hub> for live policy changes


@dataclass
class _Batch:
    """What one transaction carries, applied to the counters only after it commits."""

    pending: list[tuple[Deliver, Any, str, str, dict[str, Any]]] = field(default_factory=list)  # + source, event id, event
    audit: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[int] = field(default_factory=list)
    last_commit_ms: dict[str, int] = field(default_factory=dict)
    consumed: int = 0
    undecodable: int = 0


def _millis(value: Any) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000) if isinstance(value, datetime) else 0


class HubWorker:
    """Run with :meth:`run` (blocks) and stop from another thread or a signal handler with :meth:`stop`."""

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
        self.transactional_id = f"xhub-hub-{self.hub}-{options.worker_id}"
        self.group_id = f"xhub-hub-{self.hub}"
        self.audit_topic = topics.audit_topic(self.hub)
        self.dlq_topic = topics.dead_letter_topic(self.hub)
        self.chain = AuditChain(self.transactional_id)
        self._stop = threading.Event()
        self._audit_schema = schemas.load("hub/audit_record.avsc")
        self._dead_letter_schema = schemas.load("hub/dead_letter.avsc")
        self._pending_policy_audit: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.assignment: frozenset[TopicPartition] = frozenset()  # partitions this worker owns now

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
        )
        follower = self._config_follower() if self.options.follow_config else None
        try:
            producer.init_transactions()
            self._resume_chain()
            self._subscribe(consumer)
            log.info("worker_started", hub=self.hub, worker=self.options.worker_id,
                     subscriptions=len(self.policies.plans), topics=len(self.policies.by_topic))
            self.ready.set()
            while not self._stop.is_set():
                if follower is not None:
                    self._follow_config(follower, consumer)
                if self._pending_policy_audit:
                    self._commit_policy_audit(producer)
                if not self.policies.by_topic:
                    self._stop.wait(self.options.batch_max_ms / 1000)
                    continue
                batch = consumer.poll(timeout_ms=self.options.batch_max_ms, max_records=self.options.batch_max_records)
                self.assignment = frozenset(consumer.assignment())
                if batch:
                    self._process_batch(producer, consumer, batch)
        finally:
            log.info("worker_stopping", hub=self.hub, worker=self.options.worker_id)
            consumer.close()
            if follower is not None:
                follower.close()
            producer.close(timeout=5)

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
                plans = self.policies.by_topic.get(tp.topic, [])
                for rec in records:
                    self._process_record(producer, rec, plans, work)
            producer.flush()
            self._write_audit(producer, work)
            offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items()}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        except ProducerFencedError as exc:
            raise FatalError(
                f"hub {self.hub} worker {self.options.worker_id}: transactional id {self.transactional_id} was "
                "taken over by another worker (two workers with the same --worker-id?)"
            ) from exc
        except KafkaError as exc:
            self._abort(producer, consumer, batch, chain_state, exc)
            return
        self._account(work, time.perf_counter() - started)

    def _process_record(self, producer: KafkaProducer, rec: Any, plans: list[Any], work: _Batch) -> None:
        work.consumed += 1
        origin = f"{rec.topic}-{rec.partition}@{rec.offset}"
        try:
            if rec.value is None:
                raise InvalidRecord("tombstone", "compaction tombstone on a source topic carries no event")
            _, event = self.serde.decode(rec.value)
        except InvalidRecord as exc:
            work.undecodable += 1
            self._dead_letter(producer, rec.value or b"", exc.reason, exc.detail, exc.field, origin, None, None)
            for plan in plans:
                work.counts[(plan.subscription, "dead_lettered")] += 1
            return
        resource = event.get("resource")
        plans_for = [p for p in plans if p.resource == resource]
        if len(plans_for) != len(plans):
            detail = f'event names resource "{resource}", which topic {rec.topic} does not carry'
            self._dead_letter(producer, rec.value, "unknown_resource", detail, "resource", origin, resource, None)
            for plan in plans:
                if plan.resource != resource:
                    work.counts[(plan.subscription, "dead_lettered")] += 1
        now = now_ms()
        event_id = str(event["event_id"])
        commit_ms = _millis(event["source"]["commit_ts_ms"])
        for outcome in route(event, plans_for, now):
            self._handle(producer, outcome, rec, origin, event_id, event, commit_ms, now, work)

    def _handle(
        self,
        producer: KafkaProducer,
        outcome: Outcome,
        rec: Any,
        origin: str,
        event_id: str,
        event: dict[str, Any],
        commit_ms: int,
        now: int,
        work: _Batch,
    ) -> None:
        plan = outcome.plan
        if isinstance(outcome, Deliver):
            value = self.serde.encode(f"{plan.delivery_topic}-value", plan.delivery_schema, outcome.value)
            headers = [
                ("xhub.event_id", event_id.encode()),
                ("xhub.policy_version", plan.version.encode()),
                ("xhub.hub", self.hub.encode()),
                ("xhub.subscription", plan.subscription.encode()),
                ("xhub.source", origin.encode()),
            ]
            future = producer.send(plan.delivery_topic, key=outcome.key.encode("utf-8"), value=value, headers=headers)
            work.pending.append((outcome, future, origin, event_id, event))
            work.counts[(plan.subscription, "delivered")] += 1
            work.latencies.append(now - commit_ms)
            work.last_commit_ms[plan.subscription] = max(work.last_commit_ms.get(plan.subscription, 0), commit_ms)
        elif isinstance(outcome, Filtered):
            work.counts[(plan.subscription, "filtered")] += 1
        elif isinstance(outcome, Refused):
            work.counts[(plan.subscription, "refused")] += 1
            work.audit.append(self._audit_entry("refused", plan, now, event_id, event, origin, reason=outcome.reason))
        elif isinstance(outcome, DeadLetter):
            self._dead_letter(producer, rec.value, outcome.reason, outcome.detail, outcome.field, origin,
                              event.get("resource"), plan.subscription if plan else None)
            if plan is not None:
                work.counts[(plan.subscription, "dead_lettered")] += 1

    def _audit_entry(
        self,
        kind: str,
        plan: Any,
        now: int,
        event_id: str | None,
        event: dict[str, Any] | None,
        origin: str | None,
        *,
        fields: tuple[str, ...] = (),
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
        for outcome, future, origin, event_id, event in work.pending:
            meta = future.get(timeout=30)
            entries.append(
                self._audit_entry(
                    "delivered", outcome.plan, now_ms(), event_id, event,
                    origin, fields=outcome.fields, delivered=(meta.topic, meta.partition, meta.offset),
                )
            )
        entries.extend(work.audit)
        subject = f"{self.audit_topic}-value"
        for entry in entries:
            chained = self.chain.append(entry)
            producer.send(self.audit_topic, key=self.chain.chain.encode(),
                          value=self.serde.encode(subject, self._audit_schema, chained))

    def _dead_letter(
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
        record = {
            "reason": reason,
            "detail": detail,
            "field": field_name,
            "owner": self.hub,
            "resource": resource,
            "origin": origin,
            "subscription": subscription,
            "ts_ms": now_ms(),
            "original": original,
        }
        headers = [("xhub.reason", reason.encode()), ("xhub.origin", origin.encode())]
        if field_name:
            headers.append(("xhub.field", field_name.encode()))
        value = self.serde.encode(f"{self.dlq_topic}-value", self._dead_letter_schema, record)
        producer.send(self.dlq_topic, key=None, value=value, headers=headers)
        log.warning("record_dead_lettered", hub=self.hub, reason=reason, field=field_name, origin=origin,
                    subscription=subscription)

    def _abort(
        self,
        producer: KafkaProducer,
        consumer: KafkaConsumer,
        batch: dict[TopicPartition, list[Any]],
        chain_state: tuple[int, str],
        exc: Exception,
    ) -> None:
        log.warning("transaction_aborted", hub=self.hub, error=f"{type(exc).__name__}: {exc}")
        self.stats.aborted_transactions += 1
        self.chain.restore(chain_state)
        try:
            producer.abort_transaction()
        except KafkaError as abort_exc:
            raise FatalError(f"hub {self.hub}: could not abort a failed transaction: {abort_exc}") from abort_exc
        # Re-read the batch: seek back to the first record of each partition.
        for tp, records in batch.items():
            consumer.seek(tp, records[0].offset)
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
            consumer.subscribe(self.policies.source_topics)
        else:
            consumer.unsubscribe()

    def _config_follower(self) -> KafkaConsumer:
        follower = make_consumer(self.kafka, f"hub-{self.hub}-cfg", group_id=None)
        tp = TopicPartition(topics.config_topic(self.hub), 0)
        follower.assign([tp])
        end = follower.end_offsets([tp]).get(tp, 0)
        follower.seek(tp, max(0, end - 1))
        return follower

    def _follow_config(self, follower: KafkaConsumer, consumer: KafkaConsumer) -> None:
        latest: bytes | None = None
        for records in follower.poll(timeout_ms=0).values():
            for rec in records:
                if rec.value:
                    latest = rec.value
        if latest is None:
            return
        digest, config = snapshot_of(latest)
        if digest == self.policies.digest:
            return
        new = policy_set_from_snapshot(config, secret=self.secret, digest=digest)
        self._install(new, consumer)

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
            reason = "added" if before is None else "removed" if after is None else "changed"
            entry = self._audit_entry("policy_changed", plan, now, None, None, None,
                                      fields=tuple(plan.fields) if after else (), reason=reason)
            if after is None:
                entry["policy_version"] = "removed"
            self._pending_policy_audit.append(entry)
            log.info("policy_changed", hub=self.hub, subscription=sid, change=reason,
                     version=after.version if after else None)
        topics_changed = old.source_topics != new.source_topics
        self.policies = new
        if consumer is not None and topics_changed:
            self._subscribe(consumer)
        if self.on_policy_change is not None:
            self.on_policy_change(new)

    def _commit_policy_audit(self, producer: KafkaProducer) -> None:
        chain_state = self.chain.snapshot()
        subject = f"{self.audit_topic}-value"
        try:
            producer.begin_transaction()
            for entry in self._pending_policy_audit:
                producer.send(self.audit_topic, key=self.chain.chain.encode(),
                              value=self.serde.encode(subject, self._audit_schema, self.chain.append(entry)))
            producer.commit_transaction()
            self._pending_policy_audit.clear()
        except KafkaError as exc:
            self.chain.restore(chain_state)
            producer.abort_transaction()
            log.warning("policy_audit_retry", hub=self.hub, error=str(exc))
