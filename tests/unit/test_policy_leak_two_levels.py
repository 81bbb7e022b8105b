"""Property (issue 17): nothing reaches a city subscriber that the district's policy did not let climb.

A random district level (catalog entry, the link's subscription, the owner's grant, on random fields
whose values are unique marks) delivers a record to the link; the city knows it as a linked resource
(the district's delivery record as its schema) with its own random classification, subscription and
grant, including grants that ``xhub validate`` refuses (a field the district masked asked for in
clear): the city hub must stay safe without the validator. No original value the district did not
deliver in clear may appear in the bytes the city delivers. Both levels compile and route as the hubs do.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hub.catalog.model import FieldClass, ShareAttribute
from hub.config.models import Grant, Resource, Subscription
from hub.engine.router import Deliver, route
from hub.policy.errors import PlanError
from hub.policy.plan import DeliveryPlan, compile_plan
from tests.unit.test_policy_leak import CLASSES, MARK, NOW, SECRET, _event, _mask_map, _subset

CITY_SECRET = b"unit-test-city-secret-0123456789"


def _data_schema(plan: DeliveryPlan) -> dict[str, Any]:
    """The record type of the district's delivery: the city's schema of the linked resource."""
    data = next(f for f in plan.delivery_schema["fields"] if f["name"] == "data")
    record = next(t for t in data["type"] if isinstance(t, dict))
    return dict(record)


@st.composite
def policy_side(
    draw: st.DrawFn, names: list[str], *, owner: str, sub_id: str
) -> tuple[Resource, Subscription, Grant | None]:
    """A catalog entry, a subscription and maybe a grant on fields ``names`` (key ``f0``), mostly ones
    that deliver (a level that delivers nothing tests nothing), some that validate would refuse."""
    likely = [FieldClass.PUBLIC, FieldClass.PERSONAL, FieldClass.INTERNAL, *CLASSES]
    classes = {name: draw(st.sampled_from(likely)) for name in names}
    if draw(st.integers(0, 3)):
        classes["f0"] = FieldClass.PUBLIC  # the key in clear: what a link can carry
    personal = [x for x, c in classes.items() if c is FieldClass.PERSONAL]
    resource = Resource.model_validate(
        {
            "code": "PD-TAX-0001",
            "name": "r",
            "owner": owner,
            "schema": "x",
            "key": "f0",
            "share": draw(st.sampled_from([ShareAttribute.UNCONDITIONAL] * 3 + list(ShareAttribute))),
            "legal_basis": "law",
            "fields": {k: v for k, v in classes.items() if v is not None},
            "default_masks": _mask_map(draw, _subset(draw, personal)),
        }
    )
    requested = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    if draw(st.integers(0, 3)) and "f0" not in requested:
        requested.append("f0")
    grant = None
    if draw(st.booleans()):
        grant = Grant(
            subscription=sub_id,
            resource="PD-TAX-0001",
            decision=draw(st.sampled_from(["approved", "approved", "refused"])),
            reason="r",
            legal_basis="basis",
            fields=draw(st.one_of(st.none(), st.lists(st.sampled_from(names), unique=True))),
            clear=_subset(draw, names),  # at the city: may ask in clear for what the district masked
            min_masks=_mask_map(draw, _subset(draw, names)),
            release_sensitive=_subset(draw, names),
        )
    sub = Subscription(
        id=sub_id,
        subscriber="b",
        resource="PD-TAX-0001",
        hub="h",
        fields=requested,
        purpose="p",
        masks=_mask_map(draw, requested),
    )
    return resource, sub, grant


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_nothing_reaches_a_city_subscriber_that_the_district_did_not_let_climb(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=2, max_value=7))
    names = [f"f{i}" for i in range(n)]
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "t",
        "fields": [{"name": x, "type": ["null", "string"], "default": None} for x in names],
    }
    values = dict(zip(names, data.draw(st.lists(MARK, unique=True, min_size=n, max_size=n)), strict=True))
    record = {k: (None if k != "f0" and data.draw(st.booleans()) else v) for k, v in values.items()}
    resource, sub, grant = data.draw(policy_side(names, owner="court", sub_id="s"))
    try:
        district = compile_plan(sub, resource, schema, secret=SECRET, grant=grant)
    except PlanError:
        return
    [outcome] = route(_event(record, values["f0"], "u"), [district], NOW)
    if not isinstance(outcome, Deliver) or district.key_masked:
        return  # nothing climbs (a link carries only records with their key in clear)
    event("climbed to the city")
    city_schema = _data_schema(district)
    city_names = [f["name"] for f in city_schema["fields"]]
    city_resource, city_sub, city_grant = data.draw(policy_side(city_names, owner="district", sub_id="c"))
    try:
        city = compile_plan(city_sub, city_resource, city_schema, secret=CITY_SECRET, grant=city_grant)
    except PlanError:
        return
    [at_city] = route(_event(outcome.value["data"], outcome.key, "u"), [city], NOW)
    if not isinstance(at_city, Deliver):
        return
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(city.delivery_schema), at_city.value)
    raw = buf.getvalue()
    event("delivered at the city")
    climbed_clear = {r.name for r in district.rules if r.mask is None} | {"f0"}
    for name, value in values.items():
        if name not in climbed_clear:
            assert value.encode() not in raw, f"{name}: withheld or masked by the district, shown by the city"
