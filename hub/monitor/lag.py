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
per partition the rest is estimated from offsets (markers included: an upper bound), and a backlog already
longer than that when first seen is estimated at once (only its first record is read, for its age).

The cost of a measurement does not grow with the idle part of the catalog: subscriptions on one source topic
share one hub lag (measured once per group and topic), every Kafka request covers all topics and groups at
once, topic metadata is remembered (``hub.monitor.metadata``), a missing topic (a subscription not applied
yet) is reported without being probed, only groups that exist are described, and only partitions where
something waits are read.
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
from kafka.errors import InvalidMetadataError, KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError
from kafka.protocol.consumer import IsolationLevel

from hub.core import names
from hub.core.errors import HubError
from hub.core.kafka import make_admin, make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.monitor.errors import LagUnavailable
from hub.monitor.metadata import TopicPartitions
from hub.monitor.status import PartitionSample, Sample

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.policy.plan import DeliveryPlan

log = get_logger("monitor.lag")

HUB: Final = "hub"
SUBSCRIBER: Final = "subscriber"
KINDS: Final = (HUB, SUBSCRIBER)


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
    refusal: str | None = None  # why nothing is delivered right now (no grant, revoked...), if so

    def group_and_topic(self, kind: str) -> tuple[str, str]:
        if kind == HUB:
            return names.hub_group(self.hub), self.source_topic
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
            plan = compile_plan(sub, resource, schema, secret=None, grant=cfg.grant_of(sub.id))
            refusal = plan.refusal_at(now_ms)
        out.append(
            Target(
                hub=sub.hub,
                subscription=sub.id,
                subscriber=sub.subscriber,
                resource=sub.resource,
                owner=resource.owner,
                source_topic=names.source_topic(resource.owner, sub.resource),
                delivery_topic=names.delivery_topic(sub.hub, sub.id),
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


def refusals_change_at(plans: Iterable[DeliveryPlan], now_ms: int) -> int | None:
    """The next instant after ``now_ms`` a plan's refusal changes (it becomes valid or expires), if any.

    Until then :func:`targets_of_plans` gives the same targets for the same plans.
    """
    later = [
        ms
        for plan in plans
        if not plan.refusal
        for ms in (plan.valid_from_ms, plan.valid_until_ms)
        if ms is not None and ms > now_ms
    ]
    return min(later, default=None)


def owner_of_source_topic(topic: str) -> str:
    """The department of ``xhub.src.<dept>.<resource>`` ("" for any other name)."""
    parts = topic.split(".")
    return parts[2] if len(parts) >= 4 and parts[0] == names.PREFIX and parts[1] == "src" else ""


class Decoder(Protocol):
    """What reads an event envelope (``hub.core.registry.serde.AvroSerde``)."""

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
    limit: int = 1  # records counted one by one before the rest is estimated


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


_Key = tuple[str, str, str]  # (kind, group, topic): what one GroupLag measures


def _is_sink(group: str) -> bool:
    return group.startswith(SINK_GROUP_PREFIX)


@dataclass(frozen=True, slots=True)
class _Layout:
    """The groups and topics a sequence of targets asks for, worked out once per sequence."""

    targets: Sequence[Target]
    count: int
    rows: tuple[tuple[str, tuple[str, str], tuple[str, str], _Key], ...]  # sub, its two out keys, hub key
    hub_keys: tuple[_Key, ...]  # distinct
    hub_groups: frozenset[str]
    sink_keys: Mapping[str, _Key]  # subscription -> its subscriber key with the default group
    subs_of_topic: Mapping[str, tuple[str, ...]]  # delivery topic -> subscriptions
    topic_names: frozenset[str]

    @classmethod
    def of(cls, targets: Sequence[Target]) -> _Layout:
        hub_keys: dict[_Key, _Key] = {}
        sink_keys: dict[str, _Key] = {}
        subs_of_topic: dict[str, list[str]] = defaultdict(list)
        rows = []
        for t in targets:
            hub_key = hub_keys.setdefault(
                (HUB, names.hub_group(t.hub), t.source_topic), (HUB, names.hub_group(t.hub), t.source_topic)
            )
            sink_keys[t.subscription] = (SUBSCRIBER, sink_group(t.subscription), t.delivery_topic)
            subs_of_topic[t.delivery_topic].append(t.subscription)
            rows.append((t.subscription, (t.subscription, HUB), (t.subscription, SUBSCRIBER), hub_key))
        return cls(
            targets,
            len(targets),
            tuple(rows),
            tuple(hub_keys),
            frozenset(key[1] for key in hub_keys),
            sink_keys,
            {topic: tuple(subs) for topic, subs in subs_of_topic.items()},
            frozenset(t.source_topic for t in targets) | frozenset(subs_of_topic),
        )


class LagProbe:
    """Measures the lag of subscriptions. Not thread-safe: one thread owns a probe.

    Args:
        kafka: how to reach the cluster.
        decoder: reads the envelopes (source commit time); None uses the records' Kafka timestamps.
        client_id: Kafka client id suffix.
        read_timeout: seconds to spend reading waiting records per measurement.
        count_limit: waiting records counted one by one per partition; beyond, offsets estimate the rest.
        metadata_max_age: seconds before a topic's partitions (or its absence) are looked up again.
        metadata_batch: most topics looked up again per measurement (new topics are looked up at once).
        clock: epoch seconds (tests pass their own).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        decoder: Decoder | None,
        *,
        client_id: str = "monitor",
        read_timeout: float = 3.0,
        count_limit: int = 1_000,
        metadata_max_age: float = 60.0,
        metadata_batch: int = 250,
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
        # End and start offsets of every watched partition, through a consumer's cached metadata: the
        # admin client would first ask for the metadata of every topic of the request, on every refresh.
        # Never assigned (an assignment narrows the topics a consumer keeps metadata for); which topics
        # exist is known from self.topics, so its own metadata refresh need not be frequent.
        self._offsets = make_consumer(
            kafka, f"{client_id}-offsets", group_id=None, metadata_max_age_ms=300_000
        )
        self._timeout_ms = 15_000
        self.topics = TopicPartitions(self._describe, max_age=metadata_max_age, batch=metadata_batch)
        self._layout: _Layout | None = None
        self._missing: dict[_Key, GroupLag] = {}
        self._scans: dict[tuple[TopicPartition, int], _Scan] = {}
        self._undecodable: set[str] = set()

    def close(self) -> None:
        """Close the Kafka clients."""
        self._offsets.close()
        self._reader.close()
        self._admin.close()

    def recheck_missing(self) -> None:
        """Look up the topics found missing again at the next measurement (call after ``xhub apply``)."""
        self.topics.forget_missing()

    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        """Both lags of every target, keyed by (subscription, kind).

        Targets sharing a group and topic (every subscription of one hub on one resource, for the hub lag)
        share one :class:`GroupLag` object.

        Raises:
            LagUnavailable: Kafka did not answer (names the servers and the Kafka error).
        """
        try:
            return self._measure(targets)
        except KafkaError as exc:
            if isinstance(exc, (InvalidMetadataError, KafkaTimeoutError)):
                # a topic deleted or re-created since it was looked up: look everything up again
                self.topics.forget()
            raise LagUnavailable(
                f"lag of {len(targets)} subscriptions: Kafka at {self.kafka.bootstrap_servers} answered "
                f"{type(exc).__name__}: {exc}",
                retry_after=2.0,
            ) from exc

    def _measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        layout = self._layout_of(targets)
        listed = {
            str(g["group_id"]): g.get("group_state") in _ACTIVE_GROUP_STATES
            for g in self._admin.list_groups()
            if "group_id" in g
        }
        # One offset fetch for every group that matters: the hubs' groups, and every sink group (which
        # one reads a delivery topic is found from their commits, see choose_sink_group).
        fetch = sorted({g for g in layout.hub_groups if g in listed} | {g for g in listed if _is_sink(g)})
        committed: dict[str, dict[TopicPartition, Any]] = (
            self._admin.list_group_offsets(dict.fromkeys(fetch)) if fetch else {}
        )
        chosen = self._chosen_sink_groups(layout, listed, committed)
        sub_keys = dict(layout.sink_keys)
        for sub, group in chosen.items():
            default = sub_keys[sub]
            sub_keys[sub] = (SUBSCRIBER, group, default[2])
        partitions = self.topics.get(layout.topic_names)
        now_ms = int(self.clock() * 1000)

        lags: dict[_Key, GroupLag] = {}
        present: dict[_Key, tuple[int, ...]] = {}
        missing: dict[_Key, GroupLag] = {}
        for key in (*layout.hub_keys, *sub_keys.values()):
            if key in present or key in missing:
                continue
            numbers = partitions.get(key[2])
            if numbers:
                present[key] = numbers
                continue
            lag = self._missing.get(key)
            if lag is None:
                kind, group, topic = key
                what = "no delivery topic yet: " if kind == SUBSCRIBER else ""
                lag = GroupLag(
                    kind, group, topic, now_ms, error=f"{what}topic {topic} does not exist (run xhub apply)"
                )
            missing[key] = lags[key] = lag
        self._missing = missing  # reused while the topic stays missing: no new objects per refresh

        lags.update(self._present_lags(present, listed, committed, now_ms))
        out: dict[tuple[str, str], GroupLag] = {}
        for sub, hub_out, sub_out, hub_key in layout.rows:
            out[hub_out] = lags[hub_key]
            out[sub_out] = lags[sub_keys[sub]]
        return out

    def _present_lags(
        self,
        present: Mapping[_Key, tuple[int, ...]],
        listed: Mapping[str, bool],
        committed: Mapping[str, Mapping[TopicPartition, Any]],
        now_ms: int,
    ) -> dict[_Key, GroupLag]:
        """The lags of the (kind, group, topic) keys whose topic exists."""
        if not present:
            return {}
        tps = sorted({TopicPartition(key[2], p) for key, numbers in present.items() for p in numbers})
        ends = self._list_offsets(tps, OffsetSpec.LATEST)
        positions: dict[tuple[str, TopicPartition], int | None] = {}
        unsure: set[TopicPartition] = set()  # the log start decides where the group reads
        for (_, group, topic), numbers in present.items():
            group_offsets = committed.get(group, {})
            for p in numbers:
                tp = TopicPartition(topic, p)
                meta = group_offsets.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else None
                positions[(group, tp)] = offset
                if (offset is None or offset < ends.get(tp, 0)) and ends.get(tp, 0) > 0:
                    unsure.add(tp)
        starts = self._list_offsets(sorted(unsure), OffsetSpec.EARLIEST) if unsure else {}
        effective: dict[tuple[str, TopicPartition], int] = {}
        needs: set[tuple[TopicPartition, int]] = set()
        for (group, tp), offset in positions.items():
            start = starts.get(tp, 0)
            at = start if offset is None else max(offset, start)
            effective[(group, tp)] = at
            if at < ends.get(tp, 0):
                needs.add((tp, at))
        scans = self._scan(needs, ends)
        members = self._members(sorted({key[1] for key in present if key[1] in listed}))
        out: dict[_Key, GroupLag] = {}
        for key, numbers in present.items():
            kind, group, topic = key
            parts = []
            for p in numbers:
                tp = TopicPartition(topic, p)
                at = effective[(group, tp)]
                parts.append(
                    _partition_lag(p, ends.get(tp, 0), positions[(group, tp)], at, scans.get((tp, at)))
                )
            out[key] = GroupLag(kind, group, topic, now_ms, tuple(parts), members.get(group, 0))
        return out

    def _list_offsets(self, tps: list[TopicPartition], spec: OffsetSpec) -> dict[TopicPartition, int]:
        """Read_committed end (LATEST) or log start (EARLIEST) offsets of ``tps``."""
        try:
            if spec is OffsetSpec.LATEST:
                return dict(self._offsets.end_offsets(tps, self._timeout_ms))
            return dict(self._offsets.beginning_offsets(tps, self._timeout_ms))
        except KeyError:
            # kafka-python leaves out the partitions of a topic its metadata does not have yet (it asks for
            # it meanwhile): the admin client answers this once, with a metadata request of its own.
            answer = self._admin.list_partition_offsets(
                dict.fromkeys(tps, spec), isolation_level=IsolationLevel.READ_COMMITTED
            )
            return {tp: o.offset for tp, o in answer.items()}

    def _layout_of(self, targets: Sequence[Target]) -> _Layout:
        """What the targets ask for, kept while the caller passes the same sequence (the admin server's
        targets change only with the plans)."""
        layout = self._layout
        if layout is None or layout.targets is not targets or layout.count != len(targets):
            layout = self._layout = _Layout.of(targets)
        return layout

    def _chosen_sink_groups(
        self,
        layout: _Layout,
        listed: Mapping[str, bool],
        committed: Mapping[str, Mapping[TopicPartition, Any]],
    ) -> dict[str, str]:
        """Subscription -> the group of its subscriber, for the subscriptions whose delivery topic some
        sink group committed on (the others keep the default group, see :func:`choose_sink_group`)."""
        by_topic: dict[str, list[tuple[str, bool, int]]] = defaultdict(list)
        for group, offsets in committed.items():
            if not _is_sink(group):
                continue
            sums: dict[str, int] = defaultdict(int)
            for tp, meta in offsets.items():
                if meta is not None and meta.offset >= 0 and tp.topic in layout.subs_of_topic:
                    sums[tp.topic] += meta.offset
            for topic, total in sums.items():
                by_topic[topic].append((group, listed.get(group, False), total))
        return {
            sub: choose_sink_group(sub, candidates)
            for topic, candidates in by_topic.items()
            for sub in layout.subs_of_topic[topic]
        }

    def _describe(self, names: Sequence[str]) -> dict[str, tuple[int, ...] | None]:
        """Partitions of ``names`` from one metadata request; None for a topic that does not exist."""
        found: dict[str, tuple[int, ...] | None] = {}
        for desc in self._admin.describe_topics(list(names)):
            name, code = desc.get("name"), desc.get("error_code", 0)
            if not isinstance(name, str):
                continue
            if code == 0 and desc.get("partitions"):
                found[name] = tuple(sorted(int(p["partition_index"]) for p in desc["partitions"]))
            elif code == UnknownTopicOrPartitionError.errno:
                found[name] = None
            # any other error (a leader moving, a topic being created) is not settled: asked again
        return found

    def _members(self, groups: list[str]) -> dict[str, int]:
        """Members of the existing ``groups`` (a group Kafka does not list has none)."""
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
            scan = self._scans.get((tp, position))
            if scan is None:
                # A backlog longer than count_limit is estimated from offsets at once: only its first
                # record is read (for the age). A consumer working through it moves on every refresh, and
                # counting it again each time would read the whole backlog alongside the consumer.
                gap = ends.get(tp, 0) - position
                scan = _Scan(counted_to=position, limit=self.count_limit if gap <= self.count_limit else 1)
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
                    if scan.count >= scan.limit:
                        break  # the rest is estimated from offsets
                    if scan.first is None:
                        stamp = rec.timestamp if rec.timestamp is not None and rec.timestamp >= 0 else None
                        scan.first = _Waiting(rec.offset, stamp, self._commit_ms(tp.topic, rec.value))
                    scan.count += 1
                    scan.counted_to = rec.offset + 1
            for tp in list(open_):
                scan = round_[tp]
                scan.capped = scan.count >= scan.limit
                if not scan.capped:
                    # The position also moves past commit markers and aborted records, which are not lag.
                    scan.counted_to = max(scan.counted_to, min(reader.position(tp), ends.get(tp, 0)))
                if scan.counted_to >= ends.get(tp, 0) or scan.capped:
                    open_.discard(tp)
                    reader.pause(tp)
        if open_:
            log.warning(
                "lag_read_timeout",
                partitions=sorted(f"{tp.topic}-{tp.partition}@{round_[tp].counted_to}" for tp in open_),
                ends=sorted(f"{tp.topic}-{tp.partition}@{ends.get(tp, 0)}" for tp in open_),
                seconds=self.read_timeout,
            )
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
