"""Policy plans: deny by default, approvals, masks, filters, versions; and the delivered bytes never leak."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.catalog.model import FieldClass, ShareAttribute
from hub.config import load_config
from hub.config.models import Approval, Resource, Subscription
from hub.engine.router import DeadLettered, Deliver, Filtered, Refused, route
from hub.policy.plan import compile_plan

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
SECRET = b"unit-test-secret-0123456789"
NOW = int(datetime(2026, 11, 21, tzinfo=UTC).timestamp() * 1000)


def _event(data: dict[str, Any] | None, key: str = "K1", op: str = "c") -> dict[str, Any]:
    return {
        "event_id": "00000000-0000-0000-0000-000000000001",
        "resource": "PD-CRD-0001",
        "op": op,
        "key": key,
        "seq": 7,
        "source": {"dept": "court", "system": "enforcement", "commit_ts_ms": NOW - 5},
        "published_ts_ms": NOW - 3,
        "data": data,
    }


def _debtor(district: str = "浦东新区") -> dict[str, Any]:
    return {
        "case_no": "(2024)沪0115执1234号",
        "debtor_type": "person",
        "debtor_id": "310115198503071234",
        "debtor_name": "张三丰",
        "court": "浦东新区人民法院",
        "obligation": "给付人民币100000元",
        "performance_status": "全部未履行",
        "publish_date": 19000,
        "district": district,
    }


def _plans() -> dict[str, Any]:
    cfg = load_config(DEMO)
    return {
        sid: compile_plan(sub, cfg.resources[sub.resource], cfg.schemas[sub.resource], secret=SECRET)
        for sid, sub in cfg.subscriptions.items()
    }


def test_fields_are_requested_granted_and_classified_only() -> None:
    plans = _plans()
    tax = plans["tax-debtors"]
    assert tax.fields == [
        "case_no",
        "debtor_type",
        "debtor_id",
        "debtor_name",
        "court",
        "performance_status",
        "publish_date",
    ]
    # transport drops the name: the field is not in the delivered schema at all
    assert "debtor_name" not in plans["transport-debtors"].fields
    schema_fields = [
        f["name"] for f in plans["transport-debtors"].delivery_schema["fields"][-1]["type"][1]["fields"]
    ]
    assert "debtor_name" not in schema_fields


def test_conditional_needs_an_approval_and_gets_only_approved_fields() -> None:
    plans = _plans()
    assert plans["housing-persons"].refusal_at(NOW) is None
    assert plans["transport-persons"].refusal_at(NOW) == "approval_pending"
    outcomes = route(_event({"id_number": "x"}), [plans["transport-persons"]], NOW)
    assert isinstance(outcomes[0], Refused)


def test_not_shared_is_refused_again_by_the_engine_even_if_validate_was_bypassed() -> None:
    cfg = load_config(DEMO)
    res = cfg.resources["PD-CRD-0002"]
    sub = Subscription(
        id="sneaky", subscriber="tax", resource=res.code, hub="pudong", fields=["case_no"], purpose="x"
    )
    plan = compile_plan(sub, res, cfg.schemas[res.code], secret=SECRET)
    assert plan.refusal == "not_shared"


def test_new_unclassified_field_is_never_delivered() -> None:
    cfg = load_config(DEMO)
    schema = dict(cfg.schemas["PD-CRD-0001"])
    schema["fields"] = [*schema["fields"], {"name": "new_secret_field", "type": "string"}]
    sub = cfg.subscriptions["tax-debtors"].model_copy(
        update={"fields": [*cfg.subscriptions["tax-debtors"].fields, "new_secret_field"]}
    )
    plan = compile_plan(sub, cfg.resources["PD-CRD-0001"], schema, secret=SECRET)
    assert "new_secret_field" not in plan.fields


def test_masks_change_types_and_values() -> None:
    plans = _plans()
    housing = plans["housing-persons"]
    data_schema = housing.delivery_schema["fields"][-1]["type"][1]
    types = {f["name"]: f["type"] for f in data_schema["fields"]}
    assert types["birth_date"] == "string"  # date generalised to the year: a string now
    out = housing.project(
        {"id_number": "310115198503071234", "name": "李四", "birth_date": 5544, "district": "浦东新区"}
    )
    assert out["birth_date"] == "1985"
    assert housing.key_masked is False  # id_number is delivered unmasked under a legal basis and approval
    tax = plans["tax-debtors"]
    projected = tax.project(_debtor())
    assert projected["debtor_id"] != "310115198503071234"
    assert len(projected["debtor_id"]) >= 16


def test_row_filter_and_deletes() -> None:
    plan = _plans()["lujiazui-debtors"]
    assert isinstance(route(_event(_debtor("黄浦区")), [plan], NOW)[0], Filtered)
    assert isinstance(route(_event(_debtor("浦东新区")), [plan], NOW)[0], Deliver)
    deleted = route(_event(None, op="d"), [plan], NOW)[0]
    assert isinstance(deleted, Deliver)
    assert deleted.value["data"] is None
    assert deleted.value["op"] == "d"


def test_validity_window_and_revocation() -> None:
    cfg = load_config(DEMO)
    base = cfg.subscriptions["tax-debtors"]
    res, schema = cfg.resources[base.resource], cfg.schemas[base.resource]
    later = datetime.fromtimestamp(NOW / 1000, UTC) + timedelta(days=1)
    plan = compile_plan(base.model_copy(update={"valid_until": later}), res, schema, secret=SECRET)
    assert plan.refusal_at(NOW) is None
    assert plan.refusal_at(NOW + 2 * 86_400_000) == "expired"
    revoked = compile_plan(base.model_copy(update={"active": False}), res, schema, secret=SECRET)
    assert revoked.refusal_at(NOW) == "revoked"
    assert revoked.version != plan.version


def test_policy_version_is_stable_and_sensitive() -> None:
    a, b = _plans(), _plans()
    assert a["tax-debtors"].version == b["tax-debtors"].version
    assert len({p.version for p in a.values()}) == len(a)


def test_masked_key_is_pseudonymised() -> None:
    cfg = load_config(DEMO)
    res, schema = cfg.resources["PD-POP-0001"], cfg.schemas["PD-POP-0001"]
    sub = Subscription(
        id="t",
        subscriber="tax",
        resource=res.code,
        hub="pudong",
        fields=["id_number", "district"],
        purpose="x",
        masks={"id_number": "id_number"},
        approval=Approval(status="approved", approved_by="x", approved_at=datetime(2026, 1, 1, tzinfo=UTC)),
    )
    plan = compile_plan(sub, res, schema, secret=SECRET)
    assert plan.key_masked
    assert "310115198503071234" not in plan.delivered_key("310115198503071234")


# -- property: the delivered bytes never carry a field outside the plan, or a masked field's raw value -------

# Letters outside hex, so a value cannot hide in a uuid or a hash by chance.
MARK = st.text(alphabet="GHJKLMNPQRSTUVWXYZ", min_size=12, max_size=12)
FIELD_CLASSES = [
    FieldClass.PUBLIC,
    FieldClass.INTERNAL,
    FieldClass.SENSITIVE,
    FieldClass.PERSONAL,
    FieldClass.SECRET,
    None,
]
MASKS = [None, "id_number", "phone", "name", "address", "email", "pseudonym", "drop"]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Subscription, Resource, dict[str, Any], dict[str, str]]:
    n = draw(st.integers(min_value=2, max_value=8))
    names = [f"f{i}" for i in range(n)]
    classes = {name: draw(st.sampled_from(FIELD_CLASSES)) for name in names}
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "t",
        "fields": [{"name": x, "type": "string"} for x in names],
    }
    share = draw(st.sampled_from(list(ShareAttribute)))
    resource = Resource.model_validate(
        {
            "code": "PD-TAX-0001",
            "name": "r",
            "owner": "a",
            "schema": "x",
            "key": "f0",
            "share": share,
            "legal_basis": "law",
            "fields": {k: v for k, v in classes.items() if v is not None},
        }
    )
    requested = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    masks = {name: m for name in requested if (m := draw(st.sampled_from(MASKS))) is not None}
    approved_fields = draw(st.one_of(st.none(), st.lists(st.sampled_from(requested), unique=True)))
    approval = draw(
        st.sampled_from(
            [
                None,
                Approval(
                    status="approved",
                    approved_by="x",
                    approved_at=datetime(2026, 1, 1, tzinfo=UTC),
                    fields=approved_fields,
                ),
                Approval(status="pending"),
            ]
        )
    )
    sub = Subscription(
        id="s",
        subscriber="b",
        resource="PD-TAX-0001",
        hub="h",
        fields=requested,
        purpose="p",
        legal_basis=draw(st.sampled_from([None, "basis"])),
        masks=masks,
        approval=approval,
    )
    # Distinct, same-length values: one can never be found inside another by accident.
    values = dict(zip(names, draw(st.lists(MARK, unique=True, min_size=n, max_size=n)), strict=True))
    return sub, resource, schema, values


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_delivered_bytes_never_leak(
    case: tuple[Subscription, Resource, dict[str, Any], dict[str, str]],
) -> None:
    sub, resource, schema, values = case
    plan = compile_plan(sub, resource, schema, secret=SECRET)
    event = {**_event(values, key=values["f0"]), "resource": resource.code}
    outcomes = route(event, [plan], NOW)
    assert len(outcomes) == 1
    outcome = outcomes[0]
    if not isinstance(outcome, Deliver):
        assert isinstance(outcome, Refused | Filtered | DeadLettered)
        return
    parsed = fastavro.parse_schema(plan.delivery_schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, outcome.value)
    raw = buf.getvalue()
    allowed_clear = {r.name for r in plan.rules if r.mask is None}
    for name, value in values.items():
        if name in allowed_clear:
            continue
        assert value.encode() not in raw, f"raw value of {name} leaked (mask={sub.masks.get(name)})"
    cls_ok = {n for n, c in resource.fields.items() if c is not FieldClass.SECRET}
    for rule in plan.rules:
        assert rule.name in sub.fields
        assert rule.name in cls_ok
        if resource.fields[rule.name] is FieldClass.PERSONAL and not sub.legal_basis:
            assert rule.mask is not None
    if resource.share is ShareAttribute.NOT_SHARED:
        raise AssertionError("a not-shared resource was delivered")
