"""The exactly-once step: one Kafka transaction carries what a step writes and the offsets it consumed.

Every write of a worker goes through :meth:`TransactionStep.run`: the main loop's batches, the backfill
chunks and the housekeeping commits (policy audit, new subscriptions, first pins). The step begins the
transaction, lets the caller produce (deliveries, dead letters, audit entries), then sends the state
changes to the changelog (where each subscription stands on each partition, the keys filtered
subscriptions hold: hub/engine/state/) and the consumed offsets with the group metadata (each offset
carrying the audit chain's head, see hub/audit/anchor.py), and commits; then the local state store
takes the changes. On a failure it aborts, restores the audit chain to where
it stood (the aborted entries never became visible) and lets the caller rewind its reading positions,
so the same input is read again, after a pause that grows from 1 s to 15 s while the failures go on
(the broker or the registry is down: wait for it without losing the place). A commit the broker did not
answer in time may still have been made: the committed offsets (and the chain head in their metadata)
tell, and a step made after all is not read again. Fencing (another worker took over the transactional
id) is fatal. The backfill task runs its own step (own producer, own transactional id): no consumed
offsets (its position is in its state entries), and only the state of the subscriptions it serves.
Like the checkpoint of quix-streams: one class owns the commit, the callers only say what goes in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from hub.audit.anchor import anchor_value
from hub.audit.chain import AuditChain
from hub.core import names
from hub.core.errors import FatalError, RetriableError
from hub.core.kafka import (
    abort_transaction_within,
    close_producer,
    commit_transaction_within,
    send_offsets_within,
)
from hub.core.log import get_logger
from hub.engine.errors import WorkerFencedError
from hub.engine.handover import Backfilling, PartitionState, encode_metadata
from hub.engine.state.changelog import Changelog, Entry, HandoverEntry
from hub.engine.state.store import HeldChanges, StateStore
from hub.engine.stats import WorkerStats

log = get_logger("engine")

ABORT_PAUSE_S = 1.0  # after a first abort, before the input is read again
MAX_PAUSE_S = 15.0  # the pause doubles while the failures go on, up to this
STEP_TIMEOUT_S = 30.0  # longest wait for the offsets' and the commit's answers
OFFSET_READS = 5  # tries to read the committed offsets after an unanswered commit, then stop the worker
EXPIRED_SHARE = 0.8  # fenced after this share of the transaction timeout: the broker aborted it, retry


class Backoff:
    """Pauses between retries: ``first``, doubling up to ``most``; back to ``first`` after a success."""

    def __init__(self, first: float = ABORT_PAUSE_S, most: float = MAX_PAUSE_S) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self.most)
        return pause

    def reset(self) -> None:
        self._next = self.first


# What a step consumed: per partition, the next offset to read and the subscriptions' state there.
Positions = Mapping[TopicPartition, tuple[int, PartitionState]]
Body = Callable[[KafkaProducer], Positions]
# Takes subscriptions away from the backfill task before a step changes their state (see run).
Claim = Callable[[Iterable[tuple[TopicPartition, str]]], None]


class TransactionStep:
    """Runs steps of one worker, each in one transaction of its transactional producer.

    Args:
        producer: the worker's transactional producer (``init_transactions`` already called).
        consumer: the worker's group consumer (its group metadata goes with the offsets); None for the
            backfill task, which commits no offsets and only the state of the subscriptions it serves.
        chain: the worker's audit chain, restored when a transaction aborts.
        state: the worker's state store (takes each committed step's changes).
        changelog: the state store's changelog topic.
        stats: counts the aborted transactions.
        hub: the hub's name.
        worker_id: the worker's id within the hub (its transactional id is built from both).
        transactional_id: the producer's, when not the worker's (the backfill task's).
    """

    def __init__(  # noqa: PLR0917 - the clients, the chain and the store one commit spans
        self,
        producer: KafkaProducer,
        consumer: KafkaConsumer | None,
        chain: AuditChain,
        state: StateStore,
        changelog: Changelog,
        stats: WorkerStats,
        *,
        hub: str,
        worker_id: int,
        transactional_id: str | None = None,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.chain = chain
        self.state = state
        self.changelog = changelog
        self.stats = stats
        self.hub = hub
        self.worker_id = worker_id
        self.transactional_id = transactional_id or names.hub_transactional_id(hub, worker_id)
        self.backoff = Backoff()
        # The main loop's: called before its step ends a backfill (abandoned, dropped by a policy
        # change), so the backfill task has no transaction for it open when this one writes its end.
        self.claim: Claim | None = None
        # Makes a fresh transactional producer (init_transactions done) when the current one cannot
        # abort: kafka-python can wedge its transaction state after failed idempotent batches (e.g.
        # "Invalid transition ... BUMPING_PRODUCER_EPOCH"); a new producer with the same transactional
        # id fences the old one and the broker aborts its open transaction.
        self.reopen: Callable[[], KafkaProducer] | None = None
        # The producer's transaction timeout, after which the broker aborts an open transaction.
        self.timeout_s = STEP_TIMEOUT_S
        # How to pause after an abort; the worker sets its stop event's wait, so stopping is not delayed.
        self.wait: Callable[[float], object] = time.sleep
        self.clock: Callable[[], float] = time.monotonic  # how long a step has run (tests set their own)
        self._log = log.bind(hub=hub)

    def run(
        self, body: Body, *, rewind: Callable[[], None] | None = None, held: HeldChanges | None = None
    ) -> bool:
        """Begin; ``body`` produces and returns the positions consumed; send the state changes and the
        offsets; commit; then write the state changes to the local store.

        ``held``: the keys filtered subscriptions take or release in this step (``body`` fills it).

        Returns:
            True when committed. False when the transaction was aborted (Kafka failed, the registry did
            not answer): the chain is restored, ``rewind`` has been called and the backoff pause waited,
            so the caller reads the same input again.

        Raises:
            WorkerFencedError: another worker holds this transactional id now.
            FatalError: the failed transaction could not be aborted.
        """
        chain_state = self.chain.snapshot()
        self.state.begin(self.transactional_id)
        began = self.clock()
        positions: Positions = {}
        metadata = ""
        committing = False
        try:
            self.producer.begin_transaction()
            positions = body(self.producer)
            states = {tp: state for tp, (_, state) in positions.items()}
            entries = self.state.changes(states, held, partial=self.consumer is None)
            if self.claim is not None:
                self.claim(self._ended_backfills(entries))
            sent = self.changelog.send(self.producer, entries)
            if positions and self.consumer is not None:
                # After the body: the metadata anchors the audit chain's head including this step's entries.
                metadata = encode_metadata(anchor_value(self.chain))
                offsets = {
                    tp: OffsetAndMetadata(offset, metadata, -1) for tp, (offset, _) in positions.items()
                }
                send_offsets_within(self.producer, offsets, self.consumer.group_metadata(), STEP_TIMEOUT_S)
            # Bounded: after a broker restart or the coordinator's death an answer can be lost, and the
            # worker then hung here for good (make chaos); a timeout aborts, reopening the producer.
            committing = True
            commit_transaction_within(self.producer, STEP_TIMEOUT_S)
        except ProducerFencedError as exc:
            if self.reopen is not None and self.clock() - began >= EXPIRED_SHARE * self.timeout_s:
                # The broker also fences a transaction it aborted for running too long: after an outage
                # (the district hub's worker died of it when the district cluster stopped mid-stream).
                # That step is ours to read again with a fresh producer; fenced quickly means another
                # worker took over, which is fatal.
                self._log.warning("transaction_expired", error=f"{type(exc).__name__}: {exc}")
                self._replace_producer()
                self._abort(chain_state, exc, settled=True)
                return self._failed(rewind)
            raise WorkerFencedError(
                f"hub {self.hub} worker {self.worker_id}: transactional id {self.transactional_id} "
                "was taken over by another worker (two workers with the same --worker-id?)"
            ) from exc
        except (KafkaError, RetriableError) as exc:
            # Only a step that appended to the chain can be told apart from the one before it; the backfill
            # task commits no offsets, so its unanswered commit is read again (its chunks are upserts).
            unanswered = (
                committing
                and isinstance(exc, KafkaTimeoutError)
                and self.reopen is not None
                and self.consumer is not None
            )
            telling = bool(positions) and self.chain.snapshot() != chain_state
            if unanswered and telling and self._committed_after_all(positions, metadata, exc):
                return self._committed(sent)
            self._abort(chain_state, exc, settled=unanswered and telling)
            return self._failed(rewind)
        except BaseException:
            self.state.end(self.transactional_id)
            raise
        return self._committed(sent)

    def _committed(self, sent: list[tuple[Entry, Any]]) -> bool:
        """The step committed: the local store takes its changes."""
        self.backoff.reset()
        try:
            self.state.apply(sent, self.transactional_id)
        finally:
            self.state.end(self.transactional_id)
        return True

    def _failed(self, rewind: Callable[[], None] | None) -> bool:
        """The step aborted: its input is read again after the backoff pause."""
        self.state.end(self.transactional_id)
        if rewind is not None:
            rewind()
        self.wait(self.backoff.next())
        return False

    def _ended_backfills(self, entries: list[Entry]) -> list[tuple[TopicPartition, str]]:
        """The subscriptions whose committed backfill these entries end or replace."""
        return [
            (entry.tp, entry.sid)
            for entry in entries
            if isinstance(entry, HandoverEntry)
            and isinstance(self.state.handover(entry.tp).get(entry.sid), Backfilling)
        ]

    def _committed_after_all(self, positions: Positions, metadata: str, exc: KafkaTimeoutError) -> bool:
        """Whether a commit the broker did not answer in time took effect anyway.

        The answer can be lost while the commit goes through: a coordinator that wrote its decision
        completes it after a restart. Re-reading the step's input then delivered it twice (seen when the
        city cluster of a federation test stopped mid-stream). A fresh producer settles the transaction
        (its ``init_transactions`` waits for a decided commit to complete and aborts an undecided one),
        and the offsets went in the same transaction: the group's committed offsets tell which it was,
        with the chain head of this step in their metadata.

        Raises:
            FatalError: the committed offsets could not be read (a restart resumes from them).
        """
        assert self.reopen is not None  # checked by the caller
        assert self.consumer is not None  # the worker's step: the backfill task's commits no offsets
        consumer = self.consumer
        self._log.warning("transaction_commit_unanswered", error=f"{type(exc).__name__}: {exc}")
        self._replace_producer()
        for attempt in range(OFFSET_READS):
            try:
                committed = {
                    tp: consumer.committed(tp, metadata=True, timeout_ms=int(STEP_TIMEOUT_S * 1000))
                    for tp in positions
                }
                break
            except KafkaError as read_exc:
                self._log.warning(
                    "committed_offsets_unread", attempt=attempt + 1, error=f"{type(read_exc).__name__}"
                )
                self.wait(self.backoff.next())
        else:
            raise FatalError(
                f"hub {self.hub}: a commit was not answered and the committed offsets cannot be read: "
                "stopping so that a restart resumes from them"
            ) from exc
        landed = all(
            (got := committed[tp]) is not None and (got.offset, got.metadata) == (offset, metadata)
            for tp, (offset, _) in positions.items()
        )
        if landed:
            self._log.warning("transaction_committed_unanswered", partitions=len(positions))
        return landed

    def _replace_producer(self) -> None:
        """Drop the current producer for a fresh one (its ``init_transactions`` fences the old one)."""
        assert self.reopen is not None
        close_producer(self.producer, timeout_s=1)
        self.producer = self.reopen()

    def _abort(self, chain_state: tuple[int, str], exc: Exception, *, settled: bool = False) -> None:
        """Count and log the failed step, restore the chain, and abort its transaction unless a fresh
        producer already ``settled`` it."""
        # Kafka and registry errors name topics, codes and URLs, never record values.
        self._log.warning("transaction_aborted", error=f"{type(exc).__name__}: {exc}")
        with self.stats.lock:
            self.stats.aborted_transactions += 1
        self.chain.restore(chain_state)
        if settled:
            return
        try:
            if isinstance(exc, KafkaTimeoutError) and self.reopen is not None:
                # Something did not answer in time: a new producer (its init_transactions fences this
                # one and aborts its transaction) finds the coordinator afresh; this one may not.
                raise exc
            abort_transaction_within(self.producer, STEP_TIMEOUT_S)
        except KafkaError as abort_exc:
            if self.reopen is not None:
                self._log.warning("producer_reopened", error=f"{type(abort_exc).__name__}: {abort_exc}")
                self._replace_producer()
                return
            raise FatalError(
                f"hub {self.hub}: could not abort a failed transaction: {abort_exc}"
            ) from abort_exc
