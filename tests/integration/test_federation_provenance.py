"""Federation, issue 17 points 2 and 3 on two real clusters: the city hub applies its own policy on what
the link carried (narrowing only), every record at a city subscriber names its source department, its
source commit time and both hubs, and `xhub audit trace` follows it back through the city's and the
district's audits to the court's source event.

The clusters, the district hub, the city config (a linked resource) and the court's stream are those
of federation_support (district on 19192, city on 19292).
"""

from __future__ import annotations

import io

import pytest

from connectors.testing.kafka import TopicReader
from connectors.testing.runtime import running_sidecar, serde_for
from hub.app import HubProcess
from hub.audit.trace_command import trace_command
from hub.core.provenance import from_headers
from tests.fixtures.federation import RESOURCE
from tests.fixtures.hubkit import wait_for
from tests.integration.federation_support import (
    CITY_FIELDS,
    City,
    Court,
    District,
    at_least,
    city,
    city_hub,
    city_registry,
    clusters,
    district,
    link_on_status_page,
)

pytestmark = pytest.mark.kafka
__all__ = ["city", "city_hub", "city_registry", "clusters", "district"]  # fixtures, used by name


def test_a_city_subscriber_gets_the_narrowed_record_with_both_hops_and_the_trace_reaches_the_source(
    district: District, city: City, city_hub: HubProcess
) -> None:
    court = Court(district)
    court.rounds(keys=8, rounds=3)
    court.close()
    expected = len(court.sent)
    reader = TopicReader(city.kafka, [city.delivery_topic], serde_for(city.registry_url))
    try:
        with running_sidecar(city.connector):
            reader.read_until(at_least(expected), timeout_s=120)
            records = reader.read_quiet(quiet_s=2.0)
            # The city hub's status page shows the link (the hop before it): running, nothing waiting.
            wait_for(lambda: link_on_status_page(city_hub, city.dept) is not None, 90, "the link on the page")
            link = link_on_status_page(city_hub, city.dept)
    finally:
        reader.close()
    assert len(records) == expected, (
        f"{len(records)} deliveries at the city subscriber for {expected} changes"
    )

    for record in records:
        event = record.value
        op, commit = court.sent[(event["key"], event["seq"])]
        assert event["op"] == op
        if event["data"] is not None:  # the city narrows: its fields only, the name masked again
            assert set(event["data"]) == set(CITY_FIELDS)
            assert event["data"]["debtor_name"] != "张三"
        provenance = from_headers(list(record.headers.items()))
        assert provenance is not None, "a city delivery names where it came from"
        assert (provenance.dept, provenance.commit_ts_ms) == (district.court, commit)
        assert [h.hub for h in provenance.hops] == [district.hub_name, city.hub_name]
        first, last = provenance.hops
        assert first.carried is not None
        assert first.carried.startswith(f"{district.delivery_topic}-"), "the link names what it read"
        assert last.policy_version == record.headers["xhub.policy_version"].decode()
        assert first.chain != last.chain

    assert link is not None
    assert (link["state"], link["status"], link["rows"]) == ("running", "OK", 0), link
    assert link["resources"] == [RESOURCE]

    key = "(2025)沪0115执3号"
    out = io.StringIO()
    traces = trace_command(
        str(city.root), city.hub_name, RESOURCE, key, upstream=[str(district.root)], out=out
    )
    print(out.getvalue())  # for the record (-s): what an auditor reads
    assert len(traces) == 3, out.getvalue()  # created, then updated twice
    assert all(t.ok for t in traces), out.getvalue()
    assert all(t.steps[-1].what == "source" for t in traces)
    assert f"{district.court} (enforcement)" in out.getvalue()
    assert key not in out.getvalue(), "the trace finds keys by their hash and never prints them"
