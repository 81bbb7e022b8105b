"""Compile a subscription into a delivery plan. Pure: no I/O, so every rule is testable in isolation.

fields  = requested ∩ granted ∩ classified (deny by default: an unclassified or new field never goes out)
masks   = per field; a personal field without a mask (and without a legal basis) is left out
filter  = row filter compiled once
state   = deliverable, or refused with a reason (not shared, approval missing/pending/expired,
          revoked, outside the validity window)
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

from hub.catalog.model import FieldClass, ShareAttribute
from hub.core import names
from hub.core.envelope import change_event_schema
from hub.policy.errors import FilterError, MaskRuntimeError, PlanError, PlanProblem, PolicyError
from hub.policy.filters import RowFilter, compile_filter
from hub.policy.masks import Mask, build_mask
from hub.policy.terms import ResourceTerms, SubscriptionTerms

# A schema-only compile (plan/apply) has no hub secret; pseudonym output types do not depend on it.
_SCHEMA_ONLY_SECRET = b"schema-only-placeholder-key"


@dataclass(frozen=True)
class FieldRule:
    name: str
    mask: Mask | None
    out_type: Any


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
    refusal: str | None  # permanent refusal (not shared, no approval, revoked); None = deliverable
    key_field: str
    key_masked: bool
    version: str
    delivery_schema: dict[str, Any]
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


def compile_plan(  # noqa: PLR0912, PLR0915 - the rules of a plan, in the order the docstring gives them
    sub: SubscriptionTerms,
    resource: ResourceTerms,
    resource_schema: Mapping[str, Any],
    *,
    secret: bytes | None,
) -> DeliveryPlan:
    """Compile ``sub`` against its resource. ``secret`` keys the pseudonyms (None: schema-only use).

    Raises:
        PlanError: every mask that cannot apply to its field and a row filter that does not compile,
            each with its place in the subscription (``("masks", field)``, ``("filter",)``).
    """
    key_secret = secret if secret is not None else _SCHEMA_ONLY_SECRET
    schema_fields = {f["name"]: f for f in resource_schema["fields"]}
    named = named_types(resource_schema)
    problems: list[PlanProblem] = []
    granted: set[str] | None = None
    refusal: str | None = None
    if not sub.active:
        refusal = "revoked"
    elif resource.share is ShareAttribute.NOT_SHARED:
        refusal = "not_shared"
    elif resource.share is ShareAttribute.CONDITIONAL:
        approval = sub.approval
        if approval is None:
            refusal = "no_approval"
        elif approval.status != "approved":
            refusal = f"approval_{approval.status}"
        else:
            granted = set(approval.fields) if approval.fields is not None else None

    valid_until = sub.valid_until
    if (
        sub.approval is not None
        and sub.approval.status == "approved"
        and sub.approval.valid_until is not None
    ):
        approval_until = sub.approval.valid_until
        valid_until = approval_until if valid_until is None else min(valid_until, approval_until, key=_ms)  # type: ignore[arg-type]

    rules: list[FieldRule] = []
    for name in sub.fields:
        field = schema_fields.get(name)
        cls = resource.fields.get(name)
        if field is None or cls is None or not cls.deliverable:
            continue  # not in the schema, unclassified or secret: deny by default
        if granted is not None and name not in granted:
            continue  # not approved
        mask_kind = sub.masks.get(name)
        if cls is FieldClass.PERSONAL and mask_kind is None and not sub.legal_basis:
            continue  # personal data goes out masked, or on a named legal basis
        mask: Mask | None = None
        out_type = field["type"]
        if mask_kind:
            try:
                mask = build_mask(mask_kind, secret=key_secret)
                out_type = mask.output_type(resolve_named(field["type"], named))
            except PolicyError as exc:
                problems.append(PlanProblem(("masks", name), f'field "{name}": {exc}'))
                continue
        if out_type is None:
            continue  # "drop"
        rules.append(FieldRule(name, mask, out_type))

    key_rule = next((r for r in rules if r.name == resource.key), None)
    key_masked = key_rule is None or key_rule.mask is not None
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

    row_filter: RowFilter | None = None
    if sub.filter:
        try:
            row_filter = compile_filter(
                sub.filter, schema_fields_types(resource_schema), where=f"subscription {sub.id}"
            )
        except FilterError as exc:
            problems.append(PlanProblem(("filter",), f"{exc.reason} in `{sub.filter}`"))
        except PolicyError as exc:
            problems.append(PlanProblem(("filter",), str(exc)))
    if problems:
        raise PlanError(sub.id, problems)
    valid_from_ms, valid_until_ms = _ms(sub.valid_from), _ms(valid_until)
    version = _version(
        sub,
        resource=resource,
        rules=rules,
        refusal=refusal,
        valid_from_ms=valid_from_ms,
        valid_until_ms=valid_until_ms,
        key_masked=key_masked,
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
        refusal=refusal,
        key_field=resource.key,
        key_masked=key_masked,
        version=version,
        delivery_schema=delivery_schema,
        _project=project,
        _key_of=key_of,
    )


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
    refusal: str | None,
    valid_from_ms: int | None,
    valid_until_ms: int | None,
    key_masked: bool,
) -> str:
    body = {
        "subscription": sub.id,
        "subscriber": sub.subscriber,
        "resource": resource.code,
        "share": resource.share.value,
        "fields": [[r.name, r.mask.describe() if r.mask else None] for r in rules],
        "filter": sub.filter,
        "valid": [valid_from_ms, valid_until_ms],
        "approval": [sub.approval.status, sub.approval.reference] if sub.approval else None,
        "refusal": refusal,
        "key_masked": key_masked,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return digest[:16]
