"""The update cycle of each subscription's resource as a gauge, so an alert can compare a lag with it.

    xhub_subscription_update_cycle_seconds{hub,subscription,resource,update_cycle}

A lag of a day is normal for a resource its owner updates daily and an incident for a realtime one; the
catalog says which (``update_cycle``), and alerting rules divide by this gauge rather than hard-code a
threshold per resource. Each cycle is its longest length (31 days a month, 366 a year), so a lag over it
is never an ordinary calendar; ``realtime`` is 0 and the rule sets the floor it tolerates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric

from hub.engine.policy_set import PolicySet

DAY: Final = 86_400
CYCLE_SECONDS: Final = {
    "realtime": 0,
    "hourly": 3_600,
    "daily": DAY,
    "weekly": 7 * DAY,
    "monthly": 31 * DAY,
    "yearly": 366 * DAY,
}


class UpdateCycleCollector:
    """Collects one update-cycle sample per subscription the hub serves (its live plans) on every scrape.

    Args:
        hub: hub name (the ``hub`` label).
        policies: returns the worker's policy set in force (it follows ``xhub apply``).
    """

    def __init__(self, hub: str, policies: Callable[[], PolicySet]) -> None:
        self.hub = hub
        self.policies = policies

    def describe(self) -> list[Metric]:
        return []  # collected on demand

    def collect(self) -> Iterator[Metric]:
        policies = self.policies()
        family = GaugeMetricFamily(
            "xhub_subscription_update_cycle_seconds",
            "Longest length of the update cycle of the subscription's resource (catalog update_cycle); "
            "0 for realtime.",
            labels=["hub", "subscription", "resource", "update_cycle"],
        )
        for sid, plan in sorted(policies.plans.items()):
            cycle = policies.update_cycles.get(plan.resource)
            if cycle is not None:
                family.add_metric([self.hub, sid, plan.resource, cycle], float(CYCLE_SECONDS[cycle]))
        yield family
