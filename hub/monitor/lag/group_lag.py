"""Records lag: what one group has still to read of one topic, per partition, at one instant."""

from __future__ import annotations

from dataclasses import dataclass

from hub.monitor.lag.waiting import Scan
from hub.monitor.status import PartitionSample, Sample

MARKER_GAP = 1
"""Offsets after a partition's position that, read from offsets alone, are one commit marker and no record
(see :attr:`GroupLag.markers_only`)."""


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
    # Not measured here, and why: the reader keeps its position in another cluster (a hub link's is in
    # the cluster it carries to). Neither lag nor fault: this cluster cannot tell.
    elsewhere: str | None = None
    # Why the waiting records were not read (no READ on the topic: the operator's case). The lag in records
    # then comes from offsets alone, commit markers included (an upper bound), and the age is unknown; the
    # status does not count a partition's lone commit marker as waiting (see ``markers_only``).
    unread: str | None = None

    @property
    def lag_records(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float | None:
        """Age of the oldest waiting event since its source commit; 0.0 when nothing waits.

        None when records wait but none of them could be read (never NaN), or the position is kept
        elsewhere.
        """
        if self.elsewhere is not None:
            return None
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

    @property
    def markers_only(self) -> bool:
        """Offsets only (``unread``), something after the position, and nothing but commit markers there.

        Every writer of the source and delivery topics is transactional (the sidecars', the hub's and the
        hub links' publishers): a committed data record has its commit marker after it and before the
        read_committed end, so it lies at least 2 offsets before the end. A single offset between a
        partition's position and its end is therefore the marker of the last transaction (a consumer that
        stops right before it leaves it there on an idle topic), never a waiting record.
        """
        return (
            self.unread is not None
            and any(p.lag > 0 for p in self.partitions)
            and all(p.lag <= MARKER_GAP for p in self.partitions)
        )

    def sample(self) -> Sample:
        """This measurement as a status sample (a lone commit marker of an unread lag waits for nobody)."""
        return Sample(
            self.measured_ms / 1000,
            {
                p.partition: PartitionSample(
                    p.position,
                    0 if self.unread is not None and p.lag <= MARKER_GAP else p.lag,
                    None if p.waiting_since_ms is None else p.waiting_since_ms / 1000,
                )
                for p in self.partitions
            },
        )


def partition_lag(
    partition: int, end: int, committed: int | None, effective: int, scan: Scan | None
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
