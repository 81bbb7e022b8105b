"""Lag of each subscription in records and in seconds, from committed group offsets and the events themselves.

Two kinds of lag per subscription:

    hub         source topic end offsets minus the hub's committed offsets (group ``xhub-hub-<hub>``);
    subscriber  delivery topic end offsets minus the subscriber sidecar's committed offsets (its group
                is the ``xhub-sink-*`` group that commits on the delivery topic: see
                :func:`choose_sink_group`; ``xhub-sink-<subscription>`` until one has committed).

End offsets are read_committed (the last stable offset): an open transaction is not lag yet.

Lag in seconds is not interpolated from offset rates (which gives NaN or false alarms on idle topics): the
first record not yet consumed in each partition is read, and its age is now minus the source commit time
the event carries (``source.commit_ts_ms``; delivery envelopes carry the same field). When nothing waits the
lag is 0 records and 0 seconds.

The records lag counts the committed data records waiting, read one by one: transactional writers leave a
commit marker per transaction in the log (right after the consumer's committed offset, once it caught up),
and aborted records stay in the log too; neither is lag, so end minus committed offsets would never show 0
on a transactional topic. Counting goes on from where the last measurement stopped while the committed
offset stays put, so a stopped consumer costs only the newly arrived records; past ``count_limit`` records
per partition the rest is estimated from offsets (markers included: an upper bound).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError
from kafka.protocol.consumer import IsolationLevel

from hub import topics
from hub.errors import HubError
from hub.kafka_client import KafkaSettings, make_admin, make_consumer
from hub.log import get_logger
from hub.monitor.errors import LagUnavailable
from hub.monitor.status import PartitionSample, Sample

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.policy.plan import DeliveryPlan

log = get_logger("monitor.lag")

HUB: Final = "hub"
SUBSCRIBER: Final = "subscriber"
KINDS: Final = (HUB, SUBSCRIBER)


def hub_group(hub: str) -> str:
    """Consumer group of the workers of ``hub`` on the source topics (their committed offsets)."""
    return f"xhub-hub-{hub}"


SINK_GROUP_PREFIX: Final = "xhub-sink-"
_ACTIVE_GROUP_STATES: Final = frozenset(
    {"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"}
)


def sink_group(subscription: str) -> str:
    """The default consumer group of the sidecar serving ``subscription`` (before one has committed)."""
    return f"{SINK_GROUP_PREFIX}{subscription}"


def choose_sink_group(subscription: str, candidates: Sequence[tuple[str, bool, int]]) -> str:
    """The subscriber's group among the ``xhub-sink-*`` groups that committed on its delivery topic.

    Args:
        subscription: the subscription (its default group name is the fallback).
        candidates: (group id, has members now, sum of its committed offsets on the delivery topic).

    A sidecar names its group per sink binding (``xhub-sink-<dept>-<binding>``), and one binding may read
    several subscriptions, so the group is found by its commits: a group with members first (the live
    one), then the furthest ahead (a left-over group of a renamed binding lags behind), then by name.
    """
    if not candidates:
        return sink_group(subscription)
    return min(candidates, key=lambda c: (not c[1], -c[2], c[0]))[0]


@dataclass(frozen=True, slots=True)
class Target:
    """One subscription to watch: who it serves, and the topics and groups its two lags are read from."""

    hub: str
    subscription: str
    subscriber: str
    resource: str
    owner: str
    source_topic: str
    delivery_topic: str
    refusal: str | None = None  # why nothing is delivered right now (approval pending, revoked...), if so

    def group_and_topic(self, kind: str) -> tuple[str, str]:
        if kind == HUB:
            return hub_group(self.hub), self.source_topic
        return sink_group(self.subscription), self.delivery_topic


def targets_of_config(cfg: ConfigDir, hub: str | None = None) -> list[Target]:
    """The subscriptions of ``hub`` (every hub when None) in ``cfg``, sorted by hub and id."""
    from hub.policy.plan import compile_plan

    if hub is not None:
        cfg.hub(hub)  # raises ConfigError naming hubs.yaml when unknown
    now_ms = time.time_ns() // 1_000_000
    out: list[Target] = []
    for sub in sorted(cfg.subscriptions.values(), key=lambda s: (s.hub, s.id)):
        if hub is not None and sub.hub != hub:
            continue
        resource = cfg.resources.get(sub.resource)
        if resource is None:
            continue
        refusal: str | None = None
        schema = cfg.schemas.get(sub.resource)
        if schema is not None:
            refusal = compile_plan(sub, resource, schema, secret=None).refusal_at(now_ms)
        out.append(
            Target(
                hub=sub.hub,
                subscription=sub.id,
                subscriber=sub.subscriber,
                resource=sub.resource,
                owner=resource.owner,
                source_topic=topics.source_topic(resource.owner, sub.resource),
                delivery_topic=topics.delivery_topic(sub.hub, sub.id),
                refusal=refusal,
            )
        )
    return out


def targets_of_plans(hub: str, plans: Iterable[DeliveryPlan], now_ms: int | None = None) -> list[Target]:
    """The subscriptions a running hub serves, from its live plans (they follow ``xhub apply``)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    out = [
        Target(
            hub=hub,
            subscription=plan.subscription,
            subscriber=plan.subscriber,
            resource=plan.resource,
            owner=owner_of_source_topic(plan.source_topic),
            source_topic=plan.source_topic,
            delivery_topic=plan.delivery_topic,
            refusal=plan.refusal_at(now),
        )
        for plan in plans
    ]
    return sorted(out, key=lambda t: t.subscription)


def owner_of_source_topic(topic: str) -> str:
    """The department of ``xhub.src.<dept>.<resource>`` ("" for any other name)."""
    parts = topic.split(".")
    return parts[2] if len(parts) >= 4 and parts[0] == topics.PREFIX and parts[1] == "src" else ""


class Decoder(Protocol):
    """What reads an event envelope (``hub.registry.serde.AvroSerde``)."""

    def decode(self, data: bytes, reader_schema: dict[str, Any] | None = None) -> tuple[int, Any]: ...


def millis(value: Any) -> int | None:
    """Epoch millis of an Avro timestamp-millis value (fastavro gives a datetime, or an int)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return None


def source_commit_ms(event: Any) -> int | None:
    """``source.commit_ts_ms`` of a decoded envelope, or None when it has none."""
    if not isinstance(event, Mapping):
        return None
    source = event.get("source")
    return millis(source.get("commit_ts_ms")) if isinstance(source, Mapping) else None


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition of one group.

    Attributes:
        partition: partition number.
        end: last stable offset (read_committed end).
        committed: the group's committed offset; None when it never committed there.
        position: where the group reads from: committed, else the log start offset.
        lag: records waiting (see the module docstring); 0 when nothing waits.
        waiting_since_ms: Kafka timestamp of the first waiting record (when it became available).
        oldest_commit_ms: source commit time of the first waiting record.
    """

    partition: int
    end: int
    committed: int | None
    position: int
    lag: int
    waiting_since_ms: int | None = None
    oldest_commit_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One kind of lag of one subscription at ``measured_ms``."""

    kind: str
    group: str
    topic: str
    measured_ms: int
    partitions: tuple[PartitionLag, ...] = ()
    members: int | None = None  # consumers in the group now (0: nobody reads)
    error: str | None = None

    @property
    def lag_records(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float | None:
        """Age of the oldest waiting event since its source commit; 0.0 when nothing waits.

        None only when records wait but none of them could be read (never NaN).
        """
        ages: list[float] = []
        unknown = False
        for p in self.partitions:
            if p.lag <= 0:
                continue
            since = p.oldest_commit_ms if p.oldest_commit_ms is not None else p.waiting_since_ms
            if since is None:
                unknown = True
                continue
            ages.append(max(0.0, (self.measured_ms - since) / 1000))
        if ages:
            return max(ages)
        return None if unknown else 0.0

    def sample(self) -> Sample:
        """This measurement as a status sample."""
        return Sample(
            self.measured_ms / 1000,
            {
                p.partition: PartitionSample(
                    p.position, p.lag, None if p.waiting_since_ms is None else p.waiting_since_ms / 1000
                )
                for p in self.partitions
            },
        )


@dataclass(frozen=True, slots=True)
class _Waiting:
    """The first record not yet consumed."""

    offset: int
    timestamp_ms: int | None
    commit_ms: int | None


@dataclass(slots=True)
class _Scan:
    """What has been read of one partition from one position: it only grows while the position stays."""

    first: _Waiting | None = None  # the first data record at or after the position
    counted_to: int = 0  # the next offset to read
    count: int = 0  # data records in [position, counted_to)
    capped: bool = False  # stopped counting at the budget; the rest is estimated from offsets


def _partition_lag(
    partition: int, end: int, committed: int | None, effective: int, scan: _Scan | None
) -> PartitionLag:
    """One partition's lag: the group reads from ``effective``; ``scan`` is what was read from there."""
    position = effective if committed is None else committed
    if effective >= end:
        return PartitionLag(partition, end, committed, position, 0)
    if scan is None:  # nothing read: offsets only, age unknown
        return PartitionLag(partition, end, committed, position, end - effective)
    lag = scan.count + max(0, end - scan.counted_to)
    if lag == 0 or scan.first is None:
        return PartitionLag(partition, end, committed, position, lag)
    return PartitionLag(
        partition, end, committed, position, lag, scan.first.timestamp_ms, scan.first.commit_ms
    )


class LagProbe:
    """Measures the lag of subscriptions. Not thread-safe: one thread owns a probe.

    Args:
        kafka: how to reach the cluster.
        decoder: reads the envelopes (source commit time); None uses the records' Kafka timestamps.
        client_id: Kafka client id suffix.
        read_timeout: seconds to spend reading waiting records per measurement.
        count_limit: waiting records counted one by one per partition; beyond, offsets estimate the rest.
        clock: epoch seconds (tests pass their own).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        decoder: Decoder | None,
        *,
        client_id: str = "monitor",
        read_timeout: float = 3.0,
        count_limit: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kafka = kafka
        self.decoder = decoder
        self.read_timeout = read_timeout
        self.count_limit = count_limit
        self.clock = clock
        self._admin = make_admin(kafka, f"{client_id}-admin")
        self._reader = make_consumer(
            kafka,
            f"{client_id}-reader",
            group_id=None,
            max_partition_fetch_bytes=64 * 1024,
            fetch_max_bytes=1024 * 1024,
            max_poll_records=100,
        )
        self._scans: dict[tuple[TopicPartition, int], _Scan] = {}
        self._undecodable: set[str] = set()

    def close(self) -> None:
        """Close the Kafka clients."""
        self._reader.close()
        self._admin.close()

    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        """Both lags of every target, keyed by (subscription, kind).

        Raises:
            LagUnavailable: Kafka did not answer (names the servers and the Kafka error).
        """
        try:
            return self._measure(targets)
        except KafkaError as exc:
            raise LagUnavailable(
                f"lag of {len(targets)} subscriptions: Kafka at {self.kafka.bootstrap_servers} answered "
                f"{type(exc).__name__}: {exc}",
                retry_after=2.0,
            ) from exc

    def _measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        wanted = {(t.subscription, kind): t.group_and_topic(kind) for t in targets for kind in KINDS}
        for sub, group in self._sink_groups(targets).items():
            wanted[(sub, SUBSCRIBER)] = (group, wanted[(sub, SUBSCRIBER)][1])
        topic_names = sorted({topic for _, topic in wanted.values()})
        partitions = self._partitions(topic_names)
        ends, starts = self._offsets(
            [TopicPartition(t, p) for t in topic_names for p in partitions.get(t) or ()]
        )
        group_tps: dict[str, set[TopicPartition]] = defaultdict(set)
        for group, topic in wanted.values():
            group_tps[group].update(TopicPartition(topic, p) for p in partitions.get(topic) or ())
        specs = {g: sorted(s) for g, s in group_tps.items() if s}
        committed: dict[str, dict[TopicPartition, Any]] = (
            self._admin.list_group_offsets(specs) if specs else {}
        )
        members = self._members(sorted(group_tps))
        now_ms = int(self.clock() * 1000)

        positions: dict[tuple[str, TopicPartition], tuple[int | None, int]] = {}
        needs: set[tuple[TopicPartition, int]] = set()
        for group, tp_set in group_tps.items():
            for tp in tp_set:
                meta = committed.get(group, {}).get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else None
                start = starts.get(tp, 0)
                effective = start if offset is None else max(offset, start)
                positions[(group, tp)] = (offset, effective)
                if effective < ends.get(tp, 0):
                    needs.add((tp, effective))
        scans = self._scan(needs, ends)

        out: dict[tuple[str, str], GroupLag] = {}
        for (sub, kind), (group, topic) in wanted.items():
            numbers = partitions.get(topic)
            if numbers is None:
                out[(sub, kind)] = GroupLag(
                    kind,
                    group,
                    topic,
                    now_ms,
                    members=members.get(group),
                    error=f"topic {topic} does not exist (run xhub apply)",
                )
                continue
            parts = []
            for p in numbers:
                tp = TopicPartition(topic, p)
                offset, effective = positions[(group, tp)]
                parts.append(
                    _partition_lag(p, ends.get(tp, 0), offset, effective, scans.get((tp, effective)))
                )
            out[(sub, kind)] = GroupLag(kind, group, topic, now_ms, tuple(parts), members.get(group))
        return out

    def _offsets(
        self, tps: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """(read_committed end offsets, log start offsets) of ``tps``."""
        if not tps:
            return {}, {}
        latest = self._admin.list_partition_offsets(
            dict.fromkeys(tps, OffsetSpec.LATEST), isolation_level=IsolationLevel.READ_COMMITTED
        )
        earliest = self._admin.list_partition_offsets(dict.fromkeys(tps, OffsetSpec.EARLIEST))
        return {tp: o.offset for tp, o in latest.items()}, {tp: o.offset for tp, o in earliest.items()}

    def _sink_groups(self, targets: Sequence[Target]) -> dict[str, str]:
        """Subscription -> the group of its subscriber (see :func:`choose_sink_group`)."""
        listed = {
            g["group_id"]: g.get("group_state") in _ACTIVE_GROUP_STATES
            for g in self._admin.list_groups()
            if str(g.get("group_id", "")).startswith(SINK_GROUP_PREFIX)
        }
        offsets: dict[str, dict[TopicPartition, Any]] = (
            self._admin.list_group_offsets(sorted(listed)) if listed else {}
        )
        by_topic: dict[str, list[tuple[str, bool, int]]] = defaultdict(list)
        for group, committed in offsets.items():
            sums: dict[str, int] = defaultdict(int)
            for tp, meta in committed.items():
                if meta is not None and meta.offset >= 0:
                    sums[tp.topic] += meta.offset
            for topic, total in sums.items():
                by_topic[topic].append((group, listed.get(group, False), total))
        return {
            t.subscription: choose_sink_group(t.subscription, by_topic.get(t.delivery_topic, []))
            for t in targets
        }

    def _partitions(self, topic_names: list[str]) -> dict[str, list[int] | None]:
        if not topic_names:
            return {}
        found: dict[str, list[int] | None] = dict.fromkeys(topic_names)
        for desc in self._admin.describe_topics(topic_names):
            if desc.get("error_code", 0) == 0 and desc.get("partitions"):
                found[desc["name"]] = sorted(int(p["partition_index"]) for p in desc["partitions"])
        return found

    def _members(self, groups: list[str]) -> dict[str, int]:
        if not groups:
            return {}
        described = self._admin.describe_groups(groups)
        return {g: len(d.get("members") or ()) for g, d in described.items()}

    # -- what waits in each partition -------------------------------------------------------------
    def _scan(
        self, needs: set[tuple[TopicPartition, int]], ends: Mapping[TopicPartition, int]
    ) -> dict[tuple[TopicPartition, int], _Scan]:
        """Read on from where the last measurement stopped, per (partition, position), up to the end."""
        scans: dict[tuple[TopicPartition, int], _Scan] = {}
        todo: list[tuple[TopicPartition, int]] = []
        for tp, position in sorted(needs):
            scan = self._scans.get((tp, position)) or _Scan(counted_to=position)
            scans[(tp, position)] = scan
            if scan.counted_to < ends.get(tp, 0) and not scan.capped:
                todo.append((tp, position))
        self._scans = scans  # forget the positions no group is at any more
        # One position per partition per round (two hubs reading one source topic need two rounds).
        while todo:
            round_: dict[TopicPartition, _Scan] = {}
            rest: list[tuple[TopicPartition, int]] = []
            for tp, position in todo:
                if tp in round_:
                    rest.append((tp, position))
                else:
                    round_[tp] = scans[(tp, position)]
            self._read_round(round_, ends)
            todo = rest
        return scans

    def _read_round(self, round_: dict[TopicPartition, _Scan], ends: Mapping[TopicPartition, int]) -> None:
        reader = self._reader
        reader.assign(list(round_))
        for tp, scan in round_.items():
            reader.seek(tp, scan.counted_to)
        open_ = set(round_)
        deadline = time.monotonic() + self.read_timeout
        while open_ and time.monotonic() < deadline:
            batch = reader.poll(timeout_ms=100)
            for tp, records in batch.items():
                scan = round_[tp]
                if tp not in open_:
                    continue
                for rec in records:
                    if rec.offset < scan.counted_to or rec.offset >= ends.get(tp, 0):
                        continue
                    if scan.first is None:
                        stamp = rec.timestamp if rec.timestamp is not None and rec.timestamp >= 0 else None
                        scan.first = _Waiting(rec.offset, stamp, self._commit_ms(tp.topic, rec.value))
                    scan.count += 1
                    scan.counted_to = rec.offset + 1
            for tp in list(open_):
                scan = round_[tp]
                # The position also moves past commit markers and aborted records, which are not lag.
                scan.counted_to = max(scan.counted_to, min(reader.position(tp), ends.get(tp, 0)))
                scan.capped = scan.count >= self.count_limit
                if scan.counted_to >= ends.get(tp, 0) or scan.capped:
                    open_.discard(tp)
                    reader.pause(tp)
        if open_:
            log.warning("lag_read_timeout", partitions=len(open_), seconds=self.read_timeout)
        reader.unsubscribe()  # also forgets the pauses

    def _commit_ms(self, topic: str, value: bytes | None) -> int | None:
        if self.decoder is None or not value:
            return None
        try:
            _, event = self.decoder.decode(value)
        except HubError as exc:
            if topic not in self._undecodable:
                self._undecodable.add(topic)
                log.warning("lag_event_undecodable", topic=topic, error=f"{type(exc).__name__}: {exc}")
            return None
        return source_commit_ms(event)
