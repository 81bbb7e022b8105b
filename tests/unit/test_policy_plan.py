"""Policy plans: deny by default, grants, masks, filters, keys, versions.

The no-leak property test is in test_policy_leak.py.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest

from hub.catalog.model import FieldClass, ShareAttribute
from hub.config import load_config
from hub.config.models import Grant, Resource, Subscription
from hub.engine.router import Deliver, Filtered, Refused, route
from hub.policy.errors import PlanError
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


def _grant(sid: str, code: str, **terms: Any) -> Grant:
    body: dict[str, Any] = {
        "subscription": sid,
        "resource": code,
        "decision": "approved",
        "approver": "x",
        "decided_at": datetime(2026, 1, 1, tzinfo=UTC),
        **terms,
    }
    return Grant.model_validate(body)


def _plans() -> dict[str, Any]:
    cfg = load_config(DEMO)
    return {
        sid: compile_plan(
            sub,
            cfg.resources[sub.resource],
            cfg.schemas[sub.resource],
            secret=SECRET,
            grant=cfg.grant_of(sid),
        )
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


def test_conditional_needs_an_approving_grant_and_gets_only_granted_fields() -> None:
    plans = _plans()
    assert plans["housing-persons"].refusal_at(NOW) is None
    assert plans["transport-persons"].refusal_at(NOW) == "no_grant"
    outcomes = route(_event({"id_number": "x"}), [plans["transport-persons"]], NOW)
    assert isinstance(outcomes[0], Refused)
    cfg = load_config(DEMO)
    sub = cfg.subscriptions["housing-persons"]
    res, schema = cfg.resources[sub.resource], cfg.schemas[sub.resource]
    refused = _grant(sub.id, res.code, decision="refused", reason="not needed for the stated purpose")
    assert compile_plan(sub, res, schema, secret=SECRET, grant=refused).refusal == "grant_refused"
    narrow = _grant(sub.id, res.code, fields=["district", "name"])
    plan = compile_plan(sub, res, schema, secret=SECRET, grant=narrow)
    assert plan.fields == ["name", "district"]
    assert dict(plan.withheld)["id_number"] == "not granted"
    assert plan.rules[0].mask is not None  # name: granted, but not in clear: the catalog default masks it


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
    plan = compile_plan(
        sub, cfg.resources["PD-CRD-0001"], schema, secret=SECRET, grant=cfg.grant_of("tax-debtors")
    )
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
    assert housing.key_masked is False  # id_number is in clear: psb's grant says so, with its legal basis
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
    assert deleted.value["key"] != "K1"  # point 6: test_point_6_* below


def test_validity_window_and_revocation() -> None:
    cfg = load_config(DEMO)
    base = cfg.subscriptions["tax-debtors"]
    res, schema = cfg.resources[base.resource], cfg.schemas[base.resource]
    later = datetime.fromtimestamp(NOW / 1000, UTC) + timedelta(days=1)
    plan = compile_plan(base.model_copy(update={"valid_until": later}), res, schema, secret=SECRET)
    assert plan.refusal_at(NOW) is None
    assert plan.refusal_at(NOW + 2 * 86_400_000) == "expired"
    # a grant's valid_until bounds the subscription's window
    bounded = compile_plan(
        base, res, schema, secret=SECRET, grant=_grant(base.id, res.code, valid_until=later)
    )
    assert bounded.refusal_at(NOW) is None
    assert bounded.refusal_at(NOW + 2 * 86_400_000) == "expired"
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
    )
    plan = compile_plan(sub, res, schema, secret=SECRET, grant=_grant("t", res.code))
    assert plan.key_masked
    assert "310115198503071234" not in plan.delivered_key("310115198503071234")


# -- finding (a): the subscriber widened its own entitlement -----------------------------------------------


def _entities() -> tuple[Resource, dict[str, Any]]:
    cfg = load_config(DEMO)
    return cfg.resources["PD-ENT-0001"], cfg.schemas["PD-ENT-0001"]


def test_finding_1_free_text_legal_basis_does_not_put_a_personal_field_in_clear() -> None:
    res, schema = _entities()
    sub = Subscription(
        id="s",
        subscriber="tax",
        resource=res.code,
        hub="pudong",
        fields=["credit_code", "legal_rep_id_number"],
        purpose="x",
        legal_basis="工作需要",  # "needed for work": on main this alone put the ID number in clear
    )
    plan = compile_plan(sub, res, schema, secret=SECRET)
    rule = next(r for r in plan.rules if r.name == "legal_rep_id_number")
    assert rule.mask is not None
    assert rule.mask.kind == "id_number"
    out = plan.project({"credit_code": "91310115MA1K4XXX0X", "legal_rep_id_number": "310115198503071234"})
    assert out["legal_rep_id_number"] == "310115********1234"
    # without a catalog default the field is withheld, never in clear
    bare = res.model_copy(update={"default_masks": {}})
    plan = compile_plan(sub, bare, schema, secret=SECRET)
    assert "legal_rep_id_number" not in plan.fields
    assert dict(plan.withheld)["legal_rep_id_number"] == "personal: no mask, and not granted in clear"


def test_finding_1_only_the_owners_grant_puts_a_personal_field_in_clear_with_its_legal_basis() -> None:
    res, schema = _entities()
    sub = Subscription(
        id="s",
        subscriber="tax",
        resource=res.code,
        hub="pudong",
        fields=["legal_representative"],
        purpose="x",
    )
    granted = compile_plan(
        sub,
        res,
        schema,
        secret=SECRET,
        grant=_grant("s", res.code, clear=["legal_representative"], legal_basis="L"),
    )
    assert granted.rules[0].mask is None
    # a grant that lists the field in clear without a legal basis does not lift the mask (validate refuses it)
    no_basis = compile_plan(
        sub, res, schema, secret=SECRET, grant=_grant("s", res.code, clear=["legal_representative"])
    )
    assert no_basis.rules[0].mask is not None


def test_finding_1_an_approval_listing_fields_cannot_drop_the_owners_masks() -> None:
    cfg = load_config(DEMO)
    sub = cfg.subscriptions["housing-persons"].model_copy(
        update={"masks": {}}
    )  # the subscriber drops its masks
    res, schema = cfg.resources[sub.resource], cfg.schemas[sub.resource]
    grant = _grant(
        sub.id,
        res.code,
        fields=["id_number", "name", "birth_date", "district"],
        min_masks={"id_number": "pseudonym"},
    )
    plan = compile_plan(sub, res, schema, secret=SECRET, grant=grant)
    kinds = {r.name: r.mask.kind if r.mask else None for r in plan.rules}
    assert kinds == {"id_number": "pseudonym", "name": "name", "birth_date": "date_year", "district": None}
    # a weaker request does not weaken the grant's minimum; a stronger one strengthens it
    weaker = sub.model_copy(update={"masks": {"id_number": "id_number", "birth_date": "date_month"}})
    kinds = {
        r.name: r.mask.kind if r.mask else None
        for r in compile_plan(weaker, res, schema, secret=SECRET, grant=grant).rules
    }
    assert kinds["id_number"] == "pseudonym"
    assert kinds["birth_date"] == "date_year"
    stronger = sub.model_copy(update={"masks": {"name": "pseudonym"}})
    rules = compile_plan(stronger, res, schema, secret=SECRET, grant=grant).rules
    assert {r.name: r.origin for r in rules}["name"] == "requested"


def test_finding_1_sensitive_fields_go_out_only_where_a_grant_releases_them() -> None:
    cfg = load_config(DEMO)
    sub = cfg.subscriptions["tax-estates"]
    res, schema = cfg.resources[sub.resource], cfg.schemas[sub.resource]
    assert res.fields["area_m2"] is FieldClass.SENSITIVE
    unreleased = compile_plan(sub, res, schema, secret=SECRET, grant=_grant(sub.id, res.code))
    assert "area_m2" not in unreleased.fields
    assert dict(unreleased.withheld)["area_m2"] == "sensitive, not released by a grant"
    released = compile_plan(sub, res, schema, secret=SECRET, grant=cfg.grant_of(sub.id))
    assert "area_m2" in released.fields
    unconditional = res.model_copy(update={"share": ShareAttribute.UNCONDITIONAL})
    assert "area_m2" not in compile_plan(sub, unconditional, schema, secret=SECRET).fields


# -- finding (b): row filters read fields the subscriber may not see -----------------------------------------


def _credit_code_only(expr: str) -> Subscription:
    return Subscription(
        id="s",
        subscriber="tax",
        resource="PD-ENT-0001",
        hub="pudong",
        fields=["credit_code"],
        purpose="x",
        filter=expr,
    )


def test_finding_2_filter_on_a_hidden_personal_field_is_refused_at_compile() -> None:
    res, schema = _entities()
    with pytest.raises(PlanError) as info:
        compile_plan(
            _credit_code_only('legal_rep_id_number.startsWith("310115198503")'), res, schema, secret=SECRET
        )
    [problem] = info.value.problems
    assert problem.path == ("filter",)
    assert 'field "legal_rep_id_number"' in problem.message
    assert "may not see in clear" in problem.message
    # requested but masked is not visible either
    masked = _credit_code_only('legal_rep_id_number.startsWith("310115198503")').model_copy(
        update={"fields": ["credit_code", "legal_rep_id_number"]}
    )
    with pytest.raises(PlanError, match=r"masked \(id_number\)"):
        compile_plan(masked, res, schema, secret=SECRET)


def test_finding_2_filter_on_a_secret_field_is_refused_at_compile() -> None:
    res, schema = _entities()
    secret = res.model_copy(update={"fields": {**res.fields, "business_scope": FieldClass.SECRET}})
    with pytest.raises(PlanError, match=r'field "business_scope".*secret'):
        compile_plan(_credit_code_only('business_scope.contains("军")'), secret, schema, secret=SECRET)
    # even a grant cannot make a secret field filterable
    grant = _grant("s", res.code, filterable=["business_scope"])
    with pytest.raises(PlanError, match='field "business_scope"'):
        compile_plan(
            _credit_code_only('business_scope.contains("军")'), secret, schema, secret=SECRET, grant=grant
        )


def test_finding_2_filter_may_read_fields_in_clear_or_listed_filterable_by_the_owner() -> None:
    res, schema = _entities()
    assert compile_plan(
        _credit_code_only('credit_code.startsWith("9131")'), res, schema, secret=SECRET
    ).row_filter
    assert compile_plan(_credit_code_only('district == "浦东新区"'), res, schema, secret=SECRET).row_filter
    grant = _grant("s", res.code, filterable=["legal_rep_id_number"])
    plan = compile_plan(
        _credit_code_only("legal_rep_id_number != null"), res, schema, secret=SECRET, grant=grant
    )
    assert plan.row_filter is not None
    assert plan.fields == ["credit_code"]


# -- point 6: deletes for filtered subscriptions carry the keyed pseudonym ----------------------------------


def test_point_6_a_delete_reaches_a_filtered_subscription_only_as_the_keyed_pseudonym() -> None:
    plan = _plans()["lujiazui-debtors"]
    case = "(2024)沪0115执1234号"
    pseudonym = hmac.new(SECRET, case.encode(), hashlib.sha256).hexdigest()[:32]
    for op, data in (("d", None), ("c", _debtor())):
        [out] = route(_event(data, key=case, op=op), [plan], NOW)
        assert isinstance(out, Deliver)
        assert out.key == out.value["key"] == pseudonym  # the same key for the row and its delete
    buf = io.BytesIO()
    [deleted] = route(_event(None, key=case, op="d"), [plan], NOW)
    assert isinstance(deleted, Deliver)
    fastavro.schemaless_writer(buf, fastavro.parse_schema(plan.delivery_schema), deleted.value)
    assert case.encode() not in buf.getvalue()
    assert not _plans()["tax-debtors"].key_masked  # unfiltered: the key in clear, as before


def test_point_6_the_raw_key_only_when_the_owner_lists_the_key_filterable_and_it_is_in_clear() -> None:
    cfg = load_config(DEMO)
    sub = cfg.subscriptions["lujiazui-debtors"]
    res, schema = cfg.resources[sub.resource], cfg.schemas[sub.resource]
    by_catalog = res.model_copy(update={"filterable": [*res.filterable, "case_no"]})
    assert not compile_plan(sub, by_catalog, schema, secret=SECRET).key_masked
    by_grant = compile_plan(
        sub, res, schema, secret=SECRET, grant=_grant(sub.id, res.code, filterable=["case_no"])
    )
    assert not by_grant.key_masked
    masked_key = sub.model_copy(update={"masks": {**sub.masks, "case_no": "pseudonym"}})
    assert compile_plan(masked_key, by_catalog, schema, secret=SECRET).key_masked
