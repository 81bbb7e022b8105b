"""The compiled plans of one hub, indexed by source topic; rebuilt whole when the config changes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.config.models import Resource, Subscription
from hub.policy.plan import DeliveryPlan, compile_plan


@dataclass
class PolicySet:
    hub: str
    digest: str
    plans: dict[str, DeliveryPlan] = field(default_factory=dict)  # subscription id -> plan
    by_topic: dict[str, list[DeliveryPlan]] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # what the plans were compiled from

    @property
    def source_topics(self) -> list[str]:
        return sorted(self.by_topic)

    def backfill_wanted(self, subscription: str) -> bool:
        """Whether a subscription first receives the current state (delivery.backfill, default yes)."""
        sub = self.subscriptions.get(subscription)
        return sub.delivery.backfill if sub is not None else True


def build_policy_set(
    hub: str,
    subscriptions: Iterable[Subscription],
    resources: Mapping[str, Resource],
    schemas: Mapping[str, dict[str, Any]],
    *,
    secret: bytes,
    digest: str = "",
) -> PolicySet:
    """Compile every subscription of ``hub`` whose resource is known."""
    out = PolicySet(hub=hub, digest=digest)
    for sub in sorted(subscriptions, key=lambda s: s.id):
        if sub.hub != hub:
            continue
        resource = resources.get(sub.resource)
        schema = schemas.get(sub.resource)
        if resource is None or schema is None:
            continue
        plan = compile_plan(sub, resource, schema, secret=secret)
        out.plans[sub.id] = plan
        out.subscriptions[sub.id] = sub
        out.by_topic.setdefault(plan.source_topic, []).append(plan)
    return out


def policy_set_from_snapshot(snapshot: Mapping[str, Any], *, secret: bytes, digest: str) -> PolicySet:
    """Rebuild a policy set from a config snapshot published by `xhub apply` (see provision.desired)."""
    resources = {code: Resource.model_validate(body) for code, body in snapshot["resources"].items()}
    subs = [Subscription.model_validate(body) for body in snapshot["subscriptions"].values()]
    return build_policy_set(
        snapshot["hub"], subs, resources, snapshot["schemas"], secret=secret, digest=digest
    )


def snapshot_of(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(digest, config) of one record of xhub.cfg.<hub>."""
    body = json.loads(raw)
    return body["digest"], body["config"]
