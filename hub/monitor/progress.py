"""Progress of the hub's own catch-up work: backfills per subscription and the state store's restore.

Both are "records done of records total"; the rate is measured between refreshes of the monitor (over the
status window), and the ETA is what is left at that rate (None while nothing moved yet). Pure: the admin
server feeds it the worker's figures (``HubWorker.backfills``, the ``restore_*`` fields of
``WorkerStats``), ``xhub lag`` the figures it read from the hub's admin port or committed offsets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.engine.stats import WorkerStats

DONE = "done"


@dataclass(frozen=True, slots=True)
class Progress:
    """Records done of total, how fast, and when it should end.

    Attributes:
        done: records done.
        total: records in all; None when not known.
        state: what runs now ("scanning", "delivering", "catching_up", "waiting", "done"; "restoring").
        per_second: records per second over the window; None before two samples.
        eta_seconds: seconds left at that rate; 0 when done, None when it cannot be told.
    """

    done: int
    total: int | None
    state: str
    per_second: float | None = None
    eta_seconds: float | None = None

    @property
    def finished(self) -> bool:
        return self.state == DONE

    @property
    def fraction(self) -> float | None:
        if self.finished:
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    def to_json(self) -> dict[str, Any]:
        return {
            "records_done": self.done,
            "records_total": self.total,
            "state": self.state,
            "per_second": None if self.per_second is None else round(self.per_second, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
        }


@dataclass(frozen=True, slots=True)
class RestoreProgress:
    """The state store's restore on assignment (all 0: none ran since start)."""

    partitions_total: int = 0
    partitions_done: int = 0
    records: Progress = Progress(0, 0, DONE)

    @property
    def running(self) -> bool:
        return self.partitions_total > 0 and self.partitions_done < self.partitions_total

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "partitions_total": self.partitions_total,
            "partitions_done": self.partitions_done,
            **self.records.to_json(),
        }


def restore_figures(stats: WorkerStats) -> tuple[int, int, int, int]:
    """(partitions total, partitions done, records done, records total) of ``stats``, under its lock."""
    with stats.lock:
        return (
            stats.restore_partitions_total,
            stats.restore_partitions_done,
            stats.restore_records_done,
            stats.restore_records_total,
        )


def backfill_figures(backfills: Mapping[str, Any]) -> dict[str, tuple[int, int | None, str]]:
    """{subscription: (done, total, state)} of ``HubWorker.backfills`` (``BackfillProgress`` values).

    Reads ``records_done`` / ``records_total`` where the progress has them, else ``done`` / ``total``; a
    missing or zero total of a running backfill is worked out from its partitions' offsets
    (``snapshot_end`` minus the log start, summed) when the progress carries them, else left unknown.
    """
    out: dict[str, tuple[int, int | None, str]] = {}
    for sid, p in list(backfills.items()):
        done = _int(getattr(p, "records_done", None), _int(getattr(p, "done", None), 0))
        total: int | None = _int(getattr(p, "records_total", None), _int(getattr(p, "total", None), 0))
        state = str(getattr(p, "state", "") or "")
        if not total and state != DONE:
            total = _total_from_offsets(getattr(p, "partitions", None))
        out[str(sid)] = (done or 0, total, state or "delivering")
    return out


def _int(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _total_from_offsets(partitions: Any) -> int | None:
    """Sum of ``snapshot_end - log_start`` over partition entries that carry both."""
    if not isinstance(partitions, Mapping) or not partitions:
        return None
    total = 0
    for entry in partitions.values():
        end, start = getattr(entry, "snapshot_end", None), getattr(entry, "log_start", 0)
        if not isinstance(end, int) or not isinstance(start, int):
            return None
        total += max(0, end - start)
    return total


class RateTracker:
    """Records per second of one kind of progress per key, over a sliding window of samples."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._points: dict[str, deque[tuple[float, int]]] = {}

    def rate(self, key: str, ts: float, done: int) -> float | None:
        points = self._points.setdefault(key, deque())
        if points and done < points[-1][1]:
            points.clear()  # started again (a new backfill, another restore): the old rate says nothing
        points.append((ts, done))
        while len(points) > 2 and points[1][0] <= ts - self.window:
            points.popleft()
        (t0, d0), (t1, d1) = points[0], points[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    def forget_except(self, keys: set[str]) -> None:
        for gone in set(self._points) - keys:
            del self._points[gone]


def progress(done: int, total: int | None, state: str, per_second: float | None) -> Progress:
    """A :class:`Progress` with its ETA worked out."""
    if state == DONE:
        return Progress(done, total, state, per_second, 0.0)
    eta = None
    if total is not None and per_second and per_second > 0:
        eta = max(0.0, total - done) / per_second
    return Progress(done, total, state, per_second, eta)


class ProgressTracker:
    """Turns figures sampled at each refresh into :class:`Progress` with rates and ETAs."""

    def __init__(self, window: float) -> None:
        self._rates = RateTracker(window)

    def backfills(self, ts: float, figures: Mapping[str, tuple[int, int | None, str]]) -> dict[str, Progress]:
        out = {
            sid: progress(done, total, state, self._rates.rate(f"backfill:{sid}", ts, done))
            for sid, (done, total, state) in figures.items()
        }
        self._rates.forget_except({f"backfill:{sid}" for sid in figures} | {"restore"})
        return out

    def restore(self, ts: float, figures: tuple[int, int, int, int]) -> RestoreProgress:
        parts_total, parts_done, done, total = figures
        if parts_total <= 0 and total <= 0:
            return RestoreProgress()
        running = parts_done < parts_total
        state = "restoring" if running else DONE
        return RestoreProgress(
            parts_total, parts_done, progress(done, total, state, self._rates.rate("restore", ts, done))
        )
