"""What is measured: the subscriptions to watch, and the groups and topics their two lags are read from."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hub.core import names

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.policy.plan import DeliveryPlan

HUB: Final = "hub"
SUBSCRIBER: Final = "subscriber"
KINDS: Final = (HUB, SUBSCRIBER)

SINK_GROUP_PREFIX: Final = "xhub-sink-"


def sink_group(subscription: str) -> str:
    """The default consumer group of the sidecar serving ``subscription`` (before one has committed)."""
    return f"{SINK_GROUP_PREFIX}{subscription}"


def choose_sink_group(subscription: str, candidates: Sequence[tuple[str, bool, int]]) -> str:
    """The subscriber's group among the ``xhub-sink-*`` groups that committed on its delivery topic.

    Args:
        subscription: the subscription (its default group name is the fallback).
        candidates: (group id, has members now, sum of its committed offsets on the delivery topic).

    A sidecar names its group per sink binding (``xhub-sink-<dept>-<binding>``), and one binding may read
    several subscriptions, so the group is found by its commits: a group with members first (the live
    one), then the furthest ahead (a left-over group of a renamed binding lags behind), then by name.
    """
    if not candidates:
        return sink_group(subscription)
    return min(candidates, key=lambda c: (not c[1], -c[2], c[0]))[0]


@dataclass(frozen=True, slots=True)
class Target:
    """One subscription to watch: who it serves, and the topics and groups its two lags are read from."""

    hub: str
    subscription: str
    subscriber: str
    resource: str
    owner: str
    source_topic: str
    delivery_topic: str
    refusal: str | None = None  # why nothing is delivered right now (no grant, revoked...), if so
    # The subscriber is a hub link: it reads without a consumer group and keeps its position in the
    # cluster it carries to (xhub.pos.<link-dept> there), so no group here says how far it read.
    hub_link: bool = False

    def group_and_topic(self, kind: str) -> tuple[str, str]:
        if kind == HUB:
            return names.hub_group(self.hub), self.source_topic
        return sink_group(self.subscription), self.delivery_topic


def targets_of_config(cfg: ConfigDir, hub: str | None = None) -> list[Target]:
    """The subscriptions of ``hub`` (every hub when None) in ``cfg``, sorted by hub and id."""
    from hub.policy.plan import compile_plan

    if hub is not None:
        cfg.hub(hub)  # raises ConfigError naming hubs.yaml when unknown
    now_ms = time.time_ns() // 1_000_000
    out: list[Target] = []
    for sub in sorted(cfg.subscriptions.values(), key=lambda s: (s.hub, s.id)):
        if hub is not None and sub.hub != hub:
            continue
        resource = cfg.resources.get(sub.resource)
        if resource is None:
            continue
        refusal: str | None = None
        schema = cfg.schemas.get(sub.resource)
        if schema is not None:
            plan = compile_plan(sub, resource, schema, secret=None, grant=cfg.grant_of(sub.id))
            refusal = plan.refusal_at(now_ms)
        subscriber = cfg.departments.get(sub.subscriber)
        out.append(
            Target(
                hub=sub.hub,
                subscription=sub.id,
                subscriber=sub.subscriber,
                resource=sub.resource,
                owner=resource.owner,
                source_topic=names.source_topic(resource.owner, sub.resource),
                delivery_topic=names.delivery_topic(sub.hub, sub.id),
                refusal=refusal,
                hub_link=subscriber is not None and subscriber.hub_link,
            )
        )
    return out


def targets_of_plans(hub: str, plans: Iterable[DeliveryPlan], now_ms: int | None = None) -> list[Target]:
    """The subscriptions a running hub serves, from its live plans (they follow ``xhub apply``)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    out = [
        Target(
            hub=hub,
            subscription=plan.subscription,
            subscriber=plan.subscriber,
            resource=plan.resource,
            owner=owner_of_source_topic(plan.source_topic),
            source_topic=plan.source_topic,
            delivery_topic=plan.delivery_topic,
            refusal=plan.refusal_at(now),
        )
        for plan in plans
    ]
    return sorted(out, key=lambda t: t.subscription)


def refusals_change_at(plans: Iterable[DeliveryPlan], now_ms: int) -> int | None:
    """The next instant after ``now_ms`` a plan's refusal changes (it becomes valid or expires), if any.

    Until then :func:`targets_of_plans` gives the same targets for the same plans.
    """
    later = [
        ms
        for plan in plans
        if not plan.refusal
        for ms in (plan.valid_from_ms, plan.valid_until_ms)
        if ms is not None and ms > now_ms
    ]
    return min(later, default=None)


def owner_of_source_topic(topic: str) -> str:
    """The department of ``xhub.src.<dept>.<resource>`` ("" for any other name)."""
    parts = topic.split(".")
    return parts[2] if len(parts) >= 4 and parts[0] == names.PREFIX and parts[1] == "src" else ""
