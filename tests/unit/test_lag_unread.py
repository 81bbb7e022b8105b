"""A lag measured without READ on its topic (the operator's): records from offsets, the age shown as not
permitted, or as the hub's own figure when its admin port answered."""

from __future__ import annotations

from hub.monitor.board import KindView, SubscriptionLag
from hub.monitor.cli import lag_document
from hub.monitor.lag import HUB, SUBSCRIBER, GroupLag, PartitionLag, Target
from hub.monitor.lag.probe import NOT_READ
from hub.monitor.lag_path import HubFigures, add_hub_ages
from hub.monitor.lag_text import format_lag_table
from hub.monitor.status import Rules, Status, Verdict

NOW_MS = 1_800_000_000_000
TARGET = Target(
    "pudong", "tax-debtors", "tax", "PD-CRD-0001", "court", "xhub.src.court.x", "xhub.dlv.pudong.t"
)


def _row() -> SubscriptionLag:
    ok = Verdict(Status.OK, "")
    hub = GroupLag(HUB, "xhub-hub-pudong", TARGET.source_topic, NOW_MS, (PartitionLag(0, 4, 4, 4, 0),))
    # offsets only: 3 records after the committed offset, none read (no scan: no age)
    waiting = GroupLag(
        SUBSCRIBER,
        "xhub-sink-tax-debtors",
        TARGET.delivery_topic,
        NOW_MS,
        (PartitionLag(0, 5, 2, 2, 3),),
        unread=NOT_READ.format(topic=TARGET.delivery_topic),
    )
    return SubscriptionLag(TARGET, KindView(hub, ok), KindView(waiting, ok))


def test_an_age_not_read_is_not_permitted_and_says_where_to_look() -> None:
    text = format_lag_table([_row()])
    line = text.splitlines()[1]
    assert line.split()[5:9] == ["0", "0.0s", "3", "no"]  # "no READ" in the subscriber's age column
    assert "no READ" in line
    assert "AGE      not permitted (no READ on delivery and source topics for this identity)" in text
    assert "/metrics xhub_subscription_lag_seconds" in text

    doc = lag_document([_row()], Rules())["subscriptions"][0]["subscriber_lag"]
    assert doc["lag_records"] == 3
    assert doc["lag_seconds"] is None
    assert doc["unread"].startswith("no READ on xhub.dlv.pudong.t for this identity")


def test_the_hubs_own_age_from_its_admin_port_fills_it() -> None:
    url = "http://127.0.0.1:8081"
    figures = [HubFigures("pudong", {}, None, f"admin port {url}", {("tax-debtors", SUBSCRIBER): 12.0})]
    text = format_lag_table([_row()], figures)
    assert "12s*" in text.splitlines()[1]
    assert f"* the hub's own figure, from its admin port {url}" in text

    item = lag_document([_row()], Rules())["subscriptions"][0]
    add_hub_ages(item, {("tax-debtors", SUBSCRIBER): (12.0, f"admin port {url}")})
    assert item["subscriber_lag"]["lag_seconds"] == 12.0
    assert item["subscriber_lag"]["lag_seconds_from"] == f"admin port {url}"
    assert "lag_seconds_from" not in item["hub_lag"]  # read as usual: nothing to fill
