"""The lag probe: both lags of many subscriptions from a few Kafka requests per measurement.

What a measurement costs, and why it stays small on a large idle catalog, is in ``hub.monitor.lag``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import InvalidMetadataError, KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError
from kafka.protocol.consumer import IsolationLevel

from hub.core import names
from hub.core.kafka import make_admin, make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.errors import LagUnavailable
from hub.monitor.lag.commit_time import CommitTimes, Decoder
from hub.monitor.lag.group_lag import GroupLag, partition_lag
from hub.monitor.lag.targets import HUB, SINK_GROUP_PREFIX, SUBSCRIBER, Target, choose_sink_group, sink_group
from hub.monitor.lag.waiting import WaitingScanner
from hub.monitor.metadata import TopicPartitions

_ACTIVE_GROUP_STATES: Final = frozenset(
    {"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"}
)


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    """How much one measurement may cost (the defaults suit a catalog of thousands of subscriptions).

    Attributes:
        read_timeout: seconds to spend reading waiting records per measurement.
        count_limit: waiting records counted one by one per partition; beyond, offsets estimate the rest.
        metadata_max_age: seconds before a topic's partitions (or its absence) are looked up again.
        metadata_batch: most topics looked up again per measurement (new topics are looked up at once).
    """

    read_timeout: float = 3.0
    count_limit: int = 1_000
    metadata_max_age: float = 60.0
    metadata_batch: int = 250


_Key = tuple[str, str, str]  # (kind, group, topic): what one GroupLag measures


def _is_sink(group: str) -> bool:
    return group.startswith(SINK_GROUP_PREFIX)


LINK_POSITION_PREFIX: Final = "link-position:"
"""Names a hub link's position where a consumer group would stand (it has none: see ``LinkPositions``)."""

POSITION_KEPT_ELSEWHERE: Final = (
    "position kept at the city cluster (the subscriber is a hub link: it reads without a consumer group "
    "here and stores its position where it carries to); xhub lag CITY_CONFIG --upstream THIS_CONFIG "
    "shows how far it read"
)


NOT_READ: Final = (
    "no READ on {topic} for this identity: records from offsets (commit markers count: an upper bound), "
    "age not permitted; the hub's admin port has it (/api/status, /metrics xhub_subscription_lag_seconds)"
)
"""Why a lag was measured from offsets alone (the operator may DESCRIBE, never READ, delivery and source
topics: they carry personal data)."""


@dataclass(frozen=True, slots=True)
class _Stored:
    """A position that is not a group's committed offset (a hub link's), shaped like one."""

    offset: int


LinkPositionsOf = Callable[[Target], Mapping[int, int] | None]
"""Where the hub link of a target stands on its delivery topic: next offset per partition (None: it never
carried from it). Read in the cluster the link carries to (``hub.monitor.lag.link_position``)."""


@dataclass(frozen=True, slots=True)
class _Layout:
    """The groups and topics a sequence of targets asks for, worked out once per sequence."""

    targets: Sequence[Target]
    count: int
    rows: tuple[tuple[str, tuple[str, str], tuple[str, str], _Key], ...]  # sub, its two out keys, hub key
    hub_keys: tuple[_Key, ...]  # distinct
    hub_groups: frozenset[str]
    sink_keys: Mapping[str, _Key]  # subscription -> its subscriber key with the default group
    links: Mapping[str, Target]  # subscription -> its target, for subscribers that are hub links
    subs_of_topic: Mapping[str, tuple[str, ...]]  # delivery topic -> subscriptions
    topic_names: frozenset[str]

    @classmethod
    def of(cls, targets: Sequence[Target]) -> _Layout:
        hub_keys: dict[_Key, _Key] = {}
        sink_keys: dict[str, _Key] = {}
        links: dict[str, Target] = {}
        subs_of_topic: dict[str, list[str]] = defaultdict(list)
        rows = []
        for t in targets:
            hub_key = hub_keys.setdefault(
                (HUB, names.hub_group(t.hub), t.source_topic), (HUB, names.hub_group(t.hub), t.source_topic)
            )
            if t.hub_link:
                links[t.subscription] = t
                sink_keys[t.subscription] = (
                    SUBSCRIBER,
                    LINK_POSITION_PREFIX + t.subscriber,
                    t.delivery_topic,
                )
            else:
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
            links,
            {topic: tuple(subs) for topic, subs in subs_of_topic.items()},
            frozenset(t.source_topic for t in targets)
            | frozenset(subs_of_topic)
            | frozenset(t.delivery_topic for t in links.values()),
        )


class LagProbe:
    """Measures the lag of subscriptions. Not thread-safe: one thread owns a probe.

    Args:
        kafka: how to reach the cluster.
        decoder: reads the envelopes (source commit time); None uses the records' Kafka timestamps.
        client_id: Kafka client id suffix.
        limits: what a measurement may cost.
        clock: epoch seconds (tests pass their own).
        link_positions: where the hub links among the subscribers stand (read in the clusters they carry
            to); None: their subscriber lag is not measured here and says where the position is kept.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        decoder: Decoder | None,
        *,
        client_id: str = "monitor",
        limits: ProbeLimits = ProbeLimits(),
        clock: Callable[[], float] = time.time,
        link_positions: LinkPositionsOf | None = None,
    ) -> None:
        self.kafka = kafka
        self.decoder = decoder
        self.limits = limits
        self.clock = clock
        self.link_positions = link_positions
        self._admin = make_admin(kafka, f"{client_id}-admin")
        reader = make_consumer(
            kafka,
            f"{client_id}-reader",
            group_id=None,
            max_partition_fetch_bytes=64 * 1024,
            fetch_max_bytes=1024 * 1024,
            max_poll_records=100,
        )
        self._waiting = WaitingScanner(
            reader, CommitTimes(decoder), read_timeout=limits.read_timeout, count_limit=limits.count_limit
        )
        # End and start offsets of every watched partition, through a consumer's cached metadata: the
        # admin client would first ask for the metadata of every topic of the request, on every refresh.
        # Never assigned (an assignment narrows the topics a consumer keeps metadata for); which topics
        # exist is known from self.topics, so its own metadata refresh need not be frequent.
        self._offsets = make_consumer(
            kafka, f"{client_id}-offsets", group_id=None, metadata_max_age_ms=300_000
        )
        self._timeout_ms = 15_000
        self.topics = TopicPartitions(
            self._describe, max_age=limits.metadata_max_age, batch=limits.metadata_batch
        )
        self._layout: _Layout | None = None
        self._missing: dict[_Key, GroupLag] = {}

    def close(self) -> None:
        """Close the Kafka clients."""
        self._offsets.close()
        self._waiting.close()
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
        link_keys = {sub_keys[sub] for sub in layout.links}
        if layout.links:
            if self.link_positions is None:
                for key in link_keys:
                    lags[key] = GroupLag(
                        SUBSCRIBER, key[1], key[2], now_ms, elsewhere=POSITION_KEPT_ELSEWHERE
                    )
            else:
                committed = {**committed, **self._link_offsets(layout.links, sub_keys)}
        for key in (*layout.hub_keys, *sub_keys.values()):
            if key in present or key in missing or key in lags:
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
        for key in link_keys:
            if lags[key].elsewhere is None and lags[key].error is None:
                lags[key] = replace(lags[key], members=None)  # a link has no group and no members
        out: dict[tuple[str, str], GroupLag] = {}
        for sub, hub_out, sub_out, hub_key in layout.rows:
            out[hub_out] = lags[hub_key]
            out[sub_out] = lags[sub_keys[sub]]
        return out

    def _link_offsets(
        self, links: Mapping[str, Target], sub_keys: Mapping[str, _Key]
    ) -> dict[str, dict[TopicPartition, Any]]:
        """The hub links' positions as if they were their groups' committed offsets."""
        assert self.link_positions is not None
        out: dict[str, dict[TopicPartition, Any]] = {}
        for sub, target in links.items():
            stored = self.link_positions(target) or {}
            out[sub_keys[sub][1]] = {
                TopicPartition(target.delivery_topic, p): _Stored(o) for p, o in stored.items()
            }
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
        scans = self._waiting.scan(needs, ends)
        members = self._members(sorted({key[1] for key in present if key[1] in listed}))
        out: dict[_Key, GroupLag] = {}
        for key, numbers in present.items():
            kind, group, topic = key
            parts = []
            for p in numbers:
                tp = TopicPartition(topic, p)
                at = effective[(group, tp)]
                parts.append(
                    partition_lag(p, ends.get(tp, 0), positions[(group, tp)], at, scans.get((tp, at)))
                )
            unread = NOT_READ.format(topic=topic) if topic in self._waiting.refused else None
            out[key] = GroupLag(
                kind, group, topic, now_ms, tuple(parts), members.get(group, 0), unread=unread
            )
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
