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

Reading needs READ on the topic. An identity without it (the operator: delivery and source topics carry
personal data) gets the lag of that topic from offsets alone, commit markers included, and no age;
``GroupLag.unread`` says why, and ``xhub lag`` shows the hub's own records, age and status from its admin
port instead. Without them, a lone offset after a partition's position is its last commit marker and is not
judged as waiting (``GroupLag.markers_only``).

The cost of a measurement does not grow with the idle part of the catalog: subscriptions on one source topic
share one hub lag (measured once per group and topic), every Kafka request covers all topics and groups at
once, topic metadata is remembered (``hub.monitor.metadata``), a missing topic (a subscription not applied
yet) is reported without being probed, only groups that exist are described, and only partitions where
something waits are read.

The parts: ``targets`` (what is measured), ``commit_time`` (lag in seconds), ``group_lag`` (lag in records),
``waiting`` (reading what waits), ``probe`` (the Kafka requests of one measurement) and ``link_position``
(a hub link's position, which it keeps in the cluster it carries to instead of a consumer group here).
"""

from __future__ import annotations

from hub.monitor.lag.commit_time import Decoder, millis, source_commit_ms
from hub.monitor.lag.group_lag import GroupLag, PartitionLag
from hub.monitor.lag.probe import LagProbe, ProbeLimits
from hub.monitor.lag.targets import (
    HUB,
    KINDS,
    SINK_GROUP_PREFIX,
    SUBSCRIBER,
    Target,
    choose_sink_group,
    owner_of_source_topic,
    refusals_change_at,
    sink_group,
    targets_of_config,
    targets_of_plans,
)

__all__ = [
    "HUB",
    "KINDS",
    "SINK_GROUP_PREFIX",
    "SUBSCRIBER",
    "Decoder",
    "GroupLag",
    "LagProbe",
    "PartitionLag",
    "ProbeLimits",
    "Target",
    "choose_sink_group",
    "millis",
    "owner_of_source_topic",
    "refusals_change_at",
    "sink_group",
    "source_commit_ms",
    "targets_of_config",
    "targets_of_plans",
]
