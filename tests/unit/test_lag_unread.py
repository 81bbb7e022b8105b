"""A lag measured without READ on its topic (the operator's): records from offsets, the age shown as not
permitted, or the hub's own records, age and status when its admin port answered; a partition whose only
offset after its position is a commit marker is not a stalled consumer."""

from __future__ import annotations

from collections.abc import Sequence

from hub.monitor.board import HubFigure, KindView, LagBoard, SubscriptionLag
from hub.monitor.cli import lag_document
from hub.monitor.lag import HUB, SUBSCRIBER, GroupLag, PartitionLag, Target
from hub.monitor.lag.probe import NOT_READ
from hub.monitor.lag_path import HubFigures, figures_of_status, with_hub_figures
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


def _hub_status_document(records: int, status: Status, reason: str) -> dict[str, object]:
    """The /api/status the hub serves: its own measurement of the subscriber lag, read with its READ."""
    read = GroupLag(
        SUBSCRIBER,
        "xhub-sink-tax-debtors",
        TARGET.delivery_topic,
        NOW_MS,
        (PartitionLag(0, 5, 2, 2, records, NOW_MS - 7_000, NOW_MS - 7_000),),
    )
    hub = GroupLag(HUB, "xhub-hub-pudong", TARGET.source_topic, NOW_MS, (PartitionLag(0, 4, 4, 4, 0),))
    own = SubscriptionLag(
        TARGET, KindView(hub, Verdict(Status.OK, "caught up")), KindView(read, Verdict(status, reason))
    )
    return {"hub": "pudong", "subscriptions": [own.to_json()]}


def _stalled_row() -> SubscriptionLag:
    """The operator's view: 3 offsets after the sink's position, judged STALL from offsets alone."""
    row = _row()
    stalled = KindView(row.subscriber.lag, Verdict(Status.STALL, "partition 0: position 2 not moving"))
    return SubscriptionLag(TARGET, row.hub, stalled)


def test_the_hubs_own_records_seconds_and_status_replace_an_unread_lag() -> None:
    url = "http://127.0.0.1:8081"
    source = f"admin port {url}"
    # The hub read the delivery topic: 2 data records (the third offset is a commit marker), 7 s old, OK.
    figures = [figures_of_status("pudong", url, _hub_status_document(2, Status.OK, "2 records waiting"))]
    assert figures[0].lags[("tax-debtors", SUBSCRIBER)] == HubFigure(
        2, 7.0, Status.OK, "2 records waiting", source
    )

    (row,) = with_hub_figures([_stalled_row()], figures)
    assert row.status is Status.OK  # the hub's status, not the STALL judged from offsets: xhub lag exits 0
    assert row.subscriber.records == 2
    assert row.hub.hub_figure is None  # read as usual (not unread): the operator's own figures stay

    doc = lag_document([row], Rules())["subscriptions"][0]
    assert doc["status"] == "OK"
    lag = doc["subscriber_lag"]
    assert (lag["lag_records"], lag["lag_seconds"], lag["status"]) == (2, 7.0, "OK")
    assert lag["lag_records_from"] == lag["lag_seconds_from"] == lag["status_from"] == source
    assert lag["unread"].startswith("no READ on xhub.dlv.pudong.t")  # why the hub's figures are shown
    assert "lag_records_from" not in doc["hub_lag"]

    text = format_lag_table([row])
    assert text.splitlines()[1].split()[4:9] == ["OK", "0", "0.0s", "2*", "7.0s*"]
    assert f"* the hub's own figure (records, age and status), from its {source}" in text


def test_the_hubs_own_stall_is_kept() -> None:
    url = "http://127.0.0.1:8081"
    doc = _hub_status_document(2, Status.STALL, "partition 0: position 2 not moving for 20 s")
    (row,) = with_hub_figures([_row()], [figures_of_status("pudong", url, doc)])
    assert row.status is Status.STALL
    assert "subscriber*: partition 0: position 2 not moving for 20 s" in format_lag_table([row])


def test_without_the_admin_port_the_offsets_stay() -> None:
    figures = [HubFigures("pudong", {}, None, "state changelog xhub.state.pudong")]
    rows = [_stalled_row()]
    assert with_hub_figures(rows, figures) == rows
    assert with_hub_figures(rows, figures)[0].status is Status.STALL


class _OffsetsOnly:
    """A probe that may not read the delivery topic: its lag comes from offsets alone."""

    def __init__(self, gap: int) -> None:
        self.gap = gap
        self.now_ms = NOW_MS

    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        hub = GroupLag(
            HUB, "xhub-hub-pudong", TARGET.source_topic, self.now_ms, (PartitionLag(0, 4, 4, 4, 0),)
        )
        parts = tuple(PartitionLag(p, 10 + self.gap, 10, 10, self.gap) for p in range(3))
        unread = NOT_READ.format(topic=TARGET.delivery_topic)
        sub = GroupLag(
            SUBSCRIBER, "xhub-sink-tax-debtors", TARGET.delivery_topic, self.now_ms, parts, unread=unread
        )
        return {(TARGET.subscription, HUB): hub, (TARGET.subscription, SUBSCRIBER): sub}


def _watch(gap: int) -> SubscriptionLag:
    """``xhub lag --watch`` for two minutes, a sample every 5 s, the positions never moving."""
    probe = _OffsetsOnly(gap)
    board = LagBoard(probe, Rules(window=60.0, stall_after=15.0))
    rows: list[SubscriptionLag] = []
    for _ in range(24):
        rows = board.refresh([TARGET])
        probe.now_ms += 5_000
    return rows[0]


def test_an_idle_partition_seen_by_offsets_alone_does_not_stall() -> None:
    # One offset after each partition's position, never moving: with transactional writers only, that
    # offset is the commit marker of the last transaction (a data record's marker would lie before the end).
    row = _watch(1)
    assert row.status is Status.OK, row.subscriber.verdict
    assert row.subscriber.records == 3  # still the offsets (an upper bound), as the note under the table says
    assert "commit marker" in row.subscriber.verdict.reason

    # Two offsets can be a record and its marker: a consumer stuck on it is still an alarm.
    assert _watch(2).status in {Status.STALL, Status.STOP}
