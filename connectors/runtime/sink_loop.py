"""The subscriber side of a sidecar: consume delivery topics, decode, hand batches to a sink.

Exactly-once with sinks that store offsets (``Sink.stores_offsets``, e.g. ``SqlSink``, ``JsonlSink``):

- the consumer reads ``read_committed`` and never relies on Kafka's group offsets for its position: on
  every assignment it seeks each new partition to ``sink.committed_offsets`` (the beginning when none
  is stored), and records polled for a partition before that seek are dropped;
- each batch goes to ``sink.write(deliveries, progress)``, which commits the rows and the consumed
  offsets together; an ``OffsetConflict`` (a zombie, or a retried batch whose commit did land) drops
  the batch and re-seeks;
- only then are the offsets committed to the Kafka group too (asynchronously, best effort), so that
  operators' lag tools see the subscriber's lag.

With sinks that keep no offsets (``WebhookSink``): at-least-once; the Kafka group offsets are committed
synchronously after ``write`` returned, and a batch that could not be written is re-read.

A record that cannot be decoded (bad framing, unknown schema id, not a change event) goes to the
department's dead-letter topic xhub.dlq.<dept> (CONTRACTS.md: Avro ``DeadLetter``, original bytes,
``xhub.reason`` / ``xhub.field`` / ``xhub.origin`` headers), flushed before the batch is written, so it
is never lost (at-least-once: a crash before the sink commits repeats it). Kafka tombstones (null
values) are skipped.

After every poll the loop checks that kafka-python has not left its group member stranded in a rebalance
no later poll completes (hub/core/group_join.py: a sink that consumed nothing for a whole `make chaos`
run), and asks for a fresh join when it has.

Transient failures (database, registry, dead-letter topic) are retried with exponential backoff while
the consumer stays in its group; nothing is committed until the batch went through, so no loss and no
crash loop. ``stop()`` (and SIGTERM/SIGINT once ``install_signal_handlers`` ran) finishes the batch in
hand and returns; a stop during a retry wait abandons the uncommitted batch, which is re-read next time.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndMetadata

from connectors.runtime.read_permissions import PERMISSION_RECHECK_S, ReadPermissions
from connectors.runtime.sink_deliveries import DeliveryDecoder, KafkaDeadLetters
from connectors.sinks.base import Delivery, PartitionProgress, Sink
from connectors.sinks.errors import OffsetConflict
from hub.core.errors import InvalidRecord, RetriableError
from hub.core.group_join import rejoin_if_stranded
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde

T = TypeVar("T")


@dataclass(slots=True)
class SinkLoopStats:
    """Counters of one ``SinkLoop`` run (consumed = written + dead_lettered + skipped, per batch done)."""

    consumed: int = 0
    written: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    batches: int = 0
    retries: int = 0
    conflicts: int = 0
    rejoins: int = 0
    """Fresh joins asked for because kafka-python left the member stranded in a rebalance."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python ships no types
    """Notes partitions gained (to seek) and lost (to drop a batch in hand); no I/O here."""

    def __init__(self, loop: SinkLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.loop._note_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.loop._note_assigned(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.loop._note_revoked(set(lost))


class _Abandoned(Exception):  # noqa: N818 - internal control flow, never leaves this module
    """The batch in hand cannot be finished (stop requested, or its partitions were revoked)."""


class SinkLoop:
    """Consume ``topics`` in consumer group ``group_id`` and feed ``sink`` (see the module docstring).

    Args:
        kafka: how to reach Kafka.
        registry_url: the schema registry the deliveries were framed with.
        topics: the delivery topic(s) of the department's subscriptions.
        group_id: the consumer group (one per department sink, e.g. ``xhub-sink-<dept>-<name>``).
        sink: where deliveries go; the loop binds its dead letters and opens and closes it.
        dept: the department running the sidecar (owner of xhub.dlq.<dept>).
        client_id: Kafka client id suffix; defaults to ``sink-<dept>``.
        max_batch: records per poll, hence per sink transaction.
        poll_timeout_ms: how long one poll waits for records.
        retry_initial_s: first backoff after a transient failure; doubles up to ``retry_max_s``.
        retry_max_s: longest backoff.
        consumer_overrides: extra kafka-python consumer settings (e.g. ``group_instance_id``).
        registry: a ready client to use instead of building one from ``registry_url``.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        registry_url: str,
        topics: str | Sequence[str],
        group_id: str,
        sink: Sink,
        *,
        dept: str,
        client_id: str | None = None,
        max_batch: int = 500,
        poll_timeout_ms: int = 500,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        consumer_overrides: Mapping[str, Any] | None = None,
        registry: RegistryClient | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.group_id = group_id
        self.sink = sink
        self.dept = dept
        self.client_id = client_id or f"sink-{dept}"
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.consumer_overrides = dict(consumer_overrides or {})
        self.serde = AvroSerde(registry or RegistryClient(registry_url, tls=kafka.tls()))
        self.decoder = DeliveryDecoder(self.serde)
        self.dead_letters = KafkaDeadLetters(kafka, self.serde, dept, self.client_id)
        self.stats = SinkLoopStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: set[TopicPartition] = set()
        self._revoked: set[TopicPartition] = set()
        self._conflicts_in_a_row = 0
        self._consumer: KafkaConsumer | None = None
        self._subscribed: list[str] = []
        self._next_recheck = 0.0
        self._log = get_logger("sink_loop", dept=dept, group=group_id)
        self._permissions = ReadPermissions(self._log)

    # -- control ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to return after the batch in hand (thread- and signal-safe)."""
        self._stop.set()

    @property
    def refused(self) -> set[str]:
        """The topics of the sink the broker does not let it read (yet); asked for again every 10 s."""
        return set(self._permissions.refused)

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT call ``stop`` (main thread only)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            del frame
            self._log.info("stop_requested", signal=signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- rebalance bookkeeping (called from the consumer's I/O loop) -------------------------------
    def _note_assigned(self, assigned: set[TopicPartition]) -> None:
        with self._lock:
            if self.sink.stores_offsets:
                self._pending |= assigned
        self._log.info("partitions_assigned", partitions=sorted(f"{t}-{p}" for t, p in assigned))

    def _note_revoked(self, revoked: set[TopicPartition]) -> None:
        with self._lock:
            self._revoked |= revoked
            self._pending -= revoked
        if revoked:
            self._log.info("partitions_revoked", partitions=sorted(f"{t}-{p}" for t, p in revoked))

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until ``stop``; returns after closing the consumer, producer and sink.

        Raises:
            HubError: a non-retriable failure (config, fatal); nothing uncommitted is lost.
        """
        self.sink.bind_dead_letters(self.dead_letters)
        with self._lock:  # run() may be called again after a failure: forget the last consumer's state
            self._pending.clear()
            self._revoked.clear()
        consumer = make_consumer(
            self.kafka,
            self.client_id,
            group_id=self.group_id,
            max_poll_records=self.max_batch,
            **self.consumer_overrides,
        )
        self._consumer = consumer
        self._log.info("sink_loop_started", topics=self.topics, sink=type(self.sink).__name__)
        try:
            self._retry(self.sink.open, batch_partitions=set())
            # Know the topics' partitions before joining the group: a sink whose first join went ahead
            # without them was assigned nothing and stayed so (seen in test_filtered_views: one
            # "partitions_assigned []" and no rebalance for 45 s).
            self._permissions.permitted(consumer, self.topics)
            self._subscribe(consumer)
            while not self._stop.is_set():
                self._recheck_refused(consumer)
                if not self._subscribed:
                    self._stop.wait(self.poll_timeout_ms / 1000)
                    continue
                self._seek_pending()
                try:
                    polled = self._poll(consumer, self.poll_timeout_ms)
                except TopicAuthorizationFailedError:
                    if not self._drop_refused(consumer):
                        raise
                    continue
                with self._lock:
                    pending = set(self._pending)
                    self._revoked.clear()
                batch = {tp: records for tp, records in polled.items() if records and tp not in pending}
                if batch:
                    self._process(batch)
        except _Abandoned:
            pass
        finally:
            self._close(consumer)
        self._log.info("sink_loop_stopped", **_asdict(self.stats))

    # -- topics this identity may not read (yet): read_permissions.py -----------------------------
    def _subscribe(self, consumer: KafkaConsumer) -> None:
        """Subscribe to the sink's topics but those refused (none left: no subscription)."""
        self._subscribed = [t for t in self.topics if t not in self._permissions.refused]
        self._next_recheck = time.monotonic() + PERMISSION_RECHECK_S
        if self._subscribed:
            consumer.subscribe(self._subscribed, listener=_Listener(self))
        else:
            consumer.unsubscribe()

    def _drop_refused(self, consumer: KafkaConsumer) -> bool:
        """After a refusal while reading (a grant revoked, or a static member given back an assignment
        from before it was): go on without the topics now refused. False when none is (fail as before)."""
        if len(self._permissions.permitted(consumer, self._subscribed)) == len(self._subscribed):
            return False
        self._subscribe(consumer)
        return True

    def _recheck_refused(self, consumer: KafkaConsumer) -> None:
        """Every ``PERMISSION_RECHECK_S``, ask again for the refused topics; subscribe to those now let in
        (the rebalance that follows positions them from the sink's stored offsets)."""
        if not self._permissions.refused or time.monotonic() < self._next_recheck:
            return
        if self._permissions.permitted(consumer, sorted(self._permissions.refused)):
            self._subscribe(consumer)
        else:
            self._next_recheck = time.monotonic() + PERMISSION_RECHECK_S

    def _close(self, consumer: KafkaConsumer) -> None:
        self._consumer = None
        try:
            consumer.close(autocommit=False)
        except KafkaError as exc:
            self._log.warning("consumer_close_failed", error=type(exc).__name__)
        self.dead_letters.close()
        self.sink.close()

    def _seek_pending(self) -> None:
        """Seek newly assigned partitions to the sink's stored offsets (beginning when none)."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        wanted = [tp for tp in pending if tp in assigned]
        try:
            stored = self._retry(lambda: self.sink.committed_offsets(wanted), batch_partitions=set())
        except _Abandoned:
            if self._stop.is_set():
                raise
            return  # a rebalance came in between: start over with the new assignment
        assigned = consumer.assignment()
        wanted = [tp for tp in wanted if tp in assigned]
        for tp in wanted:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        with self._lock:
            self._pending -= set(wanted)
            self._pending &= consumer.assignment()
        self._log.info(
            "partitions_positioned",
            partitions={f"{tp.topic}-{tp.partition}": stored.get((tp.topic, tp.partition)) for tp in wanted},
        )

    def _process(self, polled: Mapping[TopicPartition, list[Any]]) -> None:
        progress = [
            PartitionProgress(tp.topic, tp.partition, records[0].offset, records[-1].offset + 1)
            for tp, records in polled.items()
        ]
        partitions = set(polled)
        records = [record for rs in polled.values() for record in rs]
        try:
            deliveries, dead, skipped = self._retry(
                lambda: self._decode(records), batch_partitions=partitions
            )
            self._retry(lambda: self.sink.write(deliveries, progress), batch_partitions=partitions)
        except _Abandoned:
            if self._stop.is_set():
                raise
            self._rewind(polled)
            return
        except OffsetConflict as exc:
            self.stats.conflicts += 1
            self._conflicts_in_a_row += 1
            self._log.warning("offset_conflict", error=str(exc), in_a_row=self._conflicts_in_a_row)
            self._rewind(polled)
            if self._conflicts_in_a_row > 1:
                # One conflict is a zombie or an ambiguous commit; more in a row mean the log and the
                # store disagree (e.g. a recreated topic): back off instead of spinning.
                self._wait(min(self.retry_max_s, self.retry_initial_s * 2 ** (self._conflicts_in_a_row - 2)))
            return
        self._conflicts_in_a_row = 0
        self._commit_group(progress)
        self.stats.batches += 1
        self.stats.consumed += len(records)
        self.stats.written += len(deliveries)
        self.stats.dead_lettered += dead
        self.stats.skipped += skipped
        self._log.debug("batch_done", records=len(records), dead_lettered=dead)

    def _decode(self, records: Sequence[Any]) -> tuple[list[Delivery], int, int]:
        """Decode a batch; dead-letter (and flush) what cannot be decoded.

        Every record is decoded before any dead letter is sent, so a registry outage part-way (which
        retries the whole step) does not send a dead letter twice.
        """
        deliveries: list[Delivery] = []
        refused: list[tuple[Any, InvalidRecord]] = []
        skipped = 0
        for record in records:
            if record.value is None:
                skipped += 1  # a Kafka tombstone left by compaction: no change to apply
                continue
            try:
                deliveries.append(self.decoder.decode(record))
            except InvalidRecord as exc:
                refused.append((record, exc))
        for record, problem in refused:
            self.dead_letters.publish_raw(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                reason=problem.reason,
                detail=problem.detail,
                field=problem.field,
                subscription=record.topic.rsplit(".", 1)[-1],
            )
        self.dead_letters.flush()
        return deliveries, len(refused), skipped

    def _rewind(self, polled: Mapping[TopicPartition, list[Any]]) -> None:
        """Make the partitions of an unfinished batch be read again from where the sink stands."""
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        mine = {tp for tp in polled if tp in assigned}
        if self.sink.stores_offsets:
            with self._lock:
                self._pending |= mine
            return
        for tp in mine:
            consumer.seek(tp, polled[tp][0].offset)

    def _commit_group(self, progress: Sequence[PartitionProgress]) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets = {
            TopicPartition(p.topic, p.partition): OffsetAndMetadata(p.next_offset, "", -1) for p in progress
        }
        if self.sink.stores_offsets:
            # Information for lag tools only: the sink's own store is the truth, so do not wait.
            consumer.commit_async(offsets=offsets, callback=self._on_commit)
            return
        try:
            consumer.commit(offsets=offsets)
        except KafkaError as exc:
            # The partitions moved to another member, which re-reads from the last commit.
            self._log.warning("group_commit_failed", error=f"{type(exc).__name__}: {exc}")

    def _on_commit(self, offsets: Any, response: Any) -> None:
        if isinstance(response, Exception):
            self._log.debug("group_commit_failed", error=type(response).__name__)

    def _retry(self, action: Callable[[], T], *, batch_partitions: set[TopicPartition]) -> T:
        """Run ``action`` until it succeeds, backing off on ``RetriableError``.

        Raises:
            _Abandoned: stop was requested, or a partition of the batch was revoked, while waiting.
            OffsetConflict: passed through; the caller re-seeks.
        """
        attempt = 0
        while True:
            try:
                return action()
            except OffsetConflict:
                raise
            except RetriableError as exc:
                attempt += 1
                self.stats.retries += 1
                delay = min(self.retry_max_s, self.retry_initial_s * 2 ** (attempt - 1))
                self._log.warning(
                    "sink_retry",
                    attempt=attempt,
                    delay_s=round(delay, 2),
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._wait(delay)
                with self._lock:
                    lost = bool(batch_partitions & self._revoked)
                if self._stop.is_set() or lost:
                    raise _Abandoned from exc

    def _poll(self, consumer: KafkaConsumer, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        """``consumer.poll``; then, when kafka-python left the group member stranded in a rebalance that
        no poll completes (hub/core/group_join.py), ask for a fresh join, which the next poll makes."""
        polled: dict[TopicPartition, list[Any]] = consumer.poll(
            timeout_ms=timeout_ms, max_records=self.max_batch
        )
        if rejoin_if_stranded(consumer):
            self.stats.rejoins += 1
            self._log.warning(
                "group_rejoin_requested", reason="stranded in a rebalance", rejoins=self.stats.rejoins
            )
        return polled

    def _wait(self, seconds: float) -> None:
        """Back off while staying in the group: poll with every partition paused."""
        consumer = self._consumer
        deadline = time.monotonic() + seconds
        if consumer is None or not consumer.assignment():
            self._stop.wait(seconds)
            return
        consumer.pause(*consumer.assignment())
        try:
            while not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                got = self._poll(consumer, int(min(remaining, 0.5) * 1000) or 1)
                for tp, records in got.items():
                    if records:  # only partitions assigned during the wait are not paused: read them again
                        consumer.seek(tp, records[0].offset)
        finally:
            consumer.resume(*consumer.assignment())


def _asdict(stats: SinkLoopStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in stats.__slots__}
