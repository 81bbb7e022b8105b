"""Compile a subscription into a delivery plan. Pure: no I/O, so every rule is testable in isolation.

fields  = requested ∩ granted ∩ classified (``hub.policy.entitlement``: deny by default; an unclassified,
          secret, unreleased sensitive or ungranted field never goes out)
masks   = per field, the strongest of requested, the grant's minimum and the catalog default; a personal
          field goes out in clear only where the owner's grant says so
filter  = row filter compiled once; it may read only fields the subscriber sees in clear, or fields the
          owner lists as filterable for it
key     = the business key in clear only when its field is delivered in clear; for a filtered subscription
          also only when the owner lists the key field as filterable (else deletes, which reach every
          filtered subscriber, would name rows outside its filter): otherwise the keyed pseudonym
state   = deliverable, or refused with a reason (not shared, no grant, grant refused, revoked, outside the
          validity window, which a grant's valid_until bounds)
version = stable hash of all of the above; it travels in a header and in the audit
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.catalog.model import FieldClass
from hub.core import names
from hub.core.envelope import change_event_schema
from hub.policy.entitlement import Entitlement, entitle
from hub.policy.errors import FilterError, MaskRuntimeError, PlanError, PlanProblem, PolicyError
from hub.policy.filters import RowFilter, compile_filter
from hub.policy.masks import Mask, build_mask
from hub.policy.terms import GrantTerms, ResourceTerms, SubscriptionTerms

# A schema-only compile (plan/apply) has no hub secret; pseudonym output types do not depend on it.
_SCHEMA_ONLY_SECRET = b"schema-only-placeholder-key"


@dataclass(frozen=True)
class FieldRule:
    name: str
    mask: Mask | None
    out_type: Any
    origin: str = ""  # where the mask comes from ("requested", "grant minimum", ...; see entitlement)


@dataclass(frozen=True)
class DeliveryPlan:
    """Everything the engine needs to serve one subscription, compiled once."""

    subscription: str
    subscriber: str
    resource: str
    hub: str
    source_topic: str
    delivery_topic: str
    rules: tuple[FieldRule, ...]
    row_filter: RowFilter | None
    valid_from_ms: int | None
    valid_until_ms: int | None
    refusal: (
        str | None
    )  # permanent refusal (not shared, no grant, grant refused, revoked); None = deliverable
    key_field: str
    key_masked: bool
    version: str
    delivery_schema: dict[str, Any]
    withheld: tuple[tuple[str, str], ...]  # (requested field, why it does not go out), for `xhub plan`
    filter_fields: frozenset[str]  # what the row filter may read: in clear, or filterable by the owner
    _project: Callable[[Mapping[str, Any]], dict[str, Any]]
    _key_of: Callable[[str], str]

    @property
    def fields(self) -> list[str]:
        return [r.name for r in self.rules]

    def refusal_at(self, now_ms: int) -> str | None:
        """Why nothing may be delivered at ``now_ms``, or None when delivery is allowed."""
        if self.refusal:
            return self.refusal
        if self.valid_from_ms is not None and now_ms < self.valid_from_ms:
            return "not_yet_valid"
        if self.valid_until_ms is not None and now_ms >= self.valid_until_ms:
            return "expired"
        return None

    def project(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The delivered record: planned fields only, masked. Raises MaskRuntimeError naming the field."""
        return self._project(data)

    def delivered_key(self, key: str) -> str:
        """The business key as the subscriber may see it (pseudonymised when its field is masked)."""
        return self._key_of(key)


def _ms(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    aware = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def _avro_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def compile_plan(
    sub: SubscriptionTerms,
    resource: ResourceTerms,
    resource_schema: Mapping[str, Any],
    *,
    secret: bytes | None,
    grant: GrantTerms | None = None,
) -> DeliveryPlan:
    """Compile ``sub`` against its resource and the owner's ``grant`` (None: no grant).

    ``secret`` keys the pseudonyms (None: schema-only use).

    Raises:
        PlanError: every mask that cannot apply to its field, a row filter that does not compile or reads
            a field the subscriber may not see, each with its place (``("masks", field)``, ``("filter",)``;
            a mask set by the owner at ``("grant", "min_masks", field)`` or
            ``("resource", "default_masks", field)``).
    """
    key_secret = secret if secret is not None else _SCHEMA_ONLY_SECRET
    schema_fields = {f["name"]: f for f in resource_schema["fields"]}
    named = named_types(resource_schema)
    problems: list[PlanProblem] = []
    ent = entitle(sub, resource, grant, schema_fields)
    withheld = list(ent.withheld)
    rules: list[FieldRule] = []
    for fg in ent.fields:
        field = schema_fields[fg.name]
        mask: Mask | None = None
        out_type = field["type"]
        if fg.mask:
            try:
                mask = build_mask(fg.mask, secret=key_secret)
                out_type = mask.output_type(resolve_named(field["type"], named))
            except PolicyError as exc:
                problems.append(PlanProblem(_mask_place(fg.origin, fg.name), f'field "{fg.name}": {exc}'))
                continue
        if out_type is None:
            withheld.append((fg.name, f"dropped by its mask ({fg.origin})"))
            continue
        rules.append(FieldRule(fg.name, mask, out_type, fg.origin))

    clear = frozenset(r.name for r in rules if r.mask is None)
    filter_fields = clear | ent.owner_filterable
    row_filter = _row_filter(sub, resource, resource_schema, (filter_fields, ent), problems)
    if problems:
        raise PlanError(sub.id, problems)
    # A delete reaches every filtered subscriber (the hub keeps no per-subscription state yet): the raw key
    # only where the owner lets it read the key field, else the pseudonym, for every op alike so that a
    # subscriber's row and its delete keep the same key.
    key_masked = resource.key not in clear or (
        row_filter is not None and resource.key not in ent.owner_filterable
    )
    projected = {
        "type": "record",
        "name": _avro_name(f"{resource_schema['name']}_{sub.id}"),
        "namespace": "gov.xhub.delivery",
        "doc": f"{resource.code} as delivered to {sub.subscriber} under subscription {sub.id}",
        "fields": [_out_field(schema_fields[r.name], r.out_type) for r in rules],
    }
    delivery_schema = change_event_schema(
        resource.code, projected, name=_avro_name(f"{resource_schema['name']}Delivery_{sub.id}")
    )
    delivery_schema["namespace"] = "gov.xhub.delivery"
    valid_from_ms, valid_until_ms = _ms(sub.valid_from), _ms(ent.valid_until)
    version = _version(
        sub,
        resource=resource,
        rules=rules,
        grant=grant,
        refusal=ent.refusal,
        window=(valid_from_ms, valid_until_ms, key_masked),
    )

    plan_rules = tuple(rules)
    appliers = [(r.name, r.mask.function if r.mask else None) for r in plan_rules]

    def project(data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, apply in appliers:
            value = data.get(name)
            if apply is None:
                out[name] = value
                continue
            try:
                out[name] = apply(value)
            except MaskRuntimeError as exc:
                raise MaskRuntimeError(f'field "{name}": {exc.detail}', kind=exc.kind, field=name) from exc
        return out

    def key_of(key: str) -> str:
        if not key_masked:
            return key
        return hmac.new(key_secret, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    return DeliveryPlan(
        subscription=sub.id,
        subscriber=sub.subscriber,
        resource=resource.code,
        hub=sub.hub,
        source_topic=names.source_topic(resource.owner, resource.code),
        delivery_topic=names.delivery_topic(sub.hub, sub.id),
        rules=plan_rules,
        row_filter=row_filter,
        valid_from_ms=valid_from_ms,
        valid_until_ms=valid_until_ms,
        refusal=ent.refusal,
        key_field=resource.key,
        key_masked=key_masked,
        version=version,
        delivery_schema=delivery_schema,
        withheld=tuple(withheld),
        filter_fields=filter_fields,
        _project=project,
        _key_of=key_of,
    )


def _mask_place(origin: str, name: str) -> tuple[str, ...]:
    if origin == "grant minimum":
        return ("grant", "min_masks", name)
    if origin == "catalog default":
        return ("resource", "default_masks", name)
    return ("masks", name)


def _row_filter(
    sub: SubscriptionTerms,
    resource: ResourceTerms,
    resource_schema: Mapping[str, Any],
    visible: tuple[frozenset[str], Entitlement],
    problems: list[PlanProblem],
) -> RowFilter | None:
    """The compiled filter of ``sub``; a field it reads outside ``allowed`` is a problem naming the field.

    A filter is an oracle: from which rows arrive a subscriber learns the values it tests. So it may read
    only what the subscriber sees in clear, or what the owner lists as filterable for it.
    """
    if not sub.filter:
        return None
    allowed, ent = visible
    try:
        row_filter = compile_filter(
            sub.filter, schema_fields_types(resource_schema), where=f"subscription {sub.id}"
        )
    except FilterError as exc:
        problems.append(PlanProblem(("filter",), f"{exc.reason} in `{sub.filter}`"))
        return None
    except PolicyError as exc:
        problems.append(PlanProblem(("filter",), str(exc)))
        return None
    why = dict(ent.withheld)
    masked = {f.name: f.mask for f in ent.fields if f.mask}
    for name in sorted(row_filter.fields - allowed):
        if resource.fields.get(name) is FieldClass.SECRET:
            reason = "it is secret (涉密)"
        elif name in masked:
            reason = f"it is masked ({masked[name]})"
        elif name in why:
            reason = f"it is withheld: {why[name]}"
        else:
            reason = "it is not requested"
        problems.append(
            PlanProblem(
                ("filter",),
                f'row filter reads field "{name}", which the subscriber may not see in clear ({reason}) '
                "and the owner does not list as filterable",
            )
        )
    return row_filter


def schema_fields_types(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level field name -> Avro type of a record schema."""
    return {f["name"]: f["type"] for f in schema["fields"]}


def named_types(schema: Any, namespace: str = "", into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined in ``schema``, by short and by full name."""
    out: dict[str, Any] = {} if into is None else into
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and isinstance(schema.get("name"), str):
            name: str = schema["name"]
            space = schema.get("namespace", namespace) if "." not in name else name.rpartition(".")[0]
            short = name.rpartition(".")[2]
            out[short] = schema
            out[f"{space}.{short}" if space else short] = schema
            namespace = space or ""
        for part in (
            *(f.get("type") for f in schema.get("fields", [])),
            schema.get("items"),
            schema.get("values"),
        ):
            if part is not None:
                named_types(part, namespace, out)
        if isinstance(kind, dict | list):
            named_types(kind, namespace, out)
    return out


def resolve_named(avro_type: Any, named: Mapping[str, Any]) -> Any:
    """``avro_type`` with a reference to a named type replaced by its definition (so masks can check it)."""
    if isinstance(avro_type, list):
        return [resolve_named(t, named) for t in avro_type]
    if isinstance(avro_type, str) and avro_type in named:
        return named[avro_type]
    return avro_type


def _out_field(field: Mapping[str, Any], out_type: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": field["name"], "type": out_type}
    if "doc" in field:
        out["doc"] = field["doc"]
    if isinstance(out_type, list) and out_type and out_type[0] == "null":
        out["default"] = None
    return out


def _version(
    sub: SubscriptionTerms,
    *,
    resource: ResourceTerms,
    rules: list[FieldRule],
    grant: GrantTerms | None,
    refusal: str | None,
    window: tuple[int | None, int | None, bool],
) -> str:
    valid_from_ms, valid_until_ms, key_masked = window
    body = {
        "subscription": sub.id,
        "subscriber": sub.subscriber,
        "resource": resource.code,
        "share": resource.share.value,
        "fields": [[r.name, r.mask.describe() if r.mask else None] for r in rules],
        "filter": sub.filter,
        "valid": [valid_from_ms, valid_until_ms],
        "grant": [grant.decision, grant.reference, grant.legal_basis] if grant else None,
        "refusal": refusal,
        "key_masked": key_masked,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return digest[:16]
