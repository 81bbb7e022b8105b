"""Pure parts of the monitor: lag arithmetic, group choice, dead-letter attribution, metrics, documents."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.config import load_config
from hub.engine.policy_set import PolicySet
from hub.engine.stats import WorkerStats
from hub.monitor.admin import AdminServer, static_file
from hub.monitor.board import LagBoard, SubscriptionLag, sample_board, status_counts
from hub.monitor.cli import add_parsers, lag_document
from hub.monitor.dead_letters import attribute, origin_topic
from hub.monitor.lag import (
    HUB,
    SUBSCRIBER,
    GroupLag,
    PartitionLag,
    Target,
    choose_sink_group,
    millis,
    owner_of_source_topic,
    sink_group,
    source_commit_ms,
    targets_of_config,
)
from hub.monitor.lag_text import format_lag_table
from hub.monitor.metrics import HubCollector, RingHistogram
from hub.monitor.report import catalog_figures
from hub.monitor.snapshot import (
    MonitorState,
    Rates,
    StatsCopy,
    StatusHeader,
    SubscriptionCounts,
    percentile,
    status_document,
)
from hub.monitor.status import Rules, Status
from hub.monitor.text import format_seconds

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
NOW_MS = 1_800_000_000_000


def target(sub: str = "tax-debtors") -> Target:
    return Target(
        "pudong", sub, "tax", "PD-CRD-0001", "court", "xhub.src.court.pd-crd-0001", f"xhub.dlv.pudong.{sub}"
    )


def group_lag(
    kind: str,
    *parts: PartitionLag,
    measured_ms: int = NOW_MS,
    error: str | None = None,
    group: str = "g",
    topic: str = "t",
) -> GroupLag:
    return GroupLag(kind, group, topic, measured_ms, tuple(parts), members=1, error=error)


# -- lag arithmetic ------------------------------------------------------------------------------
def test_nothing_waiting_is_zero_seconds_never_nan() -> None:
    lag = group_lag(SUBSCRIBER, PartitionLag(0, 10, 10, 10, 0), PartitionLag(1, 0, None, 0, 0))
    assert lag.lag_records == 0
    assert lag.lag_seconds == 0.0


def test_no_partitions_is_zero_seconds() -> None:
    assert group_lag(HUB).lag_seconds == 0.0


def test_lag_seconds_is_the_oldest_waiting_event_since_its_source_commit() -> None:
    lag = group_lag(
        SUBSCRIBER,
        PartitionLag(0, 20, 10, 10, 10, waiting_since_ms=NOW_MS - 1_000, oldest_commit_ms=NOW_MS - 4_000),
        PartitionLag(1, 5, 3, 3, 2, waiting_since_ms=NOW_MS - 9_000, oldest_commit_ms=NOW_MS - 9_500),
    )
    assert lag.lag_records == 12
    assert lag.lag_seconds == 9.5


def test_lag_seconds_falls_back_to_the_record_timestamp() -> None:
    lag = group_lag(HUB, PartitionLag(0, 20, 10, 10, 10, waiting_since_ms=NOW_MS - 2_000))
    assert lag.lag_seconds == 2.0


def test_lag_seconds_unknown_only_when_waiting_records_could_not_be_read() -> None:
    assert group_lag(HUB, PartitionLag(0, 20, 10, 10, 10)).lag_seconds is None


def test_lag_seconds_never_negative_under_clock_skew() -> None:
    lag = group_lag(HUB, PartitionLag(0, 2, 1, 1, 1, oldest_commit_ms=NOW_MS + 5_000))
    assert lag.lag_seconds == 0.0


def test_sample_carries_positions_lags_and_waiting_time() -> None:
    lag = group_lag(
        HUB, PartitionLag(0, 20, 10, 10, 3, waiting_since_ms=NOW_MS - 500), PartitionLag(1, 4, 4, 4, 0)
    )
    sample = lag.sample()
    assert sample.ts == NOW_MS / 1000
    assert sample.lag == 3
    assert sample.partitions[0].position == 10
    assert sample.partitions[0].waiting_since == (NOW_MS - 500) / 1000
    assert sample.partitions[1].waiting_since is None


def test_millis_and_source_commit() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert millis(when) == int(when.timestamp() * 1000)
    assert millis(17) == 17
    assert millis(True) is None
    assert millis("x") is None
    assert source_commit_ms({"source": {"commit_ts_ms": when}}) == int(when.timestamp() * 1000)
    assert source_commit_ms({"source": None}) is None
    assert source_commit_ms(None) is None


def test_owner_of_source_topic() -> None:
    assert owner_of_source_topic("xhub.src.court.pd-crd-0001") == "court"
    assert owner_of_source_topic("xhub.dlv.pudong.tax-debtors") == ""
    assert owner_of_source_topic("other") == ""


def test_subscriber_group_is_found_by_its_commits() -> None:
    assert choose_sink_group("tax-debtors", []) == sink_group("tax-debtors") == "xhub-sink-tax-debtors"
    live = ("xhub-sink-tax-main", True, 10)
    stale = ("xhub-sink-tax-old", False, 50)
    assert choose_sink_group("tax-debtors", [stale, live]) == "xhub-sink-tax-main"
    assert (
        choose_sink_group("tax-debtors", [("xhub-sink-b", False, 5), ("xhub-sink-a", False, 9)])
        == "xhub-sink-a"
    )
    assert (
        choose_sink_group("tax-debtors", [("xhub-sink-b", False, 5), ("xhub-sink-a", False, 5)])
        == "xhub-sink-a"
    )


def test_targets_of_the_demo_config() -> None:
    cfg = load_config(DEMO)
    targets = {t.subscription: t for t in targets_of_config(cfg, "pudong")}
    assert len(targets) == len([s for s in cfg.subscriptions.values() if s.hub == "pudong"])
    debtors = targets["tax-debtors"]
    assert debtors.source_topic == "xhub.src.court.pd-crd-0001"
    assert debtors.delivery_topic == "xhub.dlv.pudong.tax-debtors"
    assert debtors.owner == "court"
    assert debtors.refusal is None
    assert targets["transport-persons"].refusal == "no_grant"
    assert targets_of_config(cfg, "city") == []


# -- the board with a fake probe -----------------------------------------------------------------
class FakeProbe:
    def __init__(self) -> None:
        self.ts_ms = NOW_MS
        self.position = 10
        self.lag = 0
        self.error: str | None = None

    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        self.ts_ms += 1000
        out: dict[tuple[str, str], GroupLag] = {}
        for t in targets:
            hub_group, source = t.group_and_topic(HUB)
            sink, delivery = t.group_and_topic(SUBSCRIBER)
            out[(t.subscription, HUB)] = group_lag(
                HUB, PartitionLag(0, 10, 10, 10, 0), measured_ms=self.ts_ms, group=hub_group, topic=source
            )
            waiting = PartitionLag(
                0,
                self.position + self.lag,
                self.position,
                self.position,
                self.lag,
                waiting_since_ms=NOW_MS if self.lag else None,
                oldest_commit_ms=NOW_MS if self.lag else None,
            )
            out[(t.subscription, SUBSCRIBER)] = group_lag(
                SUBSCRIBER, waiting, measured_ms=self.ts_ms, error=self.error, group=sink, topic=delivery
            )
        return out


def test_board_turns_a_stopped_subscriber_stall_then_stop() -> None:
    probe = FakeProbe()
    board = LagBoard(probe, Rules(window=5.0, stall_after=2.0))
    targets = [target("a"), target("b")]
    assert {r.status for r in board.refresh(targets)} == {Status.OK}
    probe.lag = 4
    seen = [board.refresh(targets)[0] for _ in range(8)]
    statuses = [r.status for r in seen]
    assert statuses.index(Status.STALL) < statuses.index(Status.STOP)
    last = seen[-1]
    assert last.hub.status is Status.OK
    assert last.subscriber.status is Status.STOP
    assert last.subscriber.lag.lag_seconds == (probe.ts_ms - NOW_MS) / 1000
    doc = last.to_json()
    assert doc["status"] == "STOP"
    assert doc["subscriber_lag"]["lag_records"] == 4
    assert doc["hub_lag"]["status"] == "OK"
    probe.position, probe.lag = 14, 0
    assert board.refresh(targets)[0].status is Status.OK


def test_board_reports_a_missing_topic_as_stop_with_the_reason() -> None:
    probe = FakeProbe()
    probe.error = "topic xhub.dlv.pudong.a does not exist (run xhub apply)"
    row = LagBoard(probe).refresh([target("a")])[0]
    assert row.status is Status.STOP
    assert row.subscriber.verdict.reason == probe.error
    assert "n/a" in format_lag_table([row])


def test_board_forgets_removed_subscriptions() -> None:
    probe = FakeProbe()
    board = LagBoard(probe)
    board.refresh([target("a"), target("b")])
    board.refresh([target("a")])
    # one window per group and topic: the hub lag of both subscriptions on the debtors topic is one
    assert set(board._trackers) == {
        (HUB, "xhub-hub-pudong", "xhub.src.court.pd-crd-0001"),
        (SUBSCRIBER, "xhub-sink-a", "xhub.dlv.pudong.a"),
    }


def test_sample_board_takes_samples_apart() -> None:
    probe = FakeProbe()
    slept: list[float] = []
    rows = sample_board(LagBoard(probe), [target()], samples=3, interval=0.5, sleep=slept.append)
    assert slept == [0.5, 0.5]
    assert len(rows) == 1
    with pytest.raises(ValueError, match="samples"):
        sample_board(LagBoard(probe), [target()], samples=0)


def test_lag_table_and_document() -> None:
    probe = FakeProbe()
    board = LagBoard(probe, Rules(window=5.0, stall_after=1.0))
    board.refresh([target()])
    probe.lag = 3
    rows: list[SubscriptionLag] = []
    for _ in range(8):
        rows = board.refresh([target()])
    table = format_lag_table(rows).splitlines()
    assert table[0].split()[:3] == ["HUB", "SUBSCRIPTION", "SUBSCRIBER"]
    assert "STOP" in table[1]
    assert "subscriber: partition 0: no progress" in table[1]
    doc = lag_document(rows, board.rules)
    assert doc["status_counts"] == {"OK": 0, "WARN": 0, "REWIND": 0, "STALL": 0, "STOP": 1}
    assert doc["stall_after_seconds"] == 1.0
    assert status_counts(rows)["STOP"] == 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0.0, "0.0s"), (4.24, "4.2s"), (42.4, "42s"), (185, "3m05s"), (7380, "2h03m")],
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_cli_parsers() -> None:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["lag", "cfg", "--hub", "pudong", "--watch", "--json", "--window", "5", "--samples", "2"]
    )
    assert (args.config_dir, args.hub, args.watch, args.json, args.window, args.samples) == (
        "cfg",
        "pudong",
        True,
        True,
        5.0,
        2,
    )
    assert args.stall_after is None
    report = parser.parse_args(["report", "cfg", "--json"])
    assert (report.config_dir, report.json, report.sample) == ("cfg", True, 1000)
    assert callable(args.func)
    assert callable(report.func)


# -- dead letters ----------------------------------------------------------------------------------
def test_origin_topic_parses_topic_partition_at_offset() -> None:
    assert origin_topic("xhub.src.court.pd-crd-0001-2@17") == "xhub.src.court.pd-crd-0001"
    assert origin_topic("table enforcement.case change 12") is None
    assert origin_topic("topic-x@12") is None
    assert origin_topic("topic-1@x") is None


def test_dead_letters_count_against_the_sender() -> None:
    assert attribute("pudong", "xhub.src.court.pd-crd-0001-0@5") == ("court", False)
    assert attribute("court", "enforcement:change-log 17") == ("court", False)
    assert attribute("court", None) == ("court", False)
    assert attribute("tax", "xhub.dlv.pudong.tax-debtors-1@3") == ("tax", True)


# -- metrics and documents ---------------------------------------------------------------------
def test_ring_histogram_takes_only_new_values() -> None:
    hist = RingHistogram([0.1, 1.0])
    hist.feed([0.05, 0.5], total=2)
    hist.feed([0.05, 0.5, 2.0], total=3)
    hist.feed([0.05, 0.5, 2.0], total=3)
    assert hist.buckets() == [("0.1", 1.0), ("1.0", 2.0), ("+Inf", 3.0)]
    assert hist.sum == pytest.approx(2.55)
    hist.feed([0.5, 2.0, 0.01], total=4)  # the ring dropped its oldest value: only the newest is new
    assert hist.buckets()[-1] == ("+Inf", 4.0)


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0


def test_rates_over_the_window() -> None:
    rates = Rates(window=10.0)
    assert rates.delivered() == {}
    rates.add(0.0, StatsCopy(consumed=0, subscriptions={"a": SubscriptionCounts(delivered=0)}))
    rates.add(5.0, StatsCopy(consumed=50, subscriptions={"a": SubscriptionCounts(delivered=20)}))
    assert rates.delivered() == {"a": 4.0}
    assert rates.consumed() == 10.0
    rates.add(20.0, StatsCopy(consumed=50, subscriptions={"a": SubscriptionCounts(delivered=20)}))
    rates.add(25.0, StatsCopy(consumed=50, subscriptions={"a": SubscriptionCounts(delivered=20)}))
    assert rates.delivered() == {"a": 0.0}


class StubWorker:
    def __init__(self) -> None:
        self.stats = WorkerStats()
        self.ready = threading.Event()
        self.backfills: dict[str, object] = {}  # read by the admin server's path section
        self.policies = PolicySet(hub="pudong", digest="")

        class Options:
            worker_id = 7

        self.options = Options()


def admin_with_rows() -> tuple[AdminServer, StubWorker]:
    cfg = load_config(DEMO)
    worker = StubWorker()
    admin = AdminServer(cfg, "pudong", worker, registry_url=None)  # type: ignore[arg-type]
    probe = FakeProbe()
    board = LagBoard(probe)
    targets = (target("tax-debtors"), target("housing-debtors"))
    rows = board.refresh(targets)
    admin._state = MonitorState(targets, tuple(rows), NOW_MS, 0.05, None, 0, {}, {"tax-debtors": 1.5}, 2.0)
    worker.stats.record_tx(0.02)
    worker.stats.record_latencies([120, 340])
    with worker.stats.lock:
        worker.stats.consumed = 5
        worker.stats.subscriptions["tax-debtors"].delivered = 2
        worker.stats.subscriptions["tax-debtors"].filtered = 1
        worker.stats.subscriptions["tax-debtors"].last_delivery_ms = NOW_MS
    return admin, worker


def test_readiness_follows_the_worker_and_its_thread() -> None:
    admin, worker = admin_with_rows()
    assert admin.readiness() == (False, "worker not started yet")
    worker.ready.set()
    assert admin.readiness() == (True, "ready")
    dead = threading.Thread(target=lambda: None, name="hub-pudong-7")
    dead.start()
    dead.join()
    admin.attach_thread(dead)
    ready, why = admin.readiness()
    assert not ready
    assert "hub-pudong-7 has stopped" in why


def test_status_document() -> None:
    admin, worker = admin_with_rows()
    worker.ready.set()
    doc = admin.status()
    assert doc["hub"] == "pudong"
    assert doc["ready"] is True
    rows = {r["subscription"]: r for r in doc["subscriptions"]}
    assert rows["tax-debtors"]["delivered"] == 2
    assert rows["tax-debtors"]["filtered"] == 1
    assert rows["tax-debtors"]["delivered_per_second"] == 1.5
    assert rows["tax-debtors"]["subscriber_name"].startswith("浦东新区税务局")
    assert rows["housing-debtors"]["delivered"] == 0
    assert rows["tax-debtors"]["hub_lag"]["lag_seconds"] == 0.0
    assert doc["totals"]["consumed"] == 5
    assert doc["freshness"] == {"p50_seconds": 0.12, "p99_seconds": 0.34, "samples": 2}
    assert {d["department"] for d in doc["dead_letters"]} == set(load_config(DEMO).departments)
    assert doc["status_counts"]["OK"] == 2


def test_status_document_before_the_first_measurement() -> None:
    doc = status_document(
        StatusHeader("pudong", "", False, NOW_MS, 60.0),
        StatsCopy(),
        MonitorState(targets=(target(),)),
        {},
    )
    assert doc["subscriptions"][0]["status"] is None
    assert doc["subscriptions"][0]["subscriber_lag"] is None
    assert doc["refreshed_ms"] is None


def test_metrics_text_parses_with_the_per_subscription_series() -> None:
    admin, worker = admin_with_rows()
    worker.ready.set()
    text = admin.metrics().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    for sub in ("tax-debtors", "housing-debtors"):
        for kind in ("hub", "subscriber"):
            assert get("xhub_subscription_lag_records", hub="pudong", subscription=sub, kind=kind) == 0
            assert get("xhub_subscription_lag_seconds", hub="pudong", subscription=sub, kind=kind) == 0
            assert (
                get("xhub_subscription_status", hub="pudong", subscription=sub, kind=kind, status="OK") == 1
            )
    assert get("xhub_records_delivered_total", hub="pudong", subscription="tax-debtors") == 2
    assert get("xhub_records_filtered_total", hub="pudong", subscription="tax-debtors") == 1
    assert get("xhub_transaction_duration_seconds_count", hub="pudong") == 1
    assert get("xhub_delivery_latency_seconds_count", hub="pudong") == 2
    assert get("xhub_worker_ready", hub="pudong") == 1
    assert get(
        "xhub_subscription_last_delivery_timestamp_seconds", hub="pudong", subscription="tax-debtors"
    ) == (NOW_MS / 1000)
    # a second registry never sees these: each admin server has its own
    from prometheus_client import REGISTRY, generate_latest

    assert b"xhub_subscription_lag_records" not in generate_latest(REGISTRY)


def test_registry_request_counts_are_exported_when_the_client_keeps_them() -> None:
    class CountingClient:
        def __init__(self) -> None:
            self.request_counts = {("GET", "ok"): 3, ("POST", "error"): 1}

    collector = HubCollector(
        "pudong", WorkerStats(), MonitorState, lambda: True, {"engine": CountingClient()}
    )
    families = {f.name: f for f in collector.collect()}
    got = {tuple(s.labels.values()): s.value for s in families["xhub_registry_requests"].samples}
    assert got == {("pudong", "engine", "GET", "ok"): 3.0, ("pudong", "engine", "POST", "error"): 1.0}


def test_static_files_are_shipped() -> None:
    assert b'<script src="/status.js">' in static_file("index.html")
    assert b"/api/status" in static_file("status.js")
    assert static_file("status.css")


# -- the sharing report's catalog figures --------------------------------------------------------
def test_catalog_figures_of_the_demo() -> None:
    figures = catalog_figures(load_config(DEMO))
    court = figures["court"]
    assert court.resources == {"unconditional": 1, "conditional": 0, "not_shared": 1}
    assert court.share_ratio == 0.5
    assert court.shareable_ratio == 0.5
    assert court.subscriptions_served == 4
    psb = figures["psb"]
    assert psb.share_ratio == 0.0
    assert psb.shareable_ratio == 1.0
    assert psb.subscriptions_served == 2
    assert figures["amr"].share_ratio == 1.0
    assert figures["tax"].resources_total == 0
    assert figures["tax"].share_ratio is None
    assert figures["tax"].subscriptions_held == 3
    json_doc: dict[str, Any] = court.to_json()
    assert json_doc["freshness"] == {"p50_seconds": None, "p99_seconds": None, "samples": 0}
