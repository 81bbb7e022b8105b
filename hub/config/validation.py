"""The one validation path: what `xhub validate`, `plan`, `apply` and a hub installing a config all run.

``compile_config`` cross-checks a loaded config and compiles the plan and delivery schema of every
subscription, exactly as a hub compiles them (with a placeholder pseudonym key where no secret is
given: the key changes pseudonym values, never whether a plan compiles). Whatever a hub would refuse is
refused here first, with the file and line of the offending entry; no ``PolicyError`` is swallowed.

    directory --read_config--> ConfigDir --compile_config--> CompiledConfig   (validate, plan, apply, run)
    xhub.cfg.<hub> --config_from_snapshot--> ConfigDir --compile_config--> ...  (a hub following its config)

This module sits above both ``hub.config`` (models, loading) and ``hub.policy`` (plans): policy imports
nothing from config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.config.checks import cross_check
from hub.config.layout import check_layout
from hub.config.linked import check_linked
from hub.config.loader import ConfigDir, Origin, read_config
from hub.config.models import Grant, Resource, Subscription
from hub.core.errors import ConfigError, ConfigProblem
from hub.policy.errors import PlanError, PolicyError
from hub.policy.plan import DeliveryPlan, compile_plan


@dataclass(frozen=True)
class CompiledConfig:
    """A config that passed every check, with the compiled plan of each of its subscriptions.

    Attributes:
        cfg: the config.
        plans: subscription id -> plan. Keyed with the secret given to ``compile_config``; with none, the
            pseudonyms use a placeholder key, so such plans serve schemas and checks, never deliveries.
    """

    cfg: ConfigDir
    plans: Mapping[str, DeliveryPlan]

    def delivery_schema(self, subscription: str) -> dict[str, Any] | None:
        """The delivered Avro schema of ``subscription`` (None: not compiled, e.g. of another hub)."""
        plan = self.plans.get(subscription)
        return plan.delivery_schema if plan is not None else None


def compile_config(
    cfg: ConfigDir, *, secret: bytes | None = None, hub: str | None = None, now: datetime | None = None
) -> CompiledConfig:
    """Cross-check ``cfg`` and compile every subscription's plan; raise one error listing every problem.

    Args:
        cfg: a config read from a directory (``read_config``) or from a snapshot (``config_from_snapshot``).
        secret: the hub's pseudonym key; None compiles with a placeholder key (schemas and checks only).
        hub: compile only the subscriptions of this hub (the others are still cross-checked).
        now: judge validity windows against this time (a window already over is an error); None leaves
            them to run time, as a hub does when it installs an applied config.

    Raises:
        ConfigError: every problem, each with file, line and path (masks that cannot apply to their field
            name the field and sit on the line of the mask).
    """
    problems: list[ConfigProblem | str] = list(cross_check(cfg, now))
    subs = [s for s in cfg.subscriptions.values() if hub is None or s.hub == hub]
    plans, compile_problems = _compile(
        subs, cfg.resources, cfg.schemas, grants=cfg.grants, secret=secret, origins=cfg.origins
    )
    # An owner's mask that cannot apply is found by the cross-checks and by every plan it applies to:
    # report it once.
    problems.extend(p for p in compile_problems if p not in problems)
    if problems:
        raise ConfigError(problems)
    return CompiledConfig(cfg, plans)


def load_config(root: str | Path, *, check: bool = True) -> ConfigDir:
    """Read ``root`` and run ``compile_config`` over it; raise one ConfigError listing every problem.

    ``check=False`` only reads (syntax, types, schemas), for tools that inspect a config as it is.
    """
    cfg, read_problems = read_config(root)
    problems: list[ConfigProblem | str] = list(read_problems)
    if check:
        problems.extend(check_layout(cfg))  # a directory's own rule: snapshots have no folders
        # Also a directory's own: the district's terms copies sit in its folder; a hub installing a
        # snapshot enforces its own policy on what arrives and needs them not.
        problems.extend(check_linked(cfg))
        try:
            compile_config(cfg, now=datetime.now(UTC))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def compile_subscriptions(
    subscriptions: Iterable[Subscription],
    resources: Mapping[str, Resource],
    schemas: Mapping[str, dict[str, Any]],
    *,
    grants: Mapping[str, Grant],
    secret: bytes | None,
) -> dict[str, DeliveryPlan]:
    """Compile the plans of ``subscriptions`` whose resource is known (no cross-checks, no file lines).

    The compile step of ``compile_config``, for callers that hold the pieces of a config that already
    passed it (a hub compiling with its real secret at start).

    Raises:
        ConfigError: a subscription does not compile (every one listed).
    """
    plans, problems = _compile(
        list(subscriptions), resources, schemas, grants=grants, secret=secret, origins={}
    )
    if problems:
        raise ConfigError(problems)
    return plans


def _compile(
    subscriptions: list[Subscription],
    resources: Mapping[str, Resource],
    schemas: Mapping[str, dict[str, Any]],
    *,
    grants: Mapping[str, Grant],
    secret: bytes | None,
    origins: Mapping[tuple[str, str], Origin],
) -> tuple[dict[str, DeliveryPlan], list[ConfigProblem | str]]:
    plans: dict[str, DeliveryPlan] = {}
    problems: list[ConfigProblem | str] = []
    for sub in sorted(subscriptions, key=lambda s: s.id):
        resource = resources.get(sub.resource)
        schema = schemas.get(sub.resource)
        if resource is None or schema is None:
            continue  # an unknown resource or a schema that did not load is reported by the cross-checks
        grant = grants.get(sub.id)
        try:
            plans[sub.id] = compile_plan(sub, resource, schema, secret=secret, grant=grant)
        except PlanError as exc:
            problems.extend(_located(origins, sub, p.path, p.message) for p in exc.problems)
        except PolicyError as exc:
            problems.append(_located(origins, sub, (), str(exc)))
    return plans, problems


def _located(
    origins: Mapping[tuple[str, str], Origin], sub: Subscription, path: tuple[str, ...], message: str
) -> ConfigProblem | str:
    """A plan problem at its line: in the subscription, or in the grant or catalog entry that set a mask."""
    if path[:1] == ("grant",):
        origin, path, text = (
            origins.get(("grant", sub.id)),
            path[1:],
            f'grant for subscription "{sub.id}": {message}',
        )
    elif path[:1] == ("resource",):
        origin, path, text = (
            origins.get(("resource", sub.resource)),
            path[1:],
            f"resource {sub.resource}: {message}",
        )
    else:
        origin, text = origins.get(("subscription", sub.id)), f'subscription "{sub.id}": {message}'
    return origin.problem(path, text) if origin is not None else text
