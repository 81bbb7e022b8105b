"""``xhub lag --upstream`` (issue 17 point 4), pure parts: a linked subscription's hops joined across
levels, the end-to-end age, the text and JSON; a hub link's position read from its record; a link's
subscriber lag at the district when its position is kept at the city cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub.config import load_config
from hub.monitor.board import KindView, LagBoard, SubscriptionLag
from hub.monitor.cli import lag_document
from hub.monitor.federated_path import format_linked_paths, linked_paths
from hub.monitor.lag import HUB, SUBSCRIBER, GroupLag, PartitionLag, Target, targets_of_config
from hub.monitor.lag.link_position import position_on
from hub.monitor.lag.probe import POSITION_KEPT_ELSEWHERE
from hub.monitor.lag_text import format_lag_table
from hub.monitor.status import Rules, Status, Verdict
from hub.monitor.text import format_seconds
from hub.monitor.upstream import links_of
from tests.fixtures.federation import (
    LINK_SUBSCRIPTION,
    RESOURCE,
    add_link_subscription,
    district_terms,
    write_city_config,
)
from tests.fixtures.plugin import DEMO_CONFIG

NOW_MS = 1_800_000_000_000
COMMIT_MS = NOW_MS - 42_000  # the court's commit of the oldest change waiting somewhere


def target(
    hub: str, sub: str, subscriber: str, owner: str, *, hub_link: bool = False, resource: str = RESOURCE
) -> Target:
    return Target(
        hub,
        sub,
        subscriber,
        resource,
        owner,
        f"xhub.src.{owner}.pd-crd-0001",
        f"xhub.dlv.{hub}.{sub}",
        hub_link=hub_link,
    )


def view(
    kind: str, waiting: int = 0, *, commit_ms: int | None = None, status: Status = Status.OK
) -> KindView:
    parts = (PartitionLag(0, 100, 100 - waiting, 100 - waiting, waiting, commit_ms, commit_ms),)
    lag = GroupLag(kind, "g", "t", NOW_MS, parts, members=None)
    return KindView(lag, Verdict(status, "reason" if status is not Status.OK else ""))


def row(t: Target, hub: KindView, subscriber: KindView) -> SubscriptionLag:
    return SubscriptionLag(t, hub, subscriber)


DISTRICT = target("pudong", LINK_SUBSCRIPTION, "citylink", "court", hub_link=True)
CITY = target("city", "centre-debtors", "credit-centre", "pudong-link")
LINKS = {("city", RESOURCE): ("pudong", LINK_SUBSCRIPTION)}


def test_the_hops_run_from_the_district_hub_through_the_link_to_the_city_subscriber() -> None:
    upstream = {
        ("pudong", LINK_SUBSCRIPTION): row(DISTRICT, view(HUB), view(SUBSCRIBER, 3, commit_ms=COMMIT_MS))
    }
    city = row(CITY, view(HUB), view(SUBSCRIBER, 1, commit_ms=NOW_MS - 2_000))
    other = row(target("city", "own", "tax", "amr", resource="PD-ENT-0001"), view(HUB), view(SUBSCRIBER))
    [path] = linked_paths([city, other], upstream, LINKS)  # a subscription on no linked resource: no path
    assert [(h.kind, h.name, h.records) for h in path.hops] == [
        ("hub", "pudong", 0),
        ("link", "pudong-link", 3),
        ("hub", "city", 0),
        ("subscriber", "credit-centre", 1),
    ]
    assert path.hops[1].topic == f"xhub.dlv.pudong.{LINK_SUBSCRIPTION}", (
        "the link reads the district's delivery"
    )
    assert path.end_to_end_seconds == 42.0, "the oldest waiting change, from its source commit"
    doc = path.to_json()
    assert doc["end_to_end_seconds"] == 42.0
    assert [h.get("hub") for h in doc["hops"]] == ["pudong", None, "city", None]
    assert doc["hops"][1]["department"] == "pudong-link"
    assert json.dumps(doc)  # JSON-ready


def test_a_drained_path_is_zero_seconds_and_a_slow_hop_sets_the_status() -> None:
    upstream = {
        ("pudong", LINK_SUBSCRIPTION): row(DISTRICT, view(HUB, status=Status.STALL), view(SUBSCRIBER))
    }
    [path] = linked_paths([row(CITY, view(HUB), view(SUBSCRIBER))], upstream, LINKS)
    assert path.end_to_end_seconds == 0.0
    assert path.status is Status.STALL
    assert "STALL, nothing waiting" in format_linked_paths([path])


def test_an_upstream_hub_not_given_is_a_hop_not_measured_and_says_so() -> None:
    [path] = linked_paths([row(CITY, view(HUB), view(SUBSCRIBER))], {}, LINKS)
    assert [h.kind for h in path.hops] == ["link", "hub", "subscriber"]
    assert path.hops[0].records is None
    assert "pudong is in none of the --upstream configs" in path.hops[0].reason
    assert path.status is Status.WARN
    assert path.end_to_end_seconds is None, "unknown: nothing known waits, and a hop is not known"
    text = format_linked_paths([path])
    assert "pudong is in none of the --upstream configs" in text
    assert "end to end unknown (a hop is not measured)" in text


def test_three_levels_chain_the_hops_of_each_link() -> None:
    province = target("province", "top", "office", "city-link")
    links = {**LINKS, ("province", RESOURCE): ("city", "province-feed")}
    city_feed = target("city", "province-feed", "provlink", "pudong-link", hub_link=True)
    upstream = {
        ("pudong", LINK_SUBSCRIPTION): row(DISTRICT, view(HUB), view(SUBSCRIBER)),
        ("city", "province-feed"): row(city_feed, view(HUB), view(SUBSCRIBER, 2, commit_ms=COMMIT_MS)),
    }
    [path] = linked_paths([row(province, view(HUB), view(SUBSCRIBER))], upstream, links)
    assert [(h.kind, h.name) for h in path.hops] == [
        ("hub", "pudong"),
        ("link", "pudong-link"),
        ("hub", "city"),
        ("link", "city-link"),
        ("hub", "province"),
        ("subscriber", "office"),
    ]
    assert path.end_to_end_seconds == 42.0


def test_linked_resources_that_loop_stop_at_the_first_repeat() -> None:
    loop = {("city", RESOURCE): ("city", "centre-debtors")}
    upstream = {("city", "centre-debtors"): row(CITY, view(HUB), view(SUBSCRIBER))}
    [path] = linked_paths([row(CITY, view(HUB), view(SUBSCRIBER))], upstream, loop)
    assert [h.kind for h in path.hops] == ["hub", "link", "hub", "subscriber"]


def test_the_text_names_each_hop_with_its_waiting_records_and_age() -> None:
    upstream = {
        ("pudong", LINK_SUBSCRIPTION): row(DISTRICT, view(HUB), view(SUBSCRIBER, 3, commit_ms=COMMIT_MS))
    }
    [path] = linked_paths([row(CITY, view(HUB), view(SUBSCRIBER))], upstream, LINKS)
    lines = format_linked_paths([path]).splitlines()
    assert "city/centre-debtors (credit-centre, PD-CRD-0001): OK" in lines[1]
    assert "oldest waiting change 42s after its source commit" in lines[1]
    link = next(line for line in lines if line.strip().startswith("link"))
    assert link.split()[1:5] == ["pudong-link", f"xhub.dlv.pudong.{LINK_SUBSCRIPTION}", "OK", "3"]


def test_format_seconds_past_a_day() -> None:
    assert format_seconds(90_000) == "1d01h"


# -- the link's position, as the link stores it --------------------------------------------------------
def test_a_position_record_of_the_link_on_that_topic() -> None:
    value = json.dumps({"position": {"topic": "xhub.dlv.p.s", "offsets": {"0": 812, "1": 7}}, "ts_ms": 5})
    assert position_on(value.encode(), "xhub.dlv.p.s") == (5, {0: 812, 1: 7})
    assert position_on(value.encode(), "xhub.dlv.p.other") is None
    other_source = json.dumps({"position": {"lsn": "0/16B3748"}, "ts_ms": 5}).encode()
    assert position_on(other_source, "xhub.dlv.p.s") is None
    assert position_on(b"not json", "xhub.dlv.p.s") is None
    assert position_on(None, "xhub.dlv.p.s") is None  # a tombstone


# -- at the district alone: the link's position is not there ---------------------------------------------
class _Elsewhere:
    """A probe whose link subscription's subscriber lag is kept elsewhere (as LagProbe without positions)."""

    def measure(self, targets: list[Target]) -> dict[tuple[str, str], GroupLag]:
        out = {}
        for t in targets:
            out[(t.subscription, HUB)] = GroupLag(HUB, "xhub-hub-pudong", t.source_topic, NOW_MS, ())
            out[(t.subscription, SUBSCRIBER)] = GroupLag(
                SUBSCRIBER,
                "link-position:citylink",
                t.delivery_topic,
                NOW_MS,
                elsewhere=POSITION_KEPT_ELSEWHERE,
            )
        return out


def test_a_link_position_kept_at_the_city_is_no_number_and_no_fault_at_the_district() -> None:
    board = LagBoard(_Elsewhere(), Rules())
    [r] = board.refresh([DISTRICT])
    assert r.status is Status.OK, "the district cannot judge the link: not a fault"
    assert r.subscriber.records is None
    assert r.subscriber.lag.lag_seconds is None
    doc = lag_document([r], board.rules)["subscriptions"][0]["subscriber_lag"]
    assert doc["lag_records"] is None
    assert "position kept at the city cluster" in doc["reason"]
    line = format_lag_table([r]).splitlines()[1]
    assert "n/a" in line
    assert "subscriber: position kept at the city cluster" in line


# -- configs: which subscriber is a link, and where each linked resource comes from ---------------------
def test_the_district_marks_its_link_and_the_city_config_names_the_link_subscription(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XHUB_PUDONG_SECRET", "test-secret-pudong-0123456789")
    district = tmp_path / "district"
    shutil.copytree(DEMO_CONFIG, district)
    add_link_subscription(district, link="citylink", hub="pudong", court="court")
    cfg = load_config(district)
    [link] = [t for t in targets_of_config(cfg) if t.subscription == LINK_SUBSCRIPTION]
    assert link.hub_link, "the link department is marked hub_link in the district config"
    assert not any(t.hub_link for t in targets_of_config(cfg) if t.subscription != LINK_SUBSCRIPTION)

    city = write_city_config(
        tmp_path / "city",
        dept="pudong-link",
        hub="city",
        bootstrap="127.0.0.1:1",
        registry_url="http://127.0.0.1:1",
        district_hub="pudong",
        terms=district_terms(district),
    )
    assert links_of([load_config(city)]) == {("city", RESOURCE): ("pudong", LINK_SUBSCRIPTION)}


def test_xhub_lag_takes_upstream_configs_repeated() -> None:
    import argparse

    from hub.monitor.cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lag", "province", "--upstream", "city", "--upstream", "district"])
    assert args.upstream == ["city", "district"]
    assert parser.parse_args(["lag", "city"]).upstream == []
