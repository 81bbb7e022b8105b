"""The whole path of a subscription, from the owner's database to the subscriber's: is it drained?

A subscription is drained when nothing waits anywhere on its way: no row of its resource in the owner's
change log or outbox left to publish (the sidecar's backlog report, fresh), no backfill of it under way,
and no record waiting for the hub or for the subscriber's sidecar. The hub is drained when every
subscription is and no state-store restore runs. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.monitor.backlog import SourceBacklogView, backlog_of_resource
from hub.monitor.board import SubscriptionLag
from hub.monitor.progress import Progress, RestoreProgress


@dataclass(frozen=True, slots=True)
class PathLag:
    """One subscription's path: the source backlog of its resource and the lag from end to end.

    Attributes:
        source_rows: rows of the resource not yet published by the owner's sidecar (None: unknown).
        source_seconds: age of the oldest of them (None: unknown).
        seconds: the oldest change not yet at the subscriber, anywhere on the path (source backlog, hub
            lag, subscriber lag); None when some part is unknown and nothing known waits.
        drained: nothing waits anywhere and every part is known.
    """

    source_rows: int | None
    source_seconds: float | None
    seconds: float | None
    drained: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.source_rows,
            "oldest_seconds": None if self.source_seconds is None else round(self.source_seconds, 1),
        }


def path_lag(
    row: SubscriptionLag, sources: Sequence[SourceBacklogView], backfill: Progress | None
) -> PathLag:
    """The path of ``row``'s subscription (``sources``: every reported source of the hub's owners)."""
    t = row.target
    rows, age = backlog_of_resource(sources, t.owner, t.resource)
    parts = [age, row.hub.lag.lag_seconds, row.subscriber.lag.lag_seconds]
    known = [p for p in parts if p is not None]
    seconds = max(known) if known and (len(known) == len(parts) or max(known) > 0) else None
    waiting = (
        rows != 0
        or row.hub.lag.lag_records != 0
        or row.subscriber.lag.lag_records != 0
        or row.hub.lag.error is not None
        or row.subscriber.lag.error is not None
    )
    busy = backfill is not None and not backfill.finished
    return PathLag(rows, age, seconds, not waiting and not busy and None not in parts)


def drained_summary(
    rows: Sequence[SubscriptionLag],
    paths: Mapping[str, PathLag],
    backfills: Mapping[str, Progress],
    restore: RestoreProgress,
    sources: Sequence[SourceBacklogView],
) -> tuple[bool, list[str]]:
    """(drained, what still waits) of the whole hub: one short reason per kind of thing waiting."""
    reasons: list[str] = []
    if restore.running:
        reasons.append(
            f"state store restoring: {restore.partitions_done}/{restore.partitions_total} partitions"
        )
    running = sorted(sid for sid, p in backfills.items() if not p.finished)
    if running:
        reasons.append(f"{len(running)} backfill(s) running: {', '.join(running[:3])}")
    unknown = [f"{v.department}/{v.source}".rstrip("/") for v in sources if v.rows is None]
    if unknown:
        reasons.append(f"source backlog unknown: {', '.join(unknown[:3])}")
    publishing = [f"{v.department}/{v.source}" for v in sources if v.rows]
    if publishing:
        reasons.append(f"sources not yet published: {', '.join(publishing[:3])}")
    snapshots = [f"{v.department}/{v.source}" for v in sources if v.backlog and v.backlog.snapshot]
    if snapshots:
        reasons.append(f"snapshot being published: {', '.join(snapshots[:3])}")
    waiting = [r.target.subscription for r in rows if r.hub.lag.lag_records or r.subscriber.lag.lag_records]
    if waiting:
        reasons.append(f"{len(waiting)} subscription(s) with records waiting: {', '.join(waiting[:3])}")
    errors = [r.target.subscription for r in rows if r.hub.lag.error or r.subscriber.lag.error]
    if errors:
        reasons.append(f"lag not measured: {', '.join(errors[:3])}")
    links = [r.target.subscription for r in rows if r.subscriber.lag.elsewhere]
    if links:
        reasons.append(f"hub link positions kept at the city cluster: {', '.join(links[:3])}")
    return not reasons and all(p.drained for p in paths.values()), reasons


@dataclass(frozen=True, slots=True)
class PathState:
    """What the monitor knows of the path beyond the lags, at one refresh (see :func:`drained_summary`)."""

    backfills: Mapping[str, Progress] = field(default_factory=dict)
    restore: RestoreProgress = field(default_factory=RestoreProgress)
    sources: tuple[SourceBacklogView, ...] = ()
    paths: Mapping[str, PathLag] = field(default_factory=dict)
    drained: bool = False
    reasons: tuple[str, ...] = ()
    sources_error: str | None = None  # the backlog reports could not be read

    def head_json(self) -> dict[str, Any]:
        """The hub-wide part: restore, sources, and whether the whole path is drained."""
        return {
            "drained": self.drained,
            "not_drained": list(self.reasons),
            "restore": self.restore.to_json(),
            "sources": [v.to_json() for v in self.sources],
            "sources_error": self.sources_error,
        }


def path_state(
    rows: Sequence[SubscriptionLag],
    backfills: Mapping[str, Progress],
    restore: RestoreProgress,
    sources: Sequence[SourceBacklogView],
    sources_error: str | None = None,
) -> PathState:
    """The :class:`PathState` of one refresh."""
    paths = {r.target.subscription: path_lag(r, sources, backfills.get(r.target.subscription)) for r in rows}
    drained, reasons = drained_summary(rows, paths, backfills, restore, sources)
    if sources_error:
        drained = False
        reasons.append(f"source backlog not read: {sources_error}")
    return PathState(dict(backfills), restore, tuple(sources), paths, drained, tuple(reasons), sources_error)
