"""The sidecars' source backlogs: read from their reports on ``xhub.backlog.<dept>`` and judged.

Each sidecar writes a backlog report every few seconds (``hub.core.backlog_report``; written by
``connectors.runtime.backlog``). The reader follows the report partition of each department's backlog
topic from where it stopped, so a refresh reads only what arrived since the previous one; the first look
reads the partition's tail backwards in growing windows until it finds a report.

A sidecar reports when its figures change and at least every heartbeat (``every_s`` of the report), so
the latest report holds until a newer one comes: its rows still wait, and their age is counted up to now.
A report is *stale* when it is older than two heartbeats plus ``grace_s`` (the sidecar is down, or cannot
reach Kafka): its figures are then unknown, and the path is not known to be drained.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from hub.core.backlog_report import REPORT_KEY, BacklogReport, SourceBacklog, decode_report
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.core.names import backlog_topic
from hub.monitor.status import Rules, Status

log = get_logger("monitor.backlog")

_KEY = REPORT_KEY.encode("utf-8")
FIRST_WINDOW = 256


@dataclass(frozen=True, slots=True)
class SourceBacklogView:
    """One source of one department's sidecar, as the monitor judges it.

    Attributes:
        department: the sidecar's department.
        source: the source's name in the sidecar config.
        backlog: its figures from the latest report (None: no report ever seen).
        reported_ms: when that report was measured.
        stale: the report is too old to trust (the sidecar is down or cut off from Kafka).
        status: OK (nothing waits, or what waits is younger than the stall threshold), STALL (rows wait
            longer than that), STOP (the reports stopped, or rows wait longer than the window), WARN (no
            report ever seen: the department publishes some other way, or its sidecar never ran).
        reason: why, for an operator.
    """

    department: str
    source: str
    backlog: SourceBacklog | None
    reported_ms: int | None
    stale: bool
    status: Status
    reason: str
    measured_ms: int

    @property
    def rows(self) -> int | None:
        if self.stale or self.backlog is None:
            return None
        return self.backlog.rows

    @property
    def oldest_seconds(self) -> float | None:
        """Age of the oldest row not yet published; 0.0 when none waits; None when unknown."""
        rows = self.rows
        if rows is None:
            return None
        if rows == 0 or self.backlog is None or self.backlog.oldest_commit_ms is None:
            return 0.0
        return max(0.0, (self.measured_ms - self.backlog.oldest_commit_ms) / 1000)

    @property
    def drained(self) -> bool:
        return self.rows == 0 and self.backlog is not None and not self.backlog.snapshot

    def to_json(self) -> dict[str, Any]:
        b = self.backlog
        age = self.oldest_seconds
        return {
            "department": self.department,
            "source": self.source,
            "kind": b.kind if b else None,
            "resources": list(b.resources) if b else [],
            "state": b.state if b else None,
            "rows": self.rows,
            "oldest_seconds": None if age is None else round(age, 1),
            "snapshot": bool(b and b.snapshot),
            "wal_held_bytes": b.wal_held_bytes if b else None,
            "wal_held_age_s": b.wal_held_age_s if b else None,
            "error": b.error if b else None,
            "reported_ms": self.reported_ms,
            "stale": self.stale,
            "status": self.status.value,
            "reason": self.reason,
        }


def judge(
    department: str,
    report: BacklogReport | None,
    rules: Rules,
    now_ms: int,
    *,
    grace_s: float = 10.0,
) -> list[SourceBacklogView]:
    """The views of one department's sources from its latest report (one "no report" row without one)."""
    if report is None:
        return [
            SourceBacklogView(
                department,
                "",
                None,
                None,
                True,
                Status.WARN,
                "no backlog report from its sidecar (not running, or a version without reports)",
                now_ms,
            )
        ]
    age_s = max(0.0, (now_ms - report.measured_ms) / 1000)
    stale = age_s > 2 * report.every_s + grace_s
    out = []
    for name, b in sorted(report.sources.items()):
        if stale:
            status, reason = (
                Status.STOP,
                f"no report from the sidecar for {age_s:.0f} s (down, or cut off from Kafka)",
            )
        elif b.rows is None:
            status, reason = Status.STOP, f"backlog not counted: {b.error or 'unknown'}"
        elif b.rows == 0:
            status, reason = (Status.OK, "snapshot being published") if b.snapshot else (Status.OK, "drained")
            if b.wal_held_bytes is not None:
                held, age = _size(b.wal_held_bytes), b.wal_held_age_s or 0
                reason += f"; slot holds {held} of WAL, oldest {age:.0f} s"
        else:
            waited = 0.0 if b.oldest_commit_ms is None else max(0.0, (now_ms - b.oldest_commit_ms) / 1000)
            if waited > rules.window:
                status = Status.STOP
            elif waited >= rules.stall_seconds:
                status = Status.STALL
            else:
                status = Status.OK
            reason = f"{b.rows} rows not published, oldest {waited:.0f} s (source {b.state})"
        if b.warnings and not stale and status is Status.OK:
            status, reason = Status.WARN, f"{reason}; " + "; ".join(b.warnings)
        view_now = report.measured_ms if not stale else now_ms
        out.append(
            SourceBacklogView(department, name, b, report.measured_ms, stale, status, reason, view_now)
        )
    return out


def _size(n: int) -> str:
    """Bytes for a reader: 512 B, 3.4 MB, 1.2 GB."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # not reached


class BacklogReader:
    """Follows the backlog reports of departments' sidecars. Not thread-safe: one thread owns it.

    Args:
        kafka: the cluster.
        client_id: Kafka client id suffix.
        read_timeout: seconds one refresh may spend reading.
        clock: epoch seconds (tests pass their own).
        consumer: the consumer to read with (default: a read_committed one of its own).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        client_id: str = "monitor-backlog",
        read_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        consumer: KafkaConsumer | None = None,
    ) -> None:
        self.read_timeout = read_timeout
        self.clock = clock
        self._consumer = consumer or make_consumer(
            kafka, client_id, group_id=None, max_poll_records=2000, metadata_max_age_ms=60_000
        )
        self._partition: dict[str, TopicPartition | None] = {}  # dept -> its report partition
        self._latest: dict[str, BacklogReport] = {}
        self._read_to: dict[TopicPartition, int] = {}  # offset read up to, per followed partition

    def close(self) -> None:
        self._consumer.close()

    def latest(self, departments: Iterable[str]) -> dict[str, BacklogReport | None]:
        """The newest report of each department's sidecar (None: none found)."""
        wanted = sorted(set(departments))
        tps = [tp for tp in (self._locate(d) for d in wanted) if tp is not None]
        if tps:
            try:
                self._follow(tps)
            except (KafkaError, KeyError) as exc:
                # kafka-python raises KeyError when one partition's offsets did not come (its leader not
                # known yet, a timeout under load): seen on the secure demo, where it hid every report.
                log.warning("backlog_read_failed", error=f"{type(exc).__name__}: {exc}")
                for tp in tps:  # one partition at a time: one's trouble must not hide the others' reports
                    with contextlib.suppress(KafkaError, KeyError):
                        self._follow([tp])
        return {d: self._latest.get(d) for d in wanted}

    def _locate(self, dept: str) -> TopicPartition | None:
        if dept in self._partition and self._partition[dept] is not None:
            return self._partition[dept]
        topic = backlog_topic(dept)
        parts = self._consumer.partitions_for_topic(topic)
        if not parts:
            self._partition[dept] = None  # looked up again next time: the sidecar may create it
            return None
        tp = TopicPartition(topic, int(murmur2(_KEY) & 0x7FFFFFFF) % len(parts))
        self._partition[dept] = tp
        return tp

    def _follow(self, tps: list[TopicPartition]) -> None:
        consumer = self._consumer
        ends = {tp: int(v) for tp, v in consumer.end_offsets(tps).items()}
        fresh = [tp for tp in tps if tp not in self._read_to]
        if fresh:
            starts = {tp: int(v) for tp, v in consumer.beginning_offsets(fresh).items()}
            for tp in fresh:
                self._find_last(tp, starts[tp], ends[tp])
        behind = [tp for tp in tps if self._read_to.get(tp, 0) < ends[tp]]
        if behind:
            self._read(behind, {tp: self._read_to[tp] for tp in behind}, ends)

    def _find_last(self, tp: TopicPartition, start: int, end: int) -> None:
        """Read the tail of ``tp`` backwards in growing windows until a report turns up."""
        window, upper = FIRST_WINDOW, end
        dept = _dept_of(tp.topic)
        self._read_to[tp] = end
        while upper > start and dept not in self._latest:
            lower = max(start, upper - window)
            self._read([tp], {tp: lower}, {tp: upper})
            upper, window = lower, window * 8
        self._read_to[tp] = end

    def _read(
        self,
        tps: list[TopicPartition],
        froms: Mapping[TopicPartition, int],
        ends: Mapping[TopicPartition, int],
    ) -> None:
        consumer = self._consumer
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, froms[tp])
        open_ = set(tps)
        deadline = time.monotonic() + self.read_timeout
        while open_ and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                dept = _dept_of(tp.topic)
                for rec in records:
                    if rec.offset >= ends[tp] or rec.key != _KEY:
                        continue
                    report = decode_report(rec.value)
                    known = self._latest.get(dept)
                    if report is not None and (known is None or report.measured_ms >= known.measured_ms):
                        self._latest[dept] = report
            for tp in list(open_):
                position = consumer.position(tp)
                if position >= ends[tp]:
                    open_.discard(tp)
                if tp in self._read_to:
                    self._read_to[tp] = max(self._read_to[tp], min(position, ends[tp]))
        consumer.unsubscribe()


def _dept_of(topic: str) -> str:
    return topic.split(".", 2)[2]


def source_views(
    reports: Mapping[str, BacklogReport | None], rules: Rules, now_ms: int
) -> tuple[SourceBacklogView, ...]:
    """Every source of every department, in department order."""
    out: list[SourceBacklogView] = []
    for dept in sorted(reports):
        out.extend(judge(dept, reports[dept], rules, now_ms))
    return tuple(out)


def backlog_of_resource(
    views: Iterable[SourceBacklogView], owner: str, resource: str
) -> tuple[int | None, float | None]:
    """(rows, oldest seconds) not yet published of ``resource`` at its owner's sidecar.

    (0, 0.0) when no source of the owner reports publishing it; None values when a report is missing or
    stale (unknown, not drained).
    """
    rows, age = 0, 0.0
    for v in views:
        if v.department != owner:
            continue
        if v.backlog is None or v.stale:
            return None, None
        if resource not in v.backlog.resources:
            continue
        if v.rows is None:
            return None, None
        rows += v.rows
        age = max(age, v.oldest_seconds or 0.0)
    return rows, age
