"""What the admin server shows: one immutable snapshot of the monitor, and the status document built from it.

The monitor thread replaces the snapshot whole after each refresh, so HTTP threads read a consistent view
without locks. The worker's counters are copied under their lock (:func:`copy_stats`).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.engine.stats import OUTCOMES
from hub.monitor.alerts import alert_items
from hub.monitor.board import SubscriptionLag, status_counts
from hub.monitor.dead_letters import DepartmentDeadLetters
from hub.monitor.history import LagHistory
from hub.monitor.lag import Target
from hub.monitor.path import PathState

if TYPE_CHECKING:
    from hub.engine.stats import WorkerStats


@dataclass(frozen=True, slots=True)
class SubscriptionCounts:
    delivered: int = 0
    filtered: int = 0
    refused: int = 0
    dead_lettered: int = 0
    last_source_commit_ms: int | None = None
    last_delivery_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StatsCopy:
    """The worker's counters at one instant."""

    consumed: int = 0
    undecodable: int = 0
    transactions: int = 0
    aborted_transactions: int = 0
    subscriptions: Mapping[str, SubscriptionCounts] = field(default_factory=dict)
    tx_seconds: tuple[float, ...] = ()
    latency_ms: tuple[int, ...] = ()
    alerts: tuple[dict[str, Any], ...] = ()  # open alerts (see hub.monitor.alerts)

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.subscriptions.values())

    def outcome_total(self, outcome: str) -> int:
        return sum(int(getattr(s, outcome)) for s in self.subscriptions.values())


def copy_stats(stats: WorkerStats, *, rings: bool = True, subscriptions: bool = True) -> StatsCopy:
    """Copy the counters of ``stats`` under its lock (the recent-value rings too when ``rings``).

    Without ``subscriptions`` the per-subscription outcomes are summed into one entry "" (the totals are
    right; no object is made per subscription while the worker waits for its lock).
    """
    with stats.lock:
        if not subscriptions:
            total = [0, 0, 0, 0]
            for s in stats.subscriptions.values():
                total[0] += s.delivered
                total[1] += s.filtered
                total[2] += s.refused
                total[3] += s.dead_lettered
            return StatsCopy(
                stats.consumed,
                stats.undecodable,
                stats.transactions,
                stats.aborted_transactions,
                {"": SubscriptionCounts(*total)},
                tuple(stats.tx_seconds) if rings else (),
                tuple(stats.latency_ms) if rings else (),
                alert_items(stats.alerts.values()),
            )
        subs = {
            sid: SubscriptionCounts(
                s.delivered,
                s.filtered,
                s.refused,
                s.dead_lettered,
                s.last_source_commit_ms,
                s.last_delivery_ms,
            )
            for sid, s in stats.subscriptions.items()
        }
        return StatsCopy(
            stats.consumed,
            stats.undecodable,
            stats.transactions,
            stats.aborted_transactions,
            subs,
            tuple(stats.tx_seconds) if rings else (),
            tuple(stats.latency_ms) if rings else (),
            alert_items(stats.alerts.values()),
        )


class Rates:
    """Records per second delivered per subscription (and consumed by the worker) over a sliding window."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._points: deque[tuple[float, int, dict[str, int]]] = deque()

    def add(self, ts: float, stats: StatsCopy) -> None:
        self._points.append(
            (ts, stats.consumed, {sid: s.delivered for sid, s in stats.subscriptions.items()})
        )
        while len(self._points) > 2 and self._points[1][0] <= ts - self.window:
            self._points.popleft()

    def consumed(self) -> float:
        if len(self._points) < 2:
            return 0.0
        (t0, c0, _), (t1, c1, _) = self._points[0], self._points[-1]
        return max(0.0, (c1 - c0) / (t1 - t0)) if t1 > t0 else 0.0

    def delivered(self) -> dict[str, float]:
        if len(self._points) < 2:
            return {}
        (t0, _, d0), (t1, _, d1) = self._points[0], self._points[-1]
        if t1 <= t0:
            return {}
        return {sid: max(0.0, (n - d0.get(sid, 0)) / (t1 - t0)) for sid, n in d1.items()}


@dataclass(frozen=True, slots=True)
class MonitorState:
    """One refresh of the monitor thread."""

    targets: tuple[Target, ...] = ()
    rows: tuple[SubscriptionLag, ...] = ()
    refreshed_ms: int | None = None  # when the lags were last measured
    refresh_seconds: float | None = None
    error: str | None = None  # the last refresh's failure, if it failed
    refresh_errors: int = 0
    dead_letters: Mapping[str, DepartmentDeadLetters] = field(default_factory=dict)
    delivered_rates: Mapping[str, float] = field(default_factory=dict)
    consumed_rate: float = 0.0
    period: float | None = None  # seconds from this refresh to the next (the interval, or longer)
    interval: float | None = None  # the configured interval
    max_share: float | None = None  # most of the time the monitor may spend refreshing
    status_counts: Mapping[str, int] | None = None  # of rows, when worked out already
    path: PathState = field(default_factory=PathState)  # backfills, restore, sources (hub.monitor.path)
    history: LagHistory | None = None  # path lag seconds per subscription over 15 minutes

    def period_note(self) -> str:
        """Why the lags are measured less often than configured ("" when they are not)."""
        if self.period is None or self.interval is None or self.max_share is None:
            return ""
        if self.period <= self.interval + 0.05:
            return ""
        return (
            f"measured every {self.period:.0f} s instead of {self.interval:g} s: a refresh of "
            f"{len(self.targets):,} subscriptions takes {self.refresh_seconds or 0:.2f} s and the monitor "
            f"keeps under {self.max_share:.0%} of the hub's time"
        )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) of ``values`` by the nearest-rank method; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))  # ceil(q * n) without float surprises
    return float(ordered[min(rank, len(ordered)) - 1])


def subscription_item(
    target: Target,
    row: SubscriptionLag | None,
    counts: SubscriptionCounts,
    delivered_per_second: float,
    department_names: Mapping[str, str],
) -> dict[str, Any]:
    """One subscription of /api/status: its lag row (None before the first measurement) and counters."""
    item: dict[str, Any] = (
        row.to_json()
        if row is not None
        else {
            "hub": target.hub,
            "subscription": target.subscription,
            "subscriber": target.subscriber,
            "resource": target.resource,
            "owner": target.owner,
            "refusal": target.refusal,
            "status": None,
            "hub_lag": None,
            "subscriber_lag": None,
        }
    )
    item.update(
        {outcome: getattr(counts, outcome) for outcome in OUTCOMES},
        delivered_per_second=delivered_per_second,
        last_delivery_ms=counts.last_delivery_ms,
        last_source_commit_ms=counts.last_source_commit_ms,
        subscriber_name=department_names.get(target.subscriber, target.subscriber),
        owner_name=department_names.get(target.owner, target.owner),
    )
    return item


_NO_COUNTS = SubscriptionCounts()


def path_key(state: MonitorState, sid: str) -> tuple[object, ...]:
    """What :func:`path_item` depends on (equal keys: the same item)."""
    history = state.history.runs(sid) if state.history is not None else ()
    return (state.path.backfills.get(sid), state.path.paths.get(sid), history)


def path_item(state: MonitorState, sid: str) -> dict[str, Any]:
    """A subscription's path beyond its two lags: backfill, source backlog, end-to-end lag and history.

    ``lag_history`` is the path lag in seconds as runs ``[first bucket, last bucket, seconds]`` (see
    ``hub.monitor.history``; ``history`` of the document says the bucket size and the newest bucket).
    """
    backfill = state.path.backfills.get(sid)
    path = state.path.paths.get(sid)
    return {
        "backfill": backfill.to_json() if backfill is not None else None,
        "source_backlog": path.to_json() if path is not None else None,
        "path_lag_seconds": None if path is None or path.seconds is None else round(path.seconds, 1),
        "drained": path.drained if path is not None else None,
        "lag_history": [list(r) for r in state.history.runs(sid)] if state.history is not None else [],
    }


@dataclass(frozen=True)
class StatusHeader:
    """What the status document says of the hub itself, beside its subscriptions and dead letters."""

    hub: str
    description: str
    ready: bool
    now_ms: int
    window: float  # seconds of the status window
    share_requests: Mapping[str, Any] | None = None  # overdue share requests (hub.governance.overdue)


def status_document(
    header: StatusHeader, stats: StatsCopy, state: MonitorState, department_names: Mapping[str, str]
) -> dict[str, Any]:
    """The JSON of /api/status (what the status page renders)."""
    rows = {r.target.subscription: r for r in state.rows}
    doc = _head(header, stats, state)
    doc["subscriptions"] = [
        {
            **subscription_item(
                target,
                rows.get(target.subscription),
                stats.subscriptions.get(target.subscription, _NO_COUNTS),
                round(state.delivered_rates.get(target.subscription, 0.0), 3),
                department_names,
            ),
            **path_item(state, target.subscription),
        }
        for target in state.targets
    ]
    doc["dead_letters"] = _dead_letters(state, department_names)
    return doc


class StatusEncoder:
    """Encodes :func:`status_document` as JSON bytes, reusing the text of unchanged subscriptions.

    A subscription's text is kept while its row is the same object (the board keeps the rows of idle
    subscriptions, see ``hub.monitor.board``) and its counters and rate are equal, so a page polling a hub
    of 10,000 idle subscriptions costs a join, not 10,000 encodings per request. Thread-safe (HTTP requests
    are served from several threads). ``department_names`` must stay the same from call to call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[object, SubscriptionCounts, float, tuple[object, ...], str]] = {}
        self._rows: tuple[MonitorState | None, dict[str, SubscriptionLag]] = (None, {})

    def encode(
        self, header: StatusHeader, stats: StatsCopy, state: MonitorState, department_names: Mapping[str, str]
    ) -> bytes:
        """The same document as :func:`status_document`, as UTF-8 JSON."""
        head = json.dumps(_head(header, stats, state), ensure_ascii=False)
        dead = json.dumps(_dead_letters(state, department_names), ensure_ascii=False)
        with self._lock:
            items = self._encode_items(stats, state, department_names)
        # head is a non-empty object: drop its closing brace and append the two lists
        text = f'{head[:-1]}, "subscriptions": [{",".join(items)}], "dead_letters": {dead}}}'
        return text.encode("utf-8")

    def _encode_items(
        self, stats: StatsCopy, state: MonitorState, department_names: Mapping[str, str]
    ) -> list[str]:
        known, rows = self._rows
        if known is not state:
            rows = {r.target.subscription: r for r in state.rows}
            self._rows = (state, rows)
        cache = self._items
        fresh: dict[str, tuple[object, SubscriptionCounts, float, tuple[object, ...], str]] = {}
        out: list[str] = []
        for target in state.targets:
            sub = target.subscription
            row = rows.get(sub)
            basis: object = row if row is not None else target
            counts = stats.subscriptions.get(sub, _NO_COUNTS)
            rate = round(state.delivered_rates.get(sub, 0.0), 3)
            extra = path_key(state, sub)
            cached = cache.get(sub)
            if (
                cached is not None
                and cached[0] is basis
                and cached[1] == counts
                and cached[2] == rate
                and cached[3] == extra
            ):
                text = cached[4]
            else:
                item = {
                    **subscription_item(target, row, counts, rate, department_names),
                    **path_item(state, sub),
                }
                text = json.dumps(item, ensure_ascii=False)
            fresh[sub] = (basis, counts, rate, extra, text)
            out.append(text)
        self._items = fresh
        return out


def _head(header: StatusHeader, stats: StatsCopy, state: MonitorState) -> dict[str, Any]:
    """The document without its two lists (subscriptions, dead letters)."""
    latencies = [ms / 1000 for ms in stats.latency_ms]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "hub": header.hub,
        "description": header.description,
        "ready": header.ready,
        "now_ms": header.now_ms,
        "refreshed_ms": state.refreshed_ms,
        "window_seconds": header.window,
        "refresh_seconds": None if state.refresh_seconds is None else round(state.refresh_seconds, 3),
        "refresh_interval_seconds": None if state.period is None else round(state.period, 1),
        "refresh_note": state.period_note(),
        "error": state.error,
        "alerts": list(stats.alerts),
        "share_requests": header.share_requests,
        "status_counts": dict(
            state.status_counts if state.status_counts is not None else status_counts(state.rows)
        ),
        "totals": {
            "consumed": stats.consumed,
            "undecodable": stats.undecodable,
            "transactions": stats.transactions,
            "aborted_transactions": stats.aborted_transactions,
            **{outcome: stats.outcome_total(outcome) for outcome in OUTCOMES},
            "consumed_per_second": round(state.consumed_rate, 3),
            "delivered_per_second": round(sum(state.delivered_rates.values()), 3),
        },
        "freshness": {
            "p50_seconds": None if p50 is None else round(p50, 3),
            "p99_seconds": None if p99 is None else round(p99, 3),
            "samples": len(latencies),
        },
        **_path_head(state),
    }


def _path_head(state: MonitorState) -> dict[str, Any]:
    """Restore, sidecar sources, drained, and the sparkline buckets (``hub.monitor.path``, ``history``)."""
    history = state.history
    return {
        "path": state.path.head_json(),
        "history": None
        if history is None
        else {
            "bucket_seconds": history.bucket_s,
            "buckets": history.buckets,
            "last_bucket": history.last_bucket,
        },
    }


def _dead_letters(state: MonitorState, department_names: Mapping[str, str]) -> list[dict[str, Any]]:
    dead = []
    for dept in sorted(set(department_names) | set(state.dead_letters)):
        counts = state.dead_letters.get(dept, DepartmentDeadLetters())
        dead.append({"department": dept, "name": department_names.get(dept, dept), **counts.to_json()})
    return dead
