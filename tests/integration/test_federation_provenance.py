"""Federation, issue 17 points 2 and 3 on two real clusters: the city hub applies its own policy on what
the link carried (narrowing only), every record at a city subscriber names its source department, its
source commit time and both hubs, and `xhub audit trace` follows it back through the city's and the
district's audits to the court's source event.

The clusters, the district hub, the city config (a linked resource) and the court's stream are those
of federation_support (district on 19192, city on 19292).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.testing.kafka import TopicReader
from connectors.testing.runtime import running_sidecar, serde_for
from hub.app import HubProcess
from hub.audit.trace_command import trace_command
from hub.core.provenance import from_headers
from hub.monitor.cli import Sampling, lag_command
from hub.monitor.status import Rules
from tests.fixtures.federation import RESOURCE
from tests.fixtures.hubkit import wait_for
from tests.integration.federation_support import (
    CITY_FIELDS,
    COMMIT_BASE_MS,
    SUBSCRIPTION,
    City,
    Court,
    District,
    at_least,
    city,
    city_hub,
    city_registry,
    city_table,
    clusters,
    district,
    link_on_status_page,
    read_city,
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


def lag_json(config: Path, hub: str, *, upstream: tuple[Path, ...] = ()) -> dict[str, Any]:
    """``xhub lag CONFIG --hub HUB --json [--upstream ...]``, one sample."""
    out = io.StringIO()
    more = {"upstream": [str(u) for u in upstream]} if upstream else {}
    lag_command(str(config), hub, Rules(), json_out=True, sampling=Sampling(samples=1), out=out, **more)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def drained(docs: list[dict[str, Any]], doc: dict[str, Any]) -> bool:
    """Keep ``doc`` in ``docs``; whether no hop of its one linked path has anything waiting."""
    docs.append(doc)
    paths = doc.get("federation") or []
    return len(paths) == 1 and all(h["records"] == 0 for h in paths[0]["hops"])


def link_waiting(doc: dict[str, Any]) -> int | None:
    """Records waiting for the link on the district's delivery topic (the second hop)."""
    records: int | None = doc["federation"][0]["hops"][1]["records"]
    return records


def test_xhub_lag_follows_a_linked_subscription_across_both_clusters(
    district: District, city: City, city_hub: HubProcess, tmp_path: Path
) -> None:
    """Issue 17 point 4: each hop's lag, and the age of the oldest waiting change from the court's commit.

    The link keeps its position in the city cluster (``xhub.pos.<link-dept>``), not in a consumer group
    of the district: `xhub lag DISTRICT` alone must not count the link's whole delivery topic as waiting.
    """
    court = Court(district)
    court.rounds(keys=6, rounds=2)
    carried = len(court.sent)
    table = city_table(city, tmp_path)
    with running_sidecar(table.connector):
        with running_sidecar(city.connector):
            read_city(city, city.source_topic, carried, timeout_s=120)
            wait_for(lambda: len(table.receipts()) >= carried, 120, "the changes at the city subscriber")

            alone = lag_json(district.root, district.hub_name)
            [row] = [s for s in alone["subscriptions"] if s["subscription"] == SUBSCRIPTION]
            link_part = row["subscriber_lag"]
            assert link_part["lag_records"] != carried, "the link's topic counted as never read"
            assert link_part["lag_records"] is None, link_part
            assert "position kept at the city cluster" in link_part["reason"], link_part

            # The subscriber's sidecar commits its group offsets after its database transaction.
            docs: list[dict[str, Any]] = []
            wait_for(
                lambda: drained(docs, lag_json(city.root, city.hub_name, upstream=(district.root,))),
                120,
                "xhub lag --upstream showing nothing waiting on the path",
            )
            [path] = docs[-1]["federation"]
            hops = [(h["hop"], h["records"], h["status"]) for h in path["hops"]]
            assert hops == [
                ("hub", 0, "OK"),
                ("link", 0, "OK"),
                ("hub", 0, "OK"),
                ("subscriber", 0, "OK"),
            ], path
            assert [h.get("hub") for h in path["hops"]] == [district.hub_name, None, city.hub_name, None]
            assert path["end_to_end_seconds"] == 0.0, path

        # The link stopped: what the court publishes now waits on the district's delivery topic.
        first_waiting = court.seq + 1
        for n in range(3):
            court.publish(n, "u")
        court.producer.flush()
        court.close()
        wait_for(
            lambda: link_waiting(lag_json(city.root, city.hub_name, upstream=(district.root,))) == 3,
            120,
            "the district's three new deliveries waiting for the link",
        )
        before_ms = time.time() * 1000
        whole = lag_json(city.root, city.hub_name, upstream=(district.root,))
        after_ms = time.time() * 1000
    [path] = whole["federation"]
    district_hub, link, city_hub_hop, subscriber = path["hops"]
    assert (district_hub["records"], link["records"]) == (0, 3), path
    assert (city_hub_hop["records"], subscriber["records"]) == (0, 0), path
    commit_ms = COMMIT_BASE_MS + first_waiting * 7  # the Court's commit time of that change
    assert (
        (before_ms - commit_ms) / 1000 - 1 <= path["end_to_end_seconds"] <= (after_ms - commit_ms) / 1000 + 1
    )
    assert path["end_to_end_seconds"] == link["seconds"], "the oldest waiting change is the link's"
