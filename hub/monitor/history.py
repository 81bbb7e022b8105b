"""Lag seconds of each subscription over the last 15 minutes, for the status page's sparklines.

Kept in the admin server's memory (nothing is stored or fetched elsewhere), sampled at each refresh of the
monitor. Time is cut in buckets of ``bucket_s`` seconds; a bucket holds the largest lag sampled in it
(a stall shows, however short). Each subscription keeps runs of equal buckets ``[first, last, value]``,
so an idle subscription costs one run whatever the span: 10,000 idle subscriptions stay small.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

SPAN_S = 900.0
BUCKET_S = 10.0

Run = tuple[int, int, float]  # first bucket, last bucket, lag seconds


class LagHistory:
    """The recent lag of many subscriptions. Thread-safe (one writer, readers from HTTP threads)."""

    def __init__(self, span_s: float = SPAN_S, bucket_s: float = BUCKET_S) -> None:
        self.bucket_s = bucket_s
        self.buckets = max(1, int(span_s // bucket_s))
        self._runs: dict[str, list[list[float]]] = {}
        self._lock = threading.Lock()
        self.last_bucket = 0

    def bucket_of(self, ts: float) -> int:
        return int(ts // self.bucket_s)

    def add(self, ts: float, lags: Mapping[str, float | None]) -> None:
        """Sample the lag of each subscription at epoch second ``ts`` (None: unknown, not drawn)."""
        bucket = self.bucket_of(ts)
        oldest = bucket - self.buckets + 1
        with self._lock:
            self.last_bucket = bucket
            for sid in set(self._runs) - set(lags):
                del self._runs[sid]
            for sid, value in lags.items():
                runs = self._runs.setdefault(sid, [])
                if value is not None:
                    _put(runs, bucket, round(max(0.0, value), 1))
                while runs and runs[0][1] < oldest:
                    runs.pop(0)
                if runs and runs[0][0] < oldest:
                    runs[0][0] = oldest

    def runs(self, sid: str) -> tuple[Run, ...]:
        """The runs of ``sid`` within the span, oldest first."""
        with self._lock:
            return tuple((int(r[0]), int(r[1]), r[2]) for r in self._runs.get(sid, ()))

    def series(self, sid: str) -> list[float | None]:
        """One value per bucket of the span, oldest first (None where nothing was sampled)."""
        first = self.last_bucket - self.buckets + 1
        out: list[float | None] = [None] * self.buckets
        for a, b, value in self.runs(sid):
            for bucket in range(max(a, first), b + 1):
                out[bucket - first] = value
        return out


def _put(runs: list[list[float]], bucket: int, value: float) -> None:
    if runs:
        last = runs[-1]
        if last[1] == bucket:  # a second sample in the same bucket: keep the larger
            if value <= last[2]:
                return
            if last[0] == bucket:
                last[2] = value
                if len(runs) > 1 and runs[-2][1] == bucket - 1 and runs[-2][2] == value:
                    runs.pop()
                    runs[-1][1] = bucket
                return
            last[1] = bucket - 1
        elif last[1] == bucket - 1 and last[2] == value:
            last[1] = bucket
            return
    runs.append([bucket, bucket, value])
