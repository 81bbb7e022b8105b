"""The compiled plans of one hub, indexed by source topic; rebuilt whole when the config changes.

Every way a hub gets its plans goes through the config's one validation path
(``hub.config.validation``), so a hub refuses nothing that `xhub validate` accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.config.loader import ConfigDir
from hub.config.models import Grant, Resource, Subscription
from hub.config.snapshot import config_from_snapshot, config_snapshot, read_snapshot_record, snapshot_digest
from hub.config.validation import compile_config, compile_subscriptions
from hub.policy.plan import DeliveryPlan


@dataclass
class PolicySet:
    hub: str
    digest: str
    plans: dict[str, DeliveryPlan] = field(default_factory=dict)  # subscription id -> plan
    by_topic: dict[str, list[DeliveryPlan]] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # what the plans were compiled from
    grants: dict[str, Grant] = field(default_factory=dict)  # the owners' grants they were compiled under
    # The catalog's resource schemas the plans were compiled from: records are read as these (readers.py).
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource code -> Avro record schema
    # The catalog's update cycle of each resource read (realtime, hourly, ...): how stale a lag may grow.
    update_cycles: dict[str, str] = field(default_factory=dict)  # resource code -> update_cycle

    @property
    def source_topics(self) -> list[str]:
        return sorted(self.by_topic)

    def backfill_wanted(self, subscription: str) -> bool:
        """Whether a subscription first receives the current state (delivery.backfill, default yes)."""
        sub = self.subscriptions.get(subscription)
        return sub.delivery.backfill if sub is not None else True


def _policy_set(
    hub: str,
    digest: str,
    plans: Mapping[str, DeliveryPlan],
    subscriptions: Mapping[str, Subscription],
    *,
    grants: Mapping[str, Grant],
    schemas: Mapping[str, dict[str, Any]],
    resources: Mapping[str, Resource],
) -> PolicySet:
    out = PolicySet(hub=hub, digest=digest)
    for sid in sorted(plans):
        plan = plans[sid]
        out.plans[sid] = plan
        out.subscriptions[sid] = subscriptions[sid]
        if sid in grants:
            out.grants[sid] = grants[sid]
        out.by_topic.setdefault(plan.source_topic, []).append(plan)
        if plan.resource in schemas:
            out.schemas[plan.resource] = dict(schemas[plan.resource])
        if plan.resource in resources:
            out.update_cycles[plan.resource] = resources[plan.resource].update_cycle
    return out


def policy_set_of_config(cfg: ConfigDir, hub: str, *, secret: bytes) -> PolicySet:
    """The policy set of ``hub`` from a config directory, through ``compile_config`` with the real secret.

    Raises:
        ConfigError: the config does not validate (every problem with file and line).
    """
    return _validated_policy_set(cfg, hub, secret=secret, digest=snapshot_digest(config_snapshot(cfg, hub)))


def build_policy_set(
    hub: str,
    cfg: ConfigDir,
    *,
    secret: bytes,
    digest: str = "",
    subscriptions: Iterable[Subscription] | None = None,
) -> PolicySet:
    """Compile every subscription of ``hub`` whose resource is known, under its grant, without the
    cross-checks (pieces of a validated config; ``subscriptions``: these instead of ``cfg``'s).

    Raises:
        ConfigError: a subscription does not compile (never a bare ``PolicyError``).
    """
    chosen = cfg.subscriptions.values() if subscriptions is None else subscriptions
    subs = {s.id: s for s in chosen if s.hub == hub}
    plans = compile_subscriptions(subs.values(), cfg.resources, cfg.schemas, grants=cfg.grants, secret=secret)
    return _policy_set(
        hub, digest, plans, subs, grants=cfg.grants, schemas=cfg.schemas, resources=cfg.resources
    )


def policy_set_from_snapshot(snapshot: Mapping[str, Any], *, secret: bytes, digest: str) -> PolicySet:
    """The policy set of a config snapshot published by `xhub apply`, through ``compile_config``.

    Raises:
        ConfigError: the snapshot does not validate (problems name xhub.cfg.<hub> and the entry's path).
    """
    cfg = config_from_snapshot(snapshot, digest=digest)
    return _validated_policy_set(cfg, str(snapshot["hub"]), secret=secret, digest=digest)


def _validated_policy_set(cfg: ConfigDir, hub: str, *, secret: bytes, digest: str) -> PolicySet:
    """The policy set of ``hub`` after ``compile_config``'s whole validation of ``cfg``."""
    compiled = compile_config(cfg, secret=secret, hub=hub)
    return _policy_set(
        hub,
        digest,
        compiled.plans,
        cfg.subscriptions,
        grants=cfg.grants,
        schemas=cfg.schemas,
        resources=cfg.resources,
    )


def snapshot_of(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(digest, config) of one record of xhub.cfg.<hub> (see ``hub.config.snapshot``)."""
    return read_snapshot_record(raw)
