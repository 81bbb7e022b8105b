"""Subscription status over a sliding window of lag samples, in the spirit of Burrow's rules. Pure logic.

A sample is taken per subscription and per kind ("hub": the hub's group on the source topic,
"subscriber": the subscriber sidecar's group on the delivery topic). It holds, per partition, the
consumer's position (committed offset), the records waiting behind it, and since when the oldest of them
waits. The status of a kind is the worst status of its partitions:

    REWIND  a position moved back within the window (someone reset the group's offsets);
    OK      nothing waits (idle or caught up: an idle subscription is OK, and its lag is 0, never NaN);
    STOP    records wait and the position has not moved for longer than the window;
    STALL   records wait and the position has not moved for ``stall_after`` seconds or more;
    WARN    the position moves, but the total lag grew across the window and never shrank from one sample
            to the next (falling behind; Burrow also calls a constant lag WARN, here it is OK);
    OK      otherwise.

Burrow tells STALL (committing the same offset) from STOP (not committing) by commit timestamps it reads
from ``__consumer_offsets``. Kafka does not hand those out through its admin API, so time is the measure
here: "not moving" needs two samples in a row at the same position, and is timed from when the position was
last seen to change, or, when it has not been seen to change yet, from when the oldest waiting record was
appended (before that there was nothing to do). A tracker that has just started therefore trusts the age of
the waiting records: a consumer that died while it worked through an old backlog shows STOP at the second
sample.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class Status(StrEnum):
    """Status of one subscription (or one kind of it), from best to worst by :attr:`severity`."""

    OK = "OK"
    WARN = "WARN"
    REWIND = "REWIND"
    STALL = "STALL"
    STOP = "STOP"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_IDLE: Final = "idle"  # the reason of an OK window where nothing ever waited

_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.REWIND: 2, Status.STALL: 3, Status.STOP: 4}


def worst(statuses: Sequence[Status]) -> Status:
    """The most severe of ``statuses`` (OK when empty)."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One partition at one instant.

    Attributes:
        position: the consumer's committed offset (the log start offset when the group never committed).
        lag: records waiting (0 when nothing waits).
        waiting_since: epoch seconds the oldest waiting record was appended; None when nothing waits or
            it could not be read.
    """

    position: int
    lag: int
    waiting_since: float | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """All partitions of one kind of one subscription at epoch second ``ts``."""

    ts: float
    partitions: Mapping[int, PartitionSample]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions.values())


@dataclass(frozen=True, slots=True)
class Verdict:
    """A status with the reason an operator reads next to it, and how long the position has not moved."""

    status: Status
    reason: str
    stuck_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds of the status rules.

    Attributes:
        window: seconds of samples kept; no progress for longer than this is STOP.
        stall_after: seconds without progress, with records waiting, before STALL (default: window / 4).
        warn_samples: samples in the window needed to call a growing lag WARN.
    """

    window: float = 60.0
    stall_after: float | None = None
    warn_samples: int = 3

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"status window must be positive, got {self.window}")
        if self.stall_after is not None and not 0 <= self.stall_after <= self.window:
            raise ValueError(
                f"stall_after must be between 0 and the window ({self.window}), got {self.stall_after}"
            )

    @property
    def stall_seconds(self) -> float:
        return self.window / 4 if self.stall_after is None else self.stall_after


@dataclass
class _PartitionTrack:
    moved_at: float | None = None  # when the position was last seen to change; None = not seen yet


@dataclass
class StatusTracker:
    """The sliding window of one kind of one subscription. Feed it samples in time order with :meth:`add`."""

    rules: Rules = field(default_factory=Rules)
    samples: deque[Sample] = field(default_factory=deque)
    _tracks: dict[int, _PartitionTrack] = field(default_factory=dict)
    _idle: Verdict | None = None  # the last verdict, when it was "idle"

    def add(self, sample: Sample) -> Verdict:
        """Record ``sample`` and return the status it leads to."""
        previous = self.samples[-1] if self.samples else None
        if previous is not None and sample.ts < previous.ts:
            raise ValueError(f"samples must come in time order: {sample.ts} after {previous.ts}")
        if self._idle is not None and previous is not None and sample.partitions == previous.partitions:
            # Idle and unchanged (the common case of a large catalog): nothing waits and nothing moved,
            # so no rule can fire and the window stays all zeros; skip the evaluation.
            self._keep(Sample(sample.ts, previous.partitions))
            return self._idle
        verdict = self._add(sample, previous)
        self._idle = verdict if verdict.status is Status.OK and verdict.reason == _IDLE else None
        return verdict

    def _keep(self, sample: Sample) -> None:
        self.samples.append(sample)
        # Keep the newest sample older than the window as the baseline the window's first change is seen
        # against; drop anything before it.
        horizon = sample.ts - self.rules.window
        while len(self.samples) > 1 and self.samples[1].ts <= horizon:
            self.samples.popleft()

    def _add(self, sample: Sample, previous: Sample | None) -> Verdict:
        for partition, part in sample.partitions.items():
            track = self._tracks.setdefault(partition, _PartitionTrack())
            before = previous.partitions.get(partition) if previous is not None else None
            if before is not None and before.position != part.position:
                track.moved_at = sample.ts
        for gone in set(self._tracks) - set(sample.partitions):
            del self._tracks[gone]
        self._keep(sample)
        return evaluate(list(self.samples), self.rules, {p: t.moved_at for p, t in self._tracks.items()})


def evaluate(samples: Sequence[Sample], rules: Rules, moved_at: Mapping[int, float | None]) -> Verdict:
    """Apply the rules to ``samples`` (time order, the last is now).

    Args:
        samples: the window, oldest first; the first may be a baseline just older than the window.
        rules: thresholds.
        moved_at: per partition, when its position was last seen to change (None: not seen).
    """
    if not samples:
        return Verdict(Status.OK, "no sample yet")
    latest = samples[-1]
    now = latest.ts

    rewound = _rewinds(samples)
    if rewound:
        return Verdict(Status.REWIND, rewound)

    partial: list[Verdict] = []
    before = samples[-2] if len(samples) > 1 else None
    for partition, part in sorted(latest.partitions.items()):
        previous = before.partitions.get(partition) if before is not None else None
        # Stuck needs evidence: two samples in a row at the same position (one sample proves nothing).
        if part.lag <= 0 or previous is None or previous.position != part.position:
            continue
        since = [t for t in (moved_at.get(partition), part.waiting_since) if t is not None]
        start = max(since) if since else _first_seen_at(samples, partition, part.position)
        stuck = max(0.0, now - start)
        if stuck > rules.window:
            partial.append(
                Verdict(
                    Status.STOP,
                    f"partition {partition}: no progress for {stuck:.0f} s with {part.lag} records waiting",
                    stuck,
                )
            )
        elif stuck >= rules.stall_seconds:
            partial.append(
                Verdict(
                    Status.STALL,
                    f"partition {partition}: position {part.position} not moving for "
                    f"{stuck:.0f} s with {part.lag} records waiting",
                    stuck,
                )
            )
    if partial:
        return max(partial, key=lambda v: (v.status.severity, v.stuck_seconds))

    if latest.lag == 0:
        return Verdict(
            Status.OK, _IDLE if len(samples) > 1 and all(s.lag == 0 for s in samples) else "caught up"
        )
    lags = [s.lag for s in samples]
    growing = lags[-1] > lags[0] and all(b >= a for a, b in itertools.pairwise(lags))
    moving = any(_positions(a) != _positions(b) for a, b in itertools.pairwise(samples))
    if len(lags) >= rules.warn_samples and growing and moving:
        return Verdict(Status.WARN, f"lag growing over the window: {lags[0]} -> {lags[-1]} records")
    return Verdict(Status.OK, f"{latest.lag} records waiting")


def _positions(sample: Sample) -> dict[int, int]:
    return {p: part.position for p, part in sample.partitions.items()}


def _rewinds(samples: Sequence[Sample]) -> str:
    for before, after in itertools.pairwise(samples):
        for partition, part in sorted(after.partitions.items()):
            old = before.partitions.get(partition)
            if old is not None and part.position < old.position:
                return f"partition {partition}: position moved back from {old.position} to {part.position}"
    return ""


def _first_seen_at(samples: Sequence[Sample], partition: int, position: int) -> float:
    """When ``position`` was first seen in the window (the fallback start of "not moving")."""
    first = samples[-1].ts
    for s in reversed(samples):
        part = s.partitions.get(partition)
        if part is None or part.position != position:
            break
        first = s.ts
    return first
