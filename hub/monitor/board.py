"""Lag with status: a probe plus one sliding window per subscription and kind.

``xhub lag --watch`` and the hub's admin server keep one :class:`LagBoard` alive and refresh it, so the
window spans their whole run. A single ``xhub lag`` takes a few samples a short interval apart
(:func:`sample_board`); with no longer history it judges "not moving" by the age of the waiting records
(see ``hub.monitor.status``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hub.monitor.lag import HUB, KINDS, SUBSCRIBER, GroupLag, Target
from hub.monitor.status import Rules, Status, StatusTracker, Verdict, worst


class Probe(Protocol):
    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]: ...


@dataclass(frozen=True, slots=True)
class KindView:
    """One kind of lag of one subscription, with its status."""

    lag: GroupLag
    verdict: Verdict

    @property
    def status(self) -> Status:
        return self.verdict.status

    def to_json(self) -> dict[str, Any]:
        seconds = self.lag.lag_seconds
        return {
            "group": self.lag.group,
            "topic": self.lag.topic,
            "status": self.verdict.status.value,
            "reason": self.verdict.reason,
            "lag_records": self.lag.lag_records,
            "lag_seconds": None if seconds is None else round(seconds, 3),
            "members": self.lag.members,
            "error": self.lag.error,
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

    @property
    def status(self) -> Status:
        return worst([self.hub.status, self.subscriber.status])

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

    Args:
        probe: measures the lags (``hub.monitor.lag.LagProbe``).
        rules: status thresholds (the window).
    """

    def __init__(self, probe: Probe, rules: Rules | None = None) -> None:
        self.probe = probe
        self.rules = rules or Rules()
        self._trackers: dict[tuple[str, str], StatusTracker] = {}

    def refresh(self, targets: Sequence[Target]) -> list[SubscriptionLag]:
        """Measure every target once, feed the windows, return one row per target (in target order).

        Raises:
            LagUnavailable: Kafka did not answer.
        """
        lags = self.probe.measure(targets)
        keys = {(t.subscription, kind) for t in targets for kind in KINDS}
        for gone in set(self._trackers) - keys:
            del self._trackers[gone]
        rows: list[SubscriptionLag] = []
        for target in targets:
            views = {kind: self._view(target, kind, lags[(target.subscription, kind)]) for kind in KINDS}
            rows.append(SubscriptionLag(target, views[HUB], views[SUBSCRIBER]))
        return rows

    def _view(self, target: Target, kind: str, lag: GroupLag) -> KindView:
        if lag.error is not None:
            return KindView(lag, Verdict(Status.STOP, lag.error))
        tracker = self._trackers.get((target.subscription, kind))
        if tracker is None:
            tracker = self._trackers[(target.subscription, kind)] = StatusTracker(self.rules)
        return KindView(lag, tracker.add(lag.sample()))


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
    for row in rows:
        counts[row.status.value] += 1
    return counts
