"""The sidecar's source backlog: change-log / outbox rows not yet published, measured and reported.

Every ``every_s`` seconds a thread counts, per SQL source, the log rows past the source's last committed
position (``ChangeLogConnection.backlog``, on its own database connection: the source's connection
belongs to the source's thread) and the commit time of the oldest. The figures go to

- /metrics (``xhub_connector_source_backlog_rows``, ``xhub_connector_source_backlog_oldest_seconds``) and
  /healthz (``sources.<name>.backlog``) on the sidecar's own port;
- a report on ``xhub.backlog.<dept>`` (``hub.core.backlog_report``), which ``xhub lag`` and the hub's
  status page read (not on ``xhub.pos.<dept>``, which only the department may read: a snapshot's position
  holds the last business key it read). Kafka is the one channel every department already shares with
  the hub, so a sidecar on another machine (behind its department's firewall) is seen without opening its
  health port to the operators; and a report that stops coming says the sidecar is down, where a silent
  port would not.

A report is written when a figure changed since the last one, and at least every ``heartbeat_s`` (30 s)
while nothing changes, so an idle sidecar adds ~3,000 small records a day to its compacted backlog topic,
and "no report for 2 heartbeats" still says it is down.

The report is written with a plain idempotent producer, not in the source's transaction: it must get
out precisely when publishing does not (a refused schema, a source that stopped), and it carries no
position, so it cannot disturb the exactly-once path. Counting is a measurement, never a gate: a failure
is logged and reported as an error, and the sidecar goes on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from connectors.runtime.metrics import SidecarMetrics
from connectors.runtime.positions import partition_for
from connectors.runtime.source_loop import SourceRunner
from connectors.sources.changelog import ChangeLogConnection, open_change_log
from hub.core.backlog_report import REPORT_KEY, BacklogReport, SourceBacklog
from hub.core.envelope import now_ms
from hub.core.kafka import close_producer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.core.names import backlog_topic

NO_POSITION = "no position committed yet"  # normal until the source's first commit: not worth a warning

# The column holding a log row's commit time, per kind of SQL source.
COMMIT_COLUMNS = {"sql_trigger": "commit_ts", "outbox": "created_at"}


class _Counter:
    """Counts one source's backlog on a connection of its own (opened lazily, reopened after a failure)."""

    def __init__(self, runner: SourceRunner) -> None:
        self.runner = runner
        source: Any = runner.source
        self.spec = source.log_spec
        self.column = COMMIT_COLUMNS[source.kind]
        self.db: ChangeLogConnection = open_change_log(
            source.config.database.get_secret_value(),
            base_dir=source.base_dir,
            what=f'backlog of source "{source.name}"',
        )

    def measure(self) -> SourceBacklog:
        runner = self.runner
        kind, state = runner.source.kind, runner.status()["state"]
        resources = tuple(runner.source.resources)
        position = runner.committed
        if not isinstance(position, dict) or not isinstance(position.get("log"), dict):
            why = NO_POSITION if position is None else "position has no change-log part"
            return SourceBacklog(kind, state, None, error=why, resources=resources)
        snapshot = position.get("snapshot") is not None
        try:
            with self.db.read() as reader:
                rows, oldest = self.db.backlog(
                    reader, self.spec, position["log"], self.db.ms_expr(self.column)
                )
        except Exception as exc:  # noqa: BLE001 - a measurement never stops the sidecar; it is reported
            self.db.close()
            error = f"{type(exc).__name__}: {exc}"
            return SourceBacklog(kind, state, None, snapshot=snapshot, error=error, resources=resources)
        return SourceBacklog(kind, state, rows, oldest, snapshot, resources=resources)

    def close(self) -> None:
        self.db.close()


class BacklogReporter:
    """Measures the backlog of every SQL source of a sidecar and reports it (see the module docstring).

    Args:
        department: the sidecar's department (its backlog topic).
        kafka: the cluster the report goes to.
        runners: the sidecar's source runners. A source without a change log (HTTP push) is reported
            with 0 rows: it publishes while its client waits, so nothing of it is ever left behind.
        metrics: the sidecar's metrics.
        every_s: seconds between measurements (metrics, /healthz; a report when a figure changed).
        heartbeat_s: the longest time between two reports while nothing changes.
    """

    def __init__(
        self,
        department: str,
        kafka: KafkaSettings,
        runners: Sequence[SourceRunner],
        metrics: SidecarMetrics,
        *,
        every_s: float = 5.0,
        heartbeat_s: float = 30.0,
    ) -> None:
        self.department = department
        self.kafka = kafka
        self.every_s = every_s
        self.heartbeat_s = max(heartbeat_s, every_s)
        self._last_sent: tuple[dict[str, SourceBacklog], float] | None = None  # figures, monotonic time
        self.metrics = metrics
        self.counters = [_Counter(r) for r in runners if r.source.kind in COMMIT_COLUMNS]
        self.direct = [r for r in runners if r.source.kind not in COMMIT_COLUMNS]
        self.latest: dict[str, SourceBacklog] = {}
        self.log = get_logger("backlog", dept=department)
        self._topic = backlog_topic(department)
        self._producer: Any = None
        self._partition: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()

    def start(self) -> None:
        if not self.counters and not self.direct:
            return
        self._thread = threading.Thread(target=self._loop, name="backlog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer)  # after an outage it may hold records it cannot write: given up

    def measure(self) -> BacklogReport:
        """Count every source's backlog now; update the metrics and :attr:`latest`."""
        sources = {c.runner.source.name: c.measure() for c in self.counters}
        for r in self.direct:
            status = r.status()  # the source's health() is in it: a replication slot's WAL held back
            held, age = status.get("wal_held_bytes"), status.get("wal_held_age_s")
            # A hub link counts what waits on the district's delivery topic; others leave nothing behind.
            rows, oldest = status.get("backlog_rows", 0), status.get("backlog_oldest_commit_ms")
            counted = rows if isinstance(rows, int) else None
            sources[r.source.name] = SourceBacklog(
                r.source.kind,
                status["state"],
                counted,
                oldest if isinstance(oldest, int) else None,
                # Why it is not counted (a link that cannot read its district topic), for the operators.
                error=str(status["last_error"]) if counted is None and status.get("last_error") else None,
                resources=tuple(r.source.resources),
                wal_held_bytes=held if isinstance(held, int) else None,
                wal_held_age_s=float(age) if isinstance(age, int | float) else None,
                warnings=tuple(str(w) for w in status.get("warnings") or ()),
            )
        measured = now_ms()
        for name, backlog in sources.items():
            self._observe(name, backlog, measured)
        self.latest = sources
        return BacklogReport(self.department, measured, self.heartbeat_s, sources)

    def _observe(self, name: str, backlog: SourceBacklog, measured_ms: int) -> None:
        rows = self.metrics.backlog_rows.labels(source=name)
        oldest = self.metrics.backlog_oldest.labels(source=name)
        if backlog.rows is None:
            rows.set(float("nan"))
            oldest.set(float("nan"))
            if backlog.error and backlog.error != NO_POSITION and name not in self._warned:
                self._warned.add(name)
                self.log.warning("backlog_not_counted", source=name, error=backlog.error[:300])
            return
        self._warned.discard(name)
        rows.set(backlog.rows)
        age = (
            0.0
            if backlog.oldest_commit_ms is None
            else max(0.0, (measured_ms - backlog.oldest_commit_ms) / 1000)
        )
        oldest.set(age if backlog.rows else 0.0)

    def report(self, report: BacklogReport) -> None:
        """Write ``report`` to the department's backlog topic (raises on a Kafka failure)."""
        if self._producer is None:
            producer = make_producer(self.kafka, f"sidecar-{self.department}-backlog", max_block_ms=5_000)
            try:
                partitions = producer.partitions_for(self._topic)
            except BaseException:
                close_producer(producer)
                raise
            if not partitions:
                close_producer(producer)
                raise RuntimeError(f"backlog topic {self._topic} does not exist (yet)")
            self._producer = producer
            self._partition = partition_for(REPORT_KEY.encode("utf-8"), len(partitions))
        try:
            self._producer.send(
                self._topic, value=report.encode(), key=REPORT_KEY.encode("utf-8"), partition=self._partition
            )
            self._producer.flush(timeout=10)
        except BaseException:
            # A report that did not get out is replaced by the next one, from a fresh producer: one that
            # lived through an outage may hold records it never gets written.
            producer, self._producer = self._producer, None
            close_producer(producer)
            raise

    def _loop(self) -> None:
        try:
            self._run_every(self._step)
        finally:
            for counter in self.counters:  # in this thread: a SQLite connection belongs to its thread
                counter.close()

    def _step(self) -> None:
        report = self.measure()
        last, clock = self._last_sent, time.monotonic()
        if last is not None and last[0] == report.sources and clock - last[1] < self.heartbeat_s:
            return  # unchanged: the reader takes the last report as still true until a heartbeat is missed
        self.report(report)
        self._last_sent = (report.sources, clock)

    def _run_every(self, step: Callable[[], None]) -> None:
        failing = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                step()
                if failing:
                    self.log.info("backlog_report_resumed")
                failing = False
            except Exception as exc:  # noqa: BLE001 - the report is best effort; publishing goes on
                if not failing:
                    self.log.warning("backlog_report_failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
                failing = True
                producer, self._producer = self._producer, None
                if producer is not None:
                    with contextlib.suppress(Exception):
                        producer.close(timeout=1)
            self._stop.wait(max(0.5, self.every_s - (time.monotonic() - started)))
