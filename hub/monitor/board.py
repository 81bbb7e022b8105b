"""Lag with status: a probe plus one sliding window per subscription and kind.

``xhub lag --watch`` and the hub's admin server keep one :class:`LagBoard` alive and refresh it, so the
window spans their whole run. A single ``xhub lag`` takes a few samples a short interval apart
(:func:`sample_board`); with no longer history it judges "not moving" by the age of the waiting records
(see ``hub.monitor.status``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.monitor.lag import HUB, KINDS, GroupLag, Target
from hub.monitor.status import Rules, Status, StatusTracker, Verdict, worst


class Probe(Protocol):
    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]: ...


MARKERS_ONLY = "nothing waits but one commit marker per partition (offsets only: no READ)"
"""The reason of an unread lag whose offsets after the positions are lone commit markers."""


@dataclass(frozen=True, slots=True)
class HubFigure:
    """One lag as the hub measured it with its own READ (data records counted, commit markers not), from
    its admin port: what ``xhub lag`` shows for a lag its identity may not read (``GroupLag.unread``).

    The status was judged over the hub's own status window, not the window ``xhub lag`` was given.
    """

    records: int | None
    seconds: float | None
    status: Status
    reason: str
    source: str  # where it came from, for the operator: "admin port <url>"


@dataclass(frozen=True, slots=True)
class KindView:
    """One kind of lag of one subscription, with its status.

    ``hub_figure``: the hub's own figure for a lag measured here from offsets alone; its records, seconds
    and status are shown instead (``verdict`` is then the hub's).
    """

    lag: GroupLag
    verdict: Verdict
    hub_figure: HubFigure | None = None

    @classmethod
    def of_hub_figure(cls, lag: GroupLag, figure: HubFigure) -> KindView:
        return cls(lag, Verdict(figure.status, figure.reason), figure)

    @property
    def status(self) -> Status:
        return self.verdict.status

    @property
    def records(self) -> int | None:
        """Records waiting; None when not measured (an error, or a position kept in another cluster)."""
        if self.hub_figure is not None:
            return self.hub_figure.records
        return None if self.lag.error is not None or self.lag.elsewhere is not None else self.lag.lag_records

    @property
    def seconds(self) -> float | None:
        """Age of the oldest waiting event (see ``GroupLag.lag_seconds``), the hub's own when it has one."""
        return self.hub_figure.seconds if self.hub_figure is not None else self.lag.lag_seconds

    def to_json(self) -> dict[str, Any]:
        seconds = self.seconds
        figure = self.hub_figure
        return {
            "group": self.lag.group,
            "topic": self.lag.topic,
            "status": self.verdict.status.value,
            "reason": self.verdict.reason,
            "lag_records": self.records,
            "lag_seconds": None if seconds is None else round(seconds, 3),
            **(
                {}
                if figure is None
                else dict.fromkeys(("lag_records_from", "lag_seconds_from", "status_from"), figure.source)
            ),
            "members": self.lag.members,
            "error": self.lag.error,
            "unread": self.lag.unread,
            "partitions": [
                {
                    "partition": p.partition,
                    "end": p.end,
                    "committed": p.committed,
                    "lag": p.lag,
                    "oldest_commit_ms": p.oldest_commit_ms,
                }
                for p in self.lag.partitions
            ],
        }


@dataclass(frozen=True, slots=True)
class SubscriptionLag:
    """Both lags of one subscription; its status is the worse of the two."""

    target: Target
    hub: KindView
    subscriber: KindView
    status: Status = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # worked out once: rows are counted by status on every refresh
        object.__setattr__(self, "status", worst([self.hub.status, self.subscriber.status]))

    def kind(self, kind: str) -> KindView:
        return self.hub if kind == HUB else self.subscriber

    def to_json(self) -> dict[str, Any]:
        t = self.target
        return {
            "hub": t.hub,
            "subscription": t.subscription,
            "subscriber": t.subscriber,
            "resource": t.resource,
            "owner": t.owner,
            "refusal": t.refusal,
            "status": self.status.value,
            "hub_lag": self.hub.to_json(),
            "subscriber_lag": self.subscriber.to_json(),
        }


class LagBoard:
    """Measures lags and keeps the status windows. Not thread-safe: one thread refreshes it.

    One window per group and topic, not per subscription: every subscription of a hub on one resource has
    the same hub lag (the hub's group on the source topic), so its status is worked out once, and 10,000
    subscriptions on 20 resources cost 20 windows for their hub lags.

    What did not change keeps its object from the previous refresh: the view of a lag with nothing waiting
    and the same offsets, members and verdict (a missing topic's too), and the row of a subscription whose
    two views are kept. Whoever renders rows (the status JSON, /metrics) can therefore cache per row object,
    and an idle catalog costs nothing to render again.

    Args:
        probe: measures the lags (``hub.monitor.lag.LagProbe``).
        rules: status thresholds (the window).
    """

    def __init__(self, probe: Probe, rules: Rules | None = None) -> None:
        self.probe = probe
        self.rules = rules or Rules()
        self._trackers: dict[tuple[str, str, str], StatusTracker] = {}  # (kind, group, topic)
        self._views: dict[int, KindView] = {}  # id(lag) -> its view, of the previous refresh
        self._kept: dict[tuple[str, str, str], KindView] = {}  # the previous view of each window
        self._rows: dict[str, SubscriptionLag] = {}  # subscription -> its previous row

    def refresh(self, targets: Sequence[Target]) -> list[SubscriptionLag]:
        """Measure every target once, feed the windows, return one row per target (in target order).

        Raises:
            LagUnavailable: Kafka did not answer.
        """
        lags = self.probe.measure(targets)
        previous = self._views
        views: dict[int, KindView] = {}
        fresh: dict[tuple[str, str, str], KindView] = {}
        old_rows = self._rows
        rows: dict[str, SubscriptionLag] = {}
        out: list[SubscriptionLag] = []
        for target in targets:
            pair: list[KindView] = []
            for kind in KINDS:
                lag = lags[(target.subscription, kind)]
                view = views.get(id(lag))
                if view is None:
                    view = previous.get(id(lag))
                    if view is None or view.lag is not lag or lag.error is None:
                        view = self._view(lag, fresh)
                    views[id(lag)] = view
                pair.append(view)
            row = old_rows.get(target.subscription)
            if (
                row is None
                or row.target is not target
                or row.hub is not pair[0]
                or row.subscriber is not pair[1]
            ):
                row = SubscriptionLag(target, pair[0], pair[1])
            rows[target.subscription] = row
            out.append(row)
        self._views = views  # holds the lags, so an id is not reused while it is a key
        self._kept = fresh
        self._rows = rows
        for gone in set(self._trackers) - set(fresh):
            del self._trackers[gone]
        return out

    def _view(self, lag: GroupLag, fresh: dict[tuple[str, str, str], KindView]) -> KindView:
        if lag.error is not None:
            return KindView(lag, Verdict(Status.STOP, lag.error))
        if lag.elsewhere is not None:
            # Not this cluster's to judge: neither a fault nor a lag (the note says where to look).
            return KindView(lag, Verdict(Status.OK, lag.elsewhere))
        key = (lag.kind, lag.group, lag.topic)
        view = fresh.get(key)
        if view is not None:  # once per refresh, however many subscriptions share the group and topic
            return view if view.lag is lag else KindView(lag, view.verdict)
        tracker = self._trackers.get(key)
        if tracker is None:
            tracker = self._trackers[key] = StatusTracker(self.rules)
        verdict = tracker.add(lag.sample())
        if verdict.status is Status.OK and lag.markers_only:
            verdict = Verdict(Status.OK, MARKERS_ONLY)  # not "idle": the records column shows the markers
        kept = self._kept.get(key)
        if kept is not None and kept.verdict == verdict and _same_idle(kept.lag, lag):
            view = kept  # nothing waits and nothing moved: the previous view says it all
        else:
            view = KindView(lag, verdict)
        fresh[key] = view
        return view


def _same_idle(before: GroupLag, now: GroupLag) -> bool:
    """Whether two measurements of one group and topic show the same offsets with nothing waiting.

    The age of the measurement then does not matter (the lag is 0 records, 0 seconds).
    """
    return (
        before.lag_records == 0
        and now.lag_records == 0
        and before.members == now.members
        and before.partitions == now.partitions
    )


def sample_board(
    board: LagBoard,
    targets: Sequence[Target],
    *,
    samples: int = 3,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SubscriptionLag]:
    """Refresh ``board`` ``samples`` times, ``interval`` seconds apart; return the last rows."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    rows: list[SubscriptionLag] = []
    for i in range(samples):
        if i:
            sleep(interval)
        rows = board.refresh(targets)
    return rows


def status_counts(rows: Sequence[SubscriptionLag]) -> Mapping[str, int]:
    """How many subscriptions are in each status (every status present, zeros included)."""
    counts = dict.fromkeys((s.value for s in Status), 0)
    for status, n in Counter(row.status for row in rows).items():
        counts[status.value] = n
    return counts
