"""Linked resources (federation): policy again at each level, narrowing only.

A district hub delivers a resource to the city's hub link through an ordinary subscription; the city
catalog knows it as a linked resource (``linked_from``). What climbs is fixed by the district: the
fields of that subscription's plan, each with the mask the district applied. The district publishes
those **terms** (``xhub plan DISTRICT --terms SUBSCRIPTION``, JSON) and the city keeps a copy in its
config: the city validator cannot read the district's config or cluster, and a copied file makes what
the city relied on reviewable in the city's git, with the district's policy version in it.

The city may narrow (fewer fields, stronger masks, filters) but never widen: a field the district
withheld does not exist upstream, and a field the district masked cannot be granted in clear here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.config.loader import ConfigDir, Origin
from hub.config.models import Grant, LinkedFrom, Resource
from hub.core.errors import ConfigError, ConfigProblem
from hub.policy import entitlement
from hub.policy.plan import DeliveryPlan

TERMS_FORMAT = "xhub.delivery-terms/1"
_GRANT_ROLES = ("fields", "clear", "filterable", "release_sensitive")


# --- the district side: publishing the terms of a link's subscription ----------------------------


def published_terms(cfg: ConfigDir, plans: Mapping[str, DeliveryPlan], subscription: str) -> dict[str, Any]:
    """The terms a district publishes for ``subscription`` (JSON-ready): what climbs, and how masked.

    Each masked or withheld field names the file, line and path that decided it, so a city error can
    point at the district's grant.

    Args:
        cfg: the district's config; plans: its compiled plans (``compile_config(cfg).plans``).

    Raises:
        ConfigError: no compiled plan of that subscription (unknown, or of no hub here).
    """
    plan = plans.get(subscription)
    if plan is None:
        raise ConfigError(f'--terms {subscription}: no subscription "{subscription}" in this config')
    fields: dict[str, dict[str, Any]] = {}
    for rule in plan.rules:
        mask = rule.mask.kind if rule.mask else None
        fields[rule.name] = {"mask": mask, "set_by": _mask_set_by(cfg, plan, rule.name, rule.origin)}
    withheld = {
        name: {"why": why, "set_by": _withheld_set_by(cfg, plan, name, why)} for name, why in plan.withheld
    }
    return {
        "format": TERMS_FORMAT,
        "hub": plan.hub,
        "subscription": plan.subscription,
        "subscriber": plan.subscriber,
        "resource": plan.resource,
        "policy_version": plan.version,
        "refusal": plan.refusal,
        "key": {"field": plan.key_field, "masked": plan.key_masked},
        "fields": fields,
        "withheld": withheld,
    }


def _where(origin: Origin | None, path: tuple[str | int, ...]) -> str | None:
    if origin is None:
        return None
    full = (*origin.path, *path)
    line = origin.doc.line_of(full)
    at = f"{origin.doc.file}:{line}" if line else origin.doc.file
    return f"{at} {'.'.join(str(p) for p in path)}" if path else at


def _mask_set_by(cfg: ConfigDir, plan: DeliveryPlan, name: str, origin: str) -> str | None:
    if origin in {"grant minimum", "clear by grant"}:
        role = "min_masks" if origin == "grant minimum" else "clear"
        return _where(cfg.origins.get(("grant", plan.subscription)), (role, name))
    if origin == "catalog default":
        return _where(cfg.origins.get(("resource", plan.resource)), ("default_masks", name))
    if origin == "requested":
        return _where(cfg.origins.get(("subscription", plan.subscription)), ("masks", name))
    return None


def _withheld_set_by(cfg: ConfigDir, plan: DeliveryPlan, name: str, why: str) -> str | None:
    if why == entitlement.NOT_GRANTED:
        return _where(cfg.origins.get(("grant", plan.subscription)), ("fields",))
    return _where(cfg.origins.get(("resource", plan.resource)), ("fields", name))


# --- the city side: a copy of those terms, checked against the city's catalog and grants ----------


@dataclass(frozen=True)
class UpstreamField:
    """A field that climbs: the district's mask (None: in clear) and where the district set it."""

    mask: str | None
    set_by: str | None


@dataclass(frozen=True)
class UpstreamTerms:
    """The district's published terms of one link subscription, as the city keeps them."""

    hub: str
    subscription: str
    resource: str
    policy_version: str
    fields: Mapping[str, UpstreamField]
    withheld: Mapping[str, tuple[str, str | None]]  # field -> (why, where the district decided it)

    @classmethod
    def of(cls, doc: Any) -> UpstreamTerms:
        """Parse published terms; ValueError names what is wrong."""
        if not isinstance(doc, dict) or doc.get("format") != TERMS_FORMAT:
            raise ValueError(f'is not delivery terms (no "format": "{TERMS_FORMAT}")')
        try:
            fields = {
                str(n): UpstreamField(f.get("mask"), f.get("set_by")) for n, f in dict(doc["fields"]).items()
            }
            withheld = {str(n): (str(w["why"]), w.get("set_by")) for n, w in dict(doc["withheld"]).items()}
            return cls(
                str(doc["hub"]),
                str(doc["subscription"]),
                str(doc["resource"]),
                str(doc["policy_version"]),
                fields,
                withheld,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"is not valid delivery terms ({type(exc).__name__}: {exc})") from exc

    def absent(self, name: str) -> str:
        """Why ``name`` does not exist upstream, naming the district's decision."""
        why, where = self.withheld.get(name, ("not asked for by the link's subscription", None))
        by = f"; decided at the district in {where}" if where else ""
        return (
            f'field "{name}" does not exist upstream: district hub {self.hub} withholds it from '
            f'subscription "{self.subscription}" ({why}{by})'
        )


def read_terms(root: Path, linked: LinkedFrom) -> UpstreamTerms:
    """The copy of the district's terms a linked resource names; ValueError says why it cannot be used."""
    path = root / linked.terms
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"not found: no file {linked.terms} in the config folder") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not JSON (line {exc.lineno}: {exc.msg})") from exc
    return UpstreamTerms.of(doc)


def check_linked(cfg: ConfigDir) -> list[ConfigProblem]:
    """Every problem of every linked resource of a config directory (reads the terms copies)."""
    out: list[ConfigProblem] = []
    for code, res in sorted(cfg.resources.items()):
        if res.linked_from is None:
            continue
        origin = cfg.origins[("resource", code)]
        try:
            terms = read_terms(cfg.root, res.linked_from)
        except ValueError as exc:
            message = f'resource {code}: terms "{res.linked_from.terms}" {exc}'
            out.append(origin.problem(("linked_from", "terms"), message))
            continue
        grants = {sid: g for sid, g in cfg.grants.items() if g.resource == code}
        for where, path, message in linked_problems(res, cfg.schemas.get(code), grants, terms):
            at = origin if where is None else cfg.origins.get(("grant", where))
            if at is not None:
                prefix = f"resource {code}" if where is None else f'grant for subscription "{where}"'
                out.append(at.problem(path, f"{prefix}: {message}"))
    return out


Located = tuple[str | None, tuple[str | int, ...], str]
"""(None: the resource, else the subscription id of a grant; path in it; message)."""


def linked_problems(
    res: Resource,
    schema: Mapping[str, Any] | None,
    grants: Mapping[str, Grant],
    terms: UpstreamTerms,
) -> list[Located]:
    """Where the city's catalog entry and grants of a linked resource ask for more than climbs. Pure.

    Args:
        res: the city's catalog entry (with ``linked_from``).
        schema: its Avro schema (None: did not load; the loader reported it).
        grants: the city's grants on it, by subscription id.
        terms: the district's published terms named by ``res.linked_from``.
    """
    linked = res.linked_from
    if linked is None:
        return []
    out: list[Located] = []
    for part, mine, theirs in (
        ("hub", linked.hub, terms.hub),
        ("subscription", linked.subscription, terms.subscription),
    ):
        if mine != theirs:
            out.append((None, ("linked_from", part), f'the terms copy is of {part} "{theirs}", not "{mine}"'))
    if terms.resource != res.code:
        out.append((None, ("linked_from", "terms"), f"the terms copy is of resource {terms.resource}"))
    names = [f["name"] for f in (schema or {}).get("fields", [])]
    out.extend((None, ("fields", n), terms.absent(n)) for n in names if n not in terms.fields)
    for sid, grant in sorted(grants.items()):
        out.extend(_grant_problems(sid, grant, terms))
    return out


def _grant_problems(sid: str, grant: Grant, terms: UpstreamTerms) -> list[Located]:
    out: list[Located] = []
    named: list[tuple[tuple[str | int, ...], str]] = [
        ((role, i), name) for role in _GRANT_ROLES for i, name in enumerate(getattr(grant, role) or [])
    ]
    named += [(("min_masks", name), name) for name in grant.min_masks]
    for path, name in named:
        if name not in terms.fields:
            out.append((sid, path, terms.absent(name)))
    for i, name in enumerate(grant.clear):
        upstream = terms.fields.get(name)
        if upstream is not None and upstream.mask is not None:
            by = f" by {upstream.set_by}" if upstream.set_by else ""
            out.append(
                (
                    sid,
                    ("clear", i),
                    f'field "{name}" arrives masked ({upstream.mask}) from district hub {terms.hub}: '
                    f"the district set that mask{by}; a city grant cannot put it in clear",
                )
            )
    return out
