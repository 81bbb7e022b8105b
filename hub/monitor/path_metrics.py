"""Prometheus metrics of the whole path of one hub, from the monitor's snapshot (beside ``HubCollector``
of ``hub.monitor.metrics``, in the same per-server registry).

    xhub_path_drained{hub}                                         1 when nothing waits anywhere on any path
    xhub_subscription_path_lag_seconds{hub,subscription}           oldest change not yet at the subscriber
    xhub_backfill_records_done{hub,subscription}, xhub_backfill_records_expected{hub,subscription}
    xhub_backfill_eta_seconds{hub,subscription}, xhub_backfill_running{hub,subscription}
    xhub_state_restore_running{hub}, xhub_state_restore_partitions_assigned{hub},
    xhub_state_restore_partitions_restored{hub}, xhub_state_restore_records_restored{hub},
    xhub_state_restore_records_expected{hub}, xhub_state_restore_eta_seconds{hub}
    xhub_source_backlog_rows{hub,department,source}                rows the sidecar has not published yet
    xhub_source_backlog_oldest_seconds{hub,department,source}      age of the oldest of them
    xhub_source_backlog_report_age_seconds{hub,department}         since the sidecar's last report
    xhub_source_wal_held_bytes{hub,department,source}              WAL a logical-decoding slot holds back
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from hub.monitor.snapshot import MonitorState


class PathCollector:
    """Collects the path metrics of one hub (see the module docstring) from the monitor's snapshot.

    Args:
        hub: hub name (the ``hub`` label).
        state: returns the monitor's latest snapshot.
        clock: epoch seconds (report ages).
    """

    def __init__(
        self, hub: str, state: Callable[[], MonitorState], clock: Callable[[], float] = time.time
    ) -> None:
        self.hub = hub
        self.state = state
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        state = self.state()
        path = state.path
        hub = self.hub
        if state.refreshed_ms is not None:
            drained = GaugeMetricFamily(
                "xhub_path_drained",
                "1 when nothing waits anywhere: sources published, no backfill or restore, no lag.",
                labels=["hub"],
            )
            drained.add_metric([hub], 1.0 if path.drained else 0.0)
            yield drained
        lag = GaugeMetricFamily(
            "xhub_subscription_path_lag_seconds",
            "Age of the oldest change not yet at the subscriber: source backlog, hub lag or subscriber lag.",
            labels=["hub", "subscription"],
        )
        for sid, p in sorted(path.paths.items()):
            if p.seconds is not None:
                lag.add_metric([hub, sid], p.seconds)
        yield lag
        yield from self._backfills(state)
        yield from self._restore(state)
        yield from self._sources(state)

    def _backfills(self, state: MonitorState) -> Iterator[Metric]:
        labels = ["hub", "subscription"]
        done = GaugeMetricFamily(
            "xhub_backfill_records_done", "Source records a backfill went through.", labels=labels
        )
        total = GaugeMetricFamily(
            "xhub_backfill_records_expected", "Source records a backfill goes through in all.", labels=labels
        )
        eta = GaugeMetricFamily(
            "xhub_backfill_eta_seconds", "Seconds a backfill still needs at its recent rate.", labels=labels
        )
        running = GaugeMetricFamily(
            "xhub_backfill_running", "1 while the subscription's backfill runs.", labels=labels
        )
        for sid, p in sorted(state.path.backfills.items()):
            key = [self.hub, sid]
            done.add_metric(key, float(p.done))
            if p.total is not None:
                total.add_metric(key, float(p.total))
            if p.eta_seconds is not None:
                eta.add_metric(key, p.eta_seconds)
            running.add_metric(key, 0.0 if p.finished else 1.0)
        yield done
        yield total
        yield eta
        yield running

    def _restore(self, state: MonitorState) -> Iterator[Metric]:
        r = state.path.restore
        hub = self.hub
        for name, doc, value in (
            (
                "xhub_state_restore_running",
                "1 while the state store restores assigned partitions.",
                float(r.running),
            ),
            (
                "xhub_state_restore_partitions_assigned",
                "Partitions whose state the store restores.",
                float(r.partitions_total),
            ),
            (
                "xhub_state_restore_partitions_restored",
                "Partitions whose state is restored.",
                float(r.partitions_done),
            ),
            ("xhub_state_restore_records_restored", "Changelog records restored.", float(r.records.done)),
            (
                "xhub_state_restore_records_expected",
                "Changelog records to restore in all.",
                float(r.records.total or 0),
            ),
        ):
            family = GaugeMetricFamily(name, doc, labels=["hub"])
            family.add_metric([hub], value)
            yield family
        eta = GaugeMetricFamily(
            "xhub_state_restore_eta_seconds", "Seconds the restore still needs.", labels=["hub"]
        )
        if r.records.eta_seconds is not None:
            eta.add_metric([hub], r.records.eta_seconds)
        yield eta

    def _sources(self, state: MonitorState) -> Iterator[Metric]:
        labels = ["hub", "department", "source"]
        rows = GaugeMetricFamily(
            "xhub_source_backlog_rows",
            "Change-log or outbox rows a department's sidecar has not published yet (from its report).",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "xhub_source_backlog_oldest_seconds",
            "Age of the oldest row a department's sidecar has not published yet; 0 when none waits.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "xhub_source_backlog_report_age_seconds",
            "Seconds since a department's sidecar last reported its backlog.",
            labels=["hub", "department"],
        )
        wal = GaugeMetricFamily(
            "xhub_source_wal_held_bytes",
            "WAL a department's logical-decoding replication slot holds back on its server (its report).",
            labels=labels,
        )
        now = self.clock()
        reported: dict[str, int] = {}
        for v in state.path.sources:
            if v.reported_ms is not None:
                reported[v.department] = v.reported_ms
            if not v.source or v.rows is None:
                continue
            rows.add_metric([self.hub, v.department, v.source], float(v.rows))
            oldest.add_metric([self.hub, v.department, v.source], v.oldest_seconds or 0.0)
            if v.backlog is not None and v.backlog.wal_held_bytes is not None:
                wal.add_metric([self.hub, v.department, v.source], float(v.backlog.wal_held_bytes))
        for dept, ms in sorted(reported.items()):
            age.add_metric([self.hub, dept], max(0.0, now - ms / 1000))
        yield rows
        yield oldest
        yield wal
        yield age
