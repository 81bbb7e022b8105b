"""Federation composes (issue 17 point 6): two district hubs -> the city hub -> a province hub, each hop a
hub link crossing from one cluster to another, and a province subscriber's table gets every change of
both districts' courts once, narrowed at each level, each record naming all three hubs.

Two clusters are enough for that, and the test keeps to the two of federation_support: the districts
and the province share the first (each hub with topics of its own, as the demo's hubs share one), the
city has the second. So every link crosses: district -> city from the first cluster to the second, city
-> province from the second back to the first. The province's registry is stored on the first cluster
as the districts' are (subjects are per topic, so none is shared). The links connect as the tests' super
user here, not with their own certificates as in the other federation tests: configs applied
separately to one secure cluster undo each other's ACLs (`xhub apply`'s ledger of the ACLs it created is
per cluster), so Xuhui's apply would remove the Pudong link's READ.

Narrowing: Pudong and Xuhui withhold the obligation (the link's subscription does not ask for it); the
city gives the province no debtor id, type or district and masks the name; the province's subscriber
takes four fields, the name masked again. Xuhui's list has its own code (XH-CRD-0001): a catalog has one
resource per code, and each district's list is its own resource.
"""

from __future__ import annotations

import io
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from connectors.testing.catalog import write_connector_config
from connectors.testing.kafka import TopicReader
from connectors.testing.runtime import running_sidecar, serde_for
from hub.audit.trace_command import trace_command
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.provenance import from_headers
from tests.fixtures.federation import (
    RESOURCE,
    add_linked_resource,
    district_terms,
    linked_schema,
    write_city_config,
)
from tests.fixtures.hubkit import apply_config, wait_for
from tests.integration.federation_support import (
    Court,
    District,
    SubscriberTable,
    assert_applied_exactly_once,
    at_least,
    city_registry,
    clusters,
    district,
    hub_link_source,
    registry_on,
    running_district,
    running_hub,
)

pytestmark = pytest.mark.kafka
__all__ = ["city_registry", "clusters", "district"]  # fixtures, used by name

XUHUI = "XH-CRD-0001"
TO_PROVINCE = ["case_no", "debtor_name", "court", "performance_status", "publish_date"]
"""What the city gives the province's link (of each district's list): no debtor id, type or district."""
PROVINCE_FIELDS = ["case_no", "debtor_name", "court", "performance_status"]
"""What the province's subscriber takes."""
UP = {RESOURCE: "province-pd", XUHUI: "province-xh"}
"""The province link's subscriptions at the city, by resource."""


def test_two_districts_reach_a_province_subscriber_through_the_city_narrowed_and_exactly_once(
    clusters: tuple[KafkaSettings, KafkaSettings],
    city_registry: str,
    district: District,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lower, upper = clusters  # the districts and the province | the city
    monkeypatch.setenv("XHUB_PROVINCE_SECRET", "test-secret-province-0123456789")
    monkeypatch.setenv("XHUB_PROVINCE_AUDIT_KEY", "test-audit-key-province-0123456789")
    token = uuid.uuid4().hex[:6]
    pudong_dept, xuhui_dept = f"pudong-{token}", f"xuhui-{token}"  # the district hubs, at the city
    city_hub, city_dept = f"city-{token}", f"cityhub-{token}"  # the city hub, and as the province names it
    province_hub, province_link = f"province-{token}", f"provlink-{token}"
    subscriber = f"province-credit-{token}"

    with ExitStack() as stack:
        xuhui = stack.enter_context(
            running_district(lower, tmp_path / "xuhui", name="xuhui", resource=XUHUI, area="0104")
        )
        districts = {RESOURCE: (district, pudong_dept), XUHUI: (xuhui, xuhui_dept)}

        # The city: both lists linked, the province's link subscribing to each (narrowed).
        to_province = [
            {
                "id": UP[code],
                "subscriber": province_link,
                "resource": code,
                "hub": city_hub,
                "fields": TO_PROVINCE,
                "masks": {"debtor_name": "name"},
                "purpose": "一处失信、处处受限 at province level: the city's lists climb",
            }
            for code in (RESOURCE, XUHUI)
        ]
        city_root = write_city_config(
            tmp_path / "city",
            dept=pudong_dept,
            hub=city_hub,
            bootstrap=upper.bootstrap_servers,
            registry_url=city_registry,
            district_hub=district.hub_name,
            terms=district_terms(district.root),
            departments=[
                {"id": xuhui_dept, "name": "徐汇区共享交换枢纽 (district hub)"},
                {"id": province_link, "name": "省级共享交换平台 (the province hub's link)"},
            ],
            subscriptions=to_province,
        )
        add_linked_resource(
            city_root,
            dept=xuhui_dept,
            district_hub=xuhui.hub_name,
            terms=district_terms(xuhui.root),
            stem="xuhui",
            resource=XUHUI,
        )
        stack.enter_context(running_hub(apply_config(city_root), city_hub))

        # The province, on the districts' cluster: both of the city's lists linked, its subscriber.
        province_registry = stack.enter_context(registry_on(lower))
        to_subscriber = [
            {
                "id": f"credit-{code.lower()}",
                "subscriber": subscriber,
                "resource": code,
                "hub": province_hub,
                "fields": PROVINCE_FIELDS,
                "masks": {"debtor_name": "name"},
                "purpose": "the province's merged list of dishonest debtors",
            }
            for code in (RESOURCE, XUHUI)
        ]
        province_root = write_city_config(
            tmp_path / "province",
            dept=city_dept,
            hub=province_hub,
            bootstrap=lower.bootstrap_servers,
            registry_url=province_registry,
            district_hub=city_hub,
            terms=district_terms(city_root, UP[RESOURCE]),
            schema=linked_schema(TO_PROVINCE),
            departments=[{"id": subscriber, "name": "省公共信用信息中心"}],
            subscriptions=to_subscriber,
            subscription=UP[RESOURCE],
            secrets="PROVINCE",
            dept_name="市级共享交换平台 (the city hub)",
        )
        add_linked_resource(
            province_root,
            dept=city_dept,
            district_hub=city_hub,
            terms=district_terms(city_root, UP[XUHUI]),
            stem="xuhui",
            schema=linked_schema(TO_PROVINCE),
            resource=XUHUI,
            subscription=UP[XUHUI],
        )
        stack.enter_context(running_hub(apply_config(province_root), province_hub))

        # The three links (district -> city twice, city -> province) and the province's subscriber.
        for code, (down, dept) in districts.items():
            link = write_connector_config(
                tmp_path / f"{dept}-link.yaml",
                dept=dept,
                catalog=city_root,
                bootstrap=upper.bootstrap_servers,
                registry_url=city_registry,
                sources=[down.link_source(f"{code.lower()}-from-district", own_identity=False)],
            )
            stack.enter_context(running_sidecar(link))
        up_sources = [
            hub_link_source(
                f"{code.lower()}-from-city",
                resource=code,
                hub=city_hub,
                subscription=UP[code],
                registry_url=city_registry,
                connection={"bootstrap_servers": upper.bootstrap_servers},
            )
            for code in (RESOURCE, XUHUI)
        ]
        province_side = write_connector_config(
            tmp_path / "province-link.yaml",
            dept=city_dept,
            catalog=province_root,
            bootstrap=lower.bootstrap_servers,
            registry_url=province_registry,
            sources=up_sources,
        )
        stack.enter_context(running_sidecar(province_side))
        table = SubscriberTable.of(
            tmp_path,
            dept=subscriber,
            catalog=province_root,
            kafka=lower,
            registry_url=province_registry,
            hub=province_hub,
        )
        stack.enter_context(running_sidecar(table.connector))

        courts = {code: Court(down) for code, (down, _) in districts.items()}
        for court in courts.values():
            court.rounds(keys=15, rounds=3)
            court.close()
        sent = {change: what for court in courts.values() for change, what in court.sent.items()}
        wait_for(lambda: len(table.receipts()) >= len(sent), 180, "both districts' changes at the province")
        topics = [names.delivery_topic(province_hub, s["id"]) for s in to_subscriber]
        reader = TopicReader(lower, topics, serde_for(province_registry))
        try:
            reader.read_until(at_least(len(sent)), timeout_s=60)
            records = reader.read_quiet(quiet_s=3.0)
        finally:
            reader.close()
        # The trace of one Xuhui key walks back through the province's, the city's and Xuhui's audits
        # (while the registries it decodes with still serve).
        out = io.StringIO()
        traces = trace_command(
            str(province_root),
            province_hub,
            XUHUI,
            "(2025)沪0104执3号",
            upstream=[str(city_root), str(xuhui.root)],
            out=out,
        )
        print(out.getvalue())  # for the record (-s)

    assert_applied_exactly_once(table, sent)
    assert len(records) == len(sent)
    for record in records:
        event = record.value
        down = districts[event["resource"]][0]
        op, commit = courts[event["resource"]].sent[(event["key"], event["seq"])]
        assert event["op"] == op
        if event["data"] is not None:
            assert set(event["data"]) == set(PROVINCE_FIELDS), "narrowed at the province"
            assert event["data"]["debtor_name"] != "张三", "the name masked"
        provenance = from_headers(list(record.headers.items()))
        assert provenance is not None
        assert (provenance.dept, provenance.commit_ts_ms) == (down.court, commit), "the court's change"
        assert [h.hub for h in provenance.hops] == [down.hub_name, city_hub, province_hub], "every hop named"
        assert all(h.carried for h in provenance.hops[:2]), "each link names what it read"
        assert provenance.hops[-1].carried is None
    assert len(traces) == 3, out.getvalue()  # created, then updated twice
    assert all(t.ok for t in traces), out.getvalue()
    assert all(len([s for s in t.steps if s.what == "hop"]) == 3 for t in traces), out.getvalue()
