"""The progress of the backfills one worker runs, for the monitor and the log (``backfill_progress``).

A subscription's backfill spans the partitions the worker owns; a partition whose backfill has gone live
counts as done, and when none is left the subscription shows "done" (and stays so, for ``xhub lag``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Set

from kafka import TopicPartition

from hub.core.log import get_logger
from hub.engine.backfill import BackfillTask
from hub.engine.handover import Backfilling, BackfillProgress, PartitionState, partition_progress

log = get_logger("engine")

PROGRESS_LOG_S = 2.0  # at most one backfill_progress line per subscription this often


class ProgressTracker:
    """Remembers the backfills seen (their partitions and sizes) between two updates."""

    def __init__(self, hub: str) -> None:
        self._spans: dict[str, dict[TopicPartition, int]] = {}  # sid -> {partition: total}
        self._logged: dict[str, float] = {}
        self._log = log.bind(hub=hub)

    def update(
        self,
        states: Mapping[TopicPartition, PartitionState],
        log_start: Mapping[TopicPartition, int],
        subscriptions: Set[str],
        running: tuple[BackfillTask, str] | None,
    ) -> dict[str, BackfillProgress]:
        """{subscription: progress} from the partitions' states; ``running``: the task under way and its
        phase (scanning, delivering, catching_up)."""
        spans = self._spans
        for sid in list(spans):  # forget partitions lost, and backfills abandoned
            kept = {tp: t for tp, t in spans[sid].items() if sid in states.get(tp, {})}
            if kept and sid in subscriptions:
                spans[sid] = kept
            else:
                del spans[sid]
        sums: dict[str, list[int]] = {}
        phases: dict[str, str] = {}
        for tp, state in states.items():
            start = log_start.get(tp, 0)
            for sid, h in state.items():
                if not isinstance(h, Backfilling):
                    continue
                done, total = partition_progress(h, start)
                spans.setdefault(sid, {})[tp] = total
                acc = sums.setdefault(sid, [0, 0])
                acc[0] += done
                acc[1] += total
                if running is not None and tp == running[0].tp and sid in running[0].subscriptions:
                    phases[sid] = running[1]
                else:
                    phases.setdefault(sid, "waiting" if h.position < h.snapshot_end else "catching_up")
        out: dict[str, BackfillProgress] = {}
        clock = time.monotonic()
        for sid, by_tp in spans.items():
            acc = sums.setdefault(sid, [0, 0])
            for tp, total in by_tp.items():
                if not isinstance(states[tp][sid], Backfilling):
                    acc[0] += total  # live there: its part is done
                    acc[1] += total
            done, total = acc
            phase = phases.get(sid, "done")
            out[sid] = BackfillProgress(done, total, phase)
            if phase != "done" and clock - self._logged.get(sid, 0.0) >= PROGRESS_LOG_S:
                self._logged[sid] = clock
                self._log.info("backfill_progress", subscription=sid, done=done, total=total, state=phase)
        return out
