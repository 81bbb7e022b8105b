"""The source partitions a worker owns, where it reads them, and the committed state of each.

The consumer group hands partitions out; the rebalance callbacks only note what was gained or lost (they
run inside ``poll``: no I/O there). Before the records of a newly owned partition can be routed, its
state store is restored from the changelog (hub/engine/state/) and its state read from there. A
partition the group never committed is "unpinned": the worker commits a position for it soon, so the
next owner starts there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Literal

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from hub.core.envelope import now_ms
from hub.core.errors import FatalError
from hub.core.log import get_logger
from hub.engine.handover import Backfilling, Live, PartitionState, decode_metadata, establish, written_by_hub
from hub.engine.live_policy import LivePolicy
from hub.engine.state.restore import Restorer
from hub.engine.state.store import StateStore

log = get_logger("engine")

EMPTY_SETTLE_S = 3.0  # an empty assignment that lasts this long counts as joined


def _names(tps: Iterable[TopicPartition]) -> list[str]:
    return [f"{t.topic}-{t.partition}" for t in tps]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python ships no type hints
    def __init__(self, partitions: Partitions) -> None:
        self.partitions = partitions

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.partitions.revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.partitions.assigned(set(assigned))


class Partitions:
    """Ownership of one worker: the partitions, their log starts and their committed state.

    Args:
        hub: the hub's name (for messages).
        policy: the policy in force (which subscriptions a partition's state holds).
        first_start: where a partition the group never committed is first read ("state": at its end;
            "replay": at its beginning, see ``WorkerOptions.first_start``).
        on_revoked: called with the partitions lost, from inside ``poll``.
        store: the worker's state store (one store per owned partition).
        restorer: restores the store of a newly owned partition from the changelog.
    """

    def __init__(  # noqa: PLR0917 - the parts of ownership, each needed here
        self,
        hub: str,
        policy: LivePolicy,
        first_start: Literal["state", "replay"],
        on_revoked: Callable[[set[TopicPartition]], None],
        store: StateStore,
        restorer: Restorer,
    ) -> None:
        self.hub = hub
        self.policy = policy
        self.store = store
        self.restorer = restorer
        self.first_start = first_start
        self.on_revoked = on_revoked
        self.states: dict[TopicPartition, PartitionState] = {}
        self.log_start: dict[TopicPartition, int] = {}
        self.unpinned: set[TopicPartition] = set()  # owned, never committed by the group: commit soon
        self.to_load: set[TopicPartition] = set()
        self._joined_empty_since: float | None = None
        self._log = log.bind(hub=hub)

    # -- the group -------------------------------------------------------------------------------
    def subscribe(self, consumer: KafkaConsumer) -> None:
        """Join the group for the source topics of the policy in force (or leave it: none)."""
        topics = self.policy.policies.source_topics
        if topics:
            consumer.subscribe(topics, listener=_Rebalance(self))
        else:
            consumer.unsubscribe()
            self.revoked(set(self.states))

    def assigned(self, assigned: set[TopicPartition]) -> None:
        # The first assignment of a new member is often empty (the leader had no metadata for the topics
        # yet); readiness waits for partitions, or for an empty assignment that lasts.
        if assigned:
            self._joined_empty_since = None
        elif self._joined_empty_since is None:
            self._joined_empty_since = time.monotonic()
        self.to_load |= assigned

    def revoked(self, revoked: set[TopicPartition]) -> None:
        self.on_revoked(revoked)  # first: the backfill task lets go before the stores close
        for tp in revoked:
            self.states.pop(tp, None)
        self.store.close(revoked)
        self.to_load -= revoked
        self.unpinned -= revoked

    def settled(self, owned: frozenset[TopicPartition]) -> bool:
        """Joined with partitions (or with nothing to own for a while: more workers than partitions)."""
        if not self.policy.policies.by_topic or owned:
            return True
        since = self._joined_empty_since
        return since is not None and time.monotonic() - since > EMPTY_SETTLE_S

    # -- positions -------------------------------------------------------------------------------
    def position(self, consumer: KafkaConsumer, tp: TopicPartition) -> int:
        for _ in range(5):
            try:
                return int(consumer.position(tp))
            except (NoOffsetForPartitionError, OffsetOutOfRangeError) as exc:
                self.reposition(consumer, exc)
        raise FatalError(f"hub {self.hub}: no position for partition {tp.topic}-{tp.partition}")

    def reposition(self, consumer: KafkaConsumer, exc: KafkaError) -> None:
        """Where to read partitions that have no valid committed offset."""
        found = exc.args[0] if exc.args else None
        if isinstance(exc, NoOffsetForPartitionError):
            tps = [tp for tp in (found or ()) if isinstance(tp, TopicPartition)]
            if tps:
                replay = self.first_start == "replay"
                (consumer.seek_to_beginning if replay else consumer.seek_to_end)(*tps)
                start = "beginning" if replay else "end"
                self._log.info("partitions_first_read", start=start, partitions=_names(tps))
            return
        tps = [tp for tp in (found or {}) if isinstance(tp, TopicPartition)]
        if tps:
            # The committed offset fell out of the log (records deleted, topic re-created): read it all
            # again rather than skip what is there. Subscribers may get events twice; none is lost.
            consumer.seek_to_beginning(*tps)
            self._log.warning("offset_out_of_range", partitions=_names(tps))

    # -- state -----------------------------------------------------------------------------------
    def load(self, consumer: KafkaConsumer) -> bool:
        """Restore the state of newly owned partitions (stable reads: read_committed consumers).

        Returns:
            False when the broker could not answer (the caller waits and tries again).
        """
        tps = sorted(self.to_load & set(consumer.assignment()))
        loaded: dict[TopicPartition, PartitionState] = {}
        unpinned: set[TopicPartition] = set()
        try:
            self.restorer.restore(self.store, tps)
            for tp in tps:
                committed = consumer.committed(tp, metadata=True)
                stored = self.store.handover(tp)
                if committed is None:
                    loaded[tp] = stored
                    unpinned.add(tp)
                elif stored:
                    loaded[tp] = stored
                elif written_by_hub(committed.metadata):
                    # Empty, or committed by a hub that kept the state in the metadata: take it over.
                    loaded[tp], _ = decode_metadata(committed.metadata)
                else:
                    # Committed by a hub from before backfills: its subscriptions were live there.
                    plans = self.policy.deliverable(tp.topic, now_ms())
                    loaded[tp] = {p.subscription: Live(committed.offset) for p in plans}
            starts = consumer.beginning_offsets(tps) if tps else {}
        except KafkaError as exc:
            self._log.warning("partition_state_unavailable", error=f"{type(exc).__name__}: {exc}")
            return False
        self.states.update(loaded)
        self.unpinned |= unpinned
        self.log_start.update(starts)
        self.to_load.clear()
        return True

    def commit(self, states: dict[TopicPartition, PartitionState]) -> None:
        """After a commit: the new state becomes the worker's (partitions lost meanwhile stay lost)."""
        for tp, state in states.items():
            if tp in self.states:
                self.states[tp] = state
            self.unpinned.discard(tp)

    def backfilling(self) -> bool:
        """Whether any subscription is being backfilled on a partition owned here."""
        return any(isinstance(h, Backfilling) for st in self.states.values() for h in st.values())

    def reconciled(
        self, tp: TopicPartition, state: PartitionState, now: int, offset: Callable[[], int]
    ) -> PartitionState:
        """The state ``tp`` should have under the policy in force at ``now``.

        A subscription that is deliverable and has no state starts at ``offset()`` (backfill first when
        there is anything before it); an unfinished backfill of a subscription no longer deliverable is
        abandoned (it starts afresh when deliverable again). A live subscription keeps its state until a
        record is actually refused to it, so a refusal window with no traffic costs no new backfill.
        """
        policies = self.policy.policies
        plans = policies.by_topic.get(tp.topic, [])
        ids = {p.subscription for p in plans}
        new = {sid: h for sid, h in state.items() if sid in ids}
        for plan in plans:
            sid = plan.subscription
            h = new.get(sid)
            refusal = plan.refusal_at(now)
            if h is None and refusal is None:
                start = self.log_start.get(tp, 0)
                new[sid] = establish(offset(), start, backfill=policies.backfill_wanted(sid))
            elif isinstance(h, Backfilling) and refusal is not None:
                del new[sid]
                self._log.info(
                    "backfill_abandoned",
                    subscription=sid,
                    topic=tp.topic,
                    partition=tp.partition,
                    reason=refusal,
                )
        return new
