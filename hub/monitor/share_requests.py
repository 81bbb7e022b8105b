"""Overdue share requests on the admin port: the Prometheus gauges (the status page gets them in its JSON).

    xhub_share_requests_overdue{hub,owner}   pending requests past their answer day, per owning department
    xhub_share_requests_pending{hub,owner}   pending requests (overdue included), per owning department

The figures come from ``hub.governance.overdue`` over the subscriptions and grants the hub has in force.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from hub.governance.overdue import OverdueRequests


class ShareRequestCollector:
    """Collects the share-request gauges of one hub on every scrape.

    Args:
        hub: hub name (the ``hub`` label).
        overdue: returns the hub's overdue requests now (cached by the caller per policies and day).
    """

    def __init__(self, hub: str, overdue: Callable[[], OverdueRequests]) -> None:
        self.hub = hub
        self.overdue = overdue

    def describe(self) -> list[Metric]:
        return []  # collected on demand

    def collect(self) -> Iterator[Metric]:
        figures = self.overdue()
        overdue = GaugeMetricFamily(
            "xhub_share_requests_overdue",
            "Share requests (conditional resources) pending past their answer day, per owning department.",
            labels=["hub", "owner"],
        )
        pending = GaugeMetricFamily(
            "xhub_share_requests_pending",
            "Share requests awaiting the owning department's answer (overdue included).",
            labels=["hub", "owner"],
        )
        for owner, n in sorted(figures.overdue_by_owner.items()):
            overdue.add_metric([self.hub, owner], float(n))
        for owner, n in sorted(figures.pending_by_owner.items()):
            pending.add_metric([self.hub, owner], float(n))
        yield overdue
        yield pending
