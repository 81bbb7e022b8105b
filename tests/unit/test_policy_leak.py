"""Property: whatever the catalog, the subscriber's request and the owner's grant say, the delivered bytes
never carry a value the plan does not allow in clear, and the plan allows only what the owner granted.

Random resources (every field class, catalog default masks, filterable fields), subscriptions (fields,
masks, a row filter on any field), grants (approved or refused, fields, clear with or without a legal
basis, minimum masks, filterable fields, sensitive fields released; also contradictory ones that validate
would refuse: the hub must stay safe), null values, and deletes to filtered subscriptions.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from datetime import UTC, datetime
from typing import Any

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.catalog.model import FieldClass, ShareAttribute
from hub.config.models import Grant, Resource, Subscription
from hub.engine.router import DeadLettered, Deliver, Filtered, Refused, route
from hub.policy.entitlement import strength
from hub.policy.errors import PlanError
from hub.policy.plan import DeliveryPlan, compile_plan

SECRET = b"unit-test-secret-0123456789"
NOW = int(datetime(2026, 11, 21, tzinfo=UTC).timestamp() * 1000)
# Letters outside hex, so a value cannot hide in a uuid or a hash by chance.
MARK = st.text(alphabet="GHJKLMNPQRSTUVWXYZ", min_size=12, max_size=12)
CLASSES = [*FieldClass, None]
MASKS = [
    None,
    "id_number",
    "phone",
    "name",
    "address",
    "email",
    "pseudonym",
    "date_year",
    "date_month",
    "drop",
]
Case = tuple[Subscription, Resource, Grant | None, dict[str, Any], dict[str, Any]]


def _subset(draw: st.DrawFn, names: list[str]) -> list[str]:
    return draw(st.lists(st.sampled_from(names), unique=True)) if names else []


def _mask_map(draw: st.DrawFn, names: list[str]) -> dict[str, str]:
    return {n: m for n in names if (m := draw(st.sampled_from(MASKS))) is not None}


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Case, dict[str, Any], str]:
    n = draw(st.integers(min_value=2, max_value=7))
    names = [f"f{i}" for i in range(n)]
    classes = {name: draw(st.sampled_from(CLASSES)) for name in names}
    personal = [x for x, c in classes.items() if c is FieldClass.PERSONAL]
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "t",
        "fields": [{"name": x, "type": ["null", "string"], "default": None} for x in names],
    }
    resource = Resource.model_validate(
        {
            "code": "PD-TAX-0001",
            "name": "r",
            "owner": "a",
            "schema": "x",
            "key": "f0",
            "share": draw(st.sampled_from(list(ShareAttribute))),
            "legal_basis": "law",
            "fields": {k: v for k, v in classes.items() if v is not None},
            "default_masks": _mask_map(draw, _subset(draw, personal)),
            "filterable": _subset(draw, names),
        }
    )
    requested = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    grant: Grant | None = None
    if draw(st.booleans()):
        grant = Grant(
            subscription="s",
            resource="PD-TAX-0001",
            decision=draw(st.sampled_from(["approved", "approved", "refused"])),
            reason="r",
            legal_basis=draw(st.sampled_from([None, "basis"])),
            fields=draw(st.one_of(st.none(), st.lists(st.sampled_from(names), unique=True))),
            clear=_subset(draw, names),
            min_masks=_mask_map(draw, _subset(draw, names)),
            filterable=_subset(draw, names),
            release_sensitive=_subset(draw, names),
        )
    filter_field = draw(st.sampled_from([None, *names]))
    values = dict(zip(names, draw(st.lists(MARK, unique=True, min_size=n, max_size=n)), strict=True))
    if filter_field is not None:
        op = draw(st.sampled_from(["==", "!="]))
        literal = draw(st.sampled_from([f'"{values[filter_field]}"', "null"]))
        expr: str | None = f"{filter_field} {op} {literal}"
    else:
        expr = None
    sub = Subscription(
        id="s",
        subscriber="b",
        resource="PD-TAX-0001",
        hub="h",
        fields=requested,
        purpose="p",
        legal_basis=draw(st.sampled_from([None, "工作需要"])),  # never lifts a mask
        masks=_mask_map(draw, requested),
        filter=expr,
    )
    # Null values: a field may be null in the record (the key stays set: it is also the message key).
    data: dict[str, Any] = {k: (None if k != "f0" and draw(st.booleans()) else v) for k, v in values.items()}
    return (sub, resource, grant, schema, values), data, draw(st.sampled_from(["c", "u", "d"]))


def _event(data: dict[str, Any] | None, key: str, op: str) -> dict[str, Any]:
    return {
        "event_id": "00000000-0000-0000-0000-000000000001",
        "resource": "PD-TAX-0001",
        "op": op,
        "key": key,
        "seq": 7,
        "source": {"dept": "a", "system": "s", "commit_ts_ms": NOW - 5},
        "published_ts_ms": NOW - 3,
        "data": data,
    }


def _check_entitlement(
    plan: DeliveryPlan, sub: Subscription, resource: Resource, grant: Grant | None
) -> None:
    approved = grant if grant is not None and grant.decision == "approved" else None
    owner_filterable = set(resource.filterable) | set(approved.filterable if approved else [])
    for rule in plan.rules:
        cls = resource.fields.get(rule.name)
        assert rule.name in sub.fields
        assert cls not in (None, FieldClass.SECRET), rule.name
        if approved is not None and approved.fields is not None:
            assert rule.name in approved.fields
        if cls is FieldClass.SENSITIVE:
            assert approved is not None
            assert rule.name in approved.release_sensitive
        kind = rule.mask.kind if rule.mask else None
        assert strength(kind) >= strength(sub.masks.get(rule.name)), "a requested mask was weakened"
        if approved is not None:
            assert strength(kind) >= strength(approved.min_masks.get(rule.name)), "below the grant's minimum"
        lifted = cls is FieldClass.PERSONAL and approved is not None and rule.name in approved.clear
        if not lifted:
            assert strength(kind) >= strength(resource.default_masks.get(rule.name)), (
                "below the catalog default"
            )
        if cls is FieldClass.PERSONAL and kind is None:
            assert approved is not None
            assert approved.legal_basis
            assert rule.name in approved.clear
    clear = {r.name for r in plan.rules if r.mask is None}
    if plan.row_filter is not None:
        assert plan.row_filter.fields <= clear | owner_filterable, "the filter reads a hidden field"
        if not plan.key_masked:
            assert "f0" in clear
            assert "f0" in owner_filterable
    if not plan.key_masked:
        assert "f0" in clear


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_delivered_bytes_never_leak(drawn: tuple[Case, dict[str, Any], str]) -> None:
    (sub, resource, grant, schema, values), data, op = drawn
    plan: DeliveryPlan | None = None
    try:
        plan = compile_plan(sub, resource, schema, secret=SECRET, grant=grant)
    except PlanError as exc:
        problems = exc.problems
    else:
        problems = ()
    # The only refusal possible here: a filter on a field the subscriber may not see.
    assert all(p.path == ("filter",) for p in problems), problems
    assert all("may not see" in p.message for p in problems), problems
    if plan is None:
        return
    _check_entitlement(plan, sub, resource, grant)
    key = values["f0"]
    event = _event(None if op == "d" else data, key, op)
    outcomes = route(event, [plan], NOW)
    assert len(outcomes) == 1
    outcome = outcomes[0]
    if not isinstance(outcome, Deliver):
        assert isinstance(outcome, Refused | Filtered | DeadLettered)
        return
    assert resource.share is not ShareAttribute.NOT_SHARED, "a not-shared resource was delivered"
    if resource.share is ShareAttribute.CONDITIONAL:
        assert grant is not None, "conditional without a grant"
        assert grant.decision == "approved", "conditional without an approving grant"
    assert grant is None or grant.decision == "approved", "delivered under a refused grant"
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(plan.delivery_schema), outcome.value)
    raw = buf.getvalue()
    allowed_clear = {r.name for r in plan.rules if r.mask is None} if op != "d" else set()
    for name, value in values.items():
        if name in allowed_clear or (name == "f0" and not plan.key_masked):
            continue
        assert value.encode() not in raw, f"raw value of {name} leaked (op {op})"
    if plan.key_masked:
        assert outcome.key == hmac.new(SECRET, key.encode(), hashlib.sha256).hexdigest()[:32]
