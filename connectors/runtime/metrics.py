"""Prometheus metrics of one sidecar, in a registry of its own (several sidecars may share a process).

    xhub_connector_published_total{resource}              change events published (committed)
    xhub_connector_dead_lettered_total{resource,reason}   changes sent to the dead-letter topic
    xhub_connector_applied_total{sink}                    deliveries applied by sinks
    xhub_connector_last_source_commit_seconds{source}     source commit time of the last published change
    xhub_connector_source_up{source}                      1 while a source runs, 0 while it retries
    xhub_connector_source_backlog_rows{source}            change-log / outbox rows not yet published
    xhub_connector_source_backlog_oldest_seconds{source}  age of the oldest of them since its commit (0: none)
    xhub_connector_slot_wal_held_bytes{source}            WAL a replication slot holds back (pg_logical)
    xhub_connector_slot_wal_held_age_seconds{source}      age of the oldest WAL it holds back

Labels carry catalog codes, reason codes and names from the config: never record values.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class SidecarMetrics:
    """The counters and gauges of one sidecar; sources and sinks update them, /metrics exposes them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.published = Counter(
            "xhub_connector_published",
            "Change events published to source topics",
            ["resource"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "xhub_connector_dead_lettered",
            "Changes sent to the department dead-letter topic",
            ["resource", "reason"],
            registry=self.registry,
        )
        self.applied = Counter(
            "xhub_connector_applied",
            "Deliveries applied by the sidecar's sinks",
            ["sink"],
            registry=self.registry,
        )
        self.last_source_commit = Gauge(
            "xhub_connector_last_source_commit_seconds",
            "Source commit time (epoch seconds) of the last change published",
            ["source"],
            registry=self.registry,
        )
        self.source_up = Gauge(
            "xhub_connector_source_up",
            "1 while the source runs, 0 while it waits to retry",
            ["source"],
            registry=self.registry,
        )
        # NaN while the backlog cannot be counted (no position yet, database down): unknown, not 0.
        self.backlog_rows = Gauge(
            "xhub_connector_source_backlog_rows",
            "Change-log or outbox rows committed in the department database, not yet published",
            ["source"],
            registry=self.registry,
        )
        self.backlog_oldest = Gauge(
            "xhub_connector_source_backlog_oldest_seconds",
            "Seconds since the commit of the oldest row not yet published (0 when none waits)",
            ["source"],
            registry=self.registry,
        )

        self.before_render: list[Callable[[], None]] = []
        """Hooks that bring counters up to date just before a scrape (e.g. from sink loop stats)."""

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        for hook in self.before_render:
            hook()
        return generate_latest(self.registry)


def export_wal_held(metrics: SidecarMetrics, source: str, health: Callable[[], dict[str, object]]) -> None:
    """Show a replication-slot source's WAL held back (from its ``health()``) on /metrics at each scrape."""
    gauges = getattr(metrics, "_wal_held_gauges", None)
    if gauges is None:
        gauges = (
            Gauge(
                "xhub_connector_slot_wal_held_bytes",
                "Bytes of WAL the source's replication slot holds back on the department database",
                ["source"],
                registry=metrics.registry,
            ),
            Gauge(
                "xhub_connector_slot_wal_held_age_seconds",
                "Age of the oldest WAL the source's replication slot holds back",
                ["source"],
                registry=metrics.registry,
            ),
        )
        metrics._wal_held_gauges = gauges  # type: ignore[attr-defined]
    held_bytes, held_age = (g.labels(source=source) for g in gauges)

    def update() -> None:
        facts = health()
        held_bytes.set(float(facts.get("wal_held_bytes") or 0))  # type: ignore[arg-type]
        held_age.set(float(facts.get("wal_held_age_s") or 0))  # type: ignore[arg-type]

    metrics.before_render.append(update)
