"""Alerts of one hub worker: what an operator must act on while the hub keeps serving.

The worker raises them (``WorkerStats.alerts``): an applied config it refused (it keeps the policy it
has). The status page shows them as a banner (``alerts`` in /api/status) and /metrics exports them:

    xhub_config_refused_total{hub}      applied configs the hub refused since it started
    xhub_alerts{hub,kind}               alerts open now, per kind
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hub.engine.stats import Alert, WorkerStats

KINDS = ("config_refused",)


def alert_items(alerts: Iterable[Alert]) -> tuple[dict[str, Any], ...]:
    """The open alerts as /api/status lists them, oldest first (pass them copied, or under the lock)."""
    return tuple(
        {"kind": a.kind, "subject": a.subject, "message": a.message, "since_ms": a.since_ms}
        for a in sorted(alerts, key=lambda a: (a.since_ms, a.kind, a.subject))
    )


class AlertCollector:
    """Collects the alert metrics of one hub worker on every scrape (register it beside HubCollector)."""

    def __init__(self, hub: str, stats: WorkerStats) -> None:
        self.hub = hub
        self.stats = stats

    def describe(self) -> list[Metric]:
        return []  # collected on demand

    def collect(self) -> Iterator[Metric]:
        with self.stats.lock:
            refused = self.stats.config_refused
            kinds = Counter(kind for kind, _ in self.stats.alerts)
        total = CounterMetricFamily(
            "xhub_config_refused_total",
            "Applied configs the hub could not install (it kept serving the policy it had).",
            labels=["hub"],
        )
        total.add_metric([self.hub], float(refused))
        yield total
        open_alerts = GaugeMetricFamily("xhub_alerts", "Alerts open now, per kind.", labels=["hub", "kind"])
        for kind in sorted(set(KINDS) | set(kinds)):
            open_alerts.add_metric([self.hub, kind], float(kinds.get(kind, 0)))
        yield open_alerts
