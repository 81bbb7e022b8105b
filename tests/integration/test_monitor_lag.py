"""Lag and status on the real broker: a stopped subscriber goes STALL then STOP, and OK again on restart."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.core import names
from hub.core.envelope import now_ms
from hub.core.kafka import ensure_topics, make_admin
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.board import LagBoard, SubscriptionLag
from hub.monitor.cli import EXIT_NOT_ALL_OK, Sampling, lag_command
from hub.monitor.lag import HUB, SUBSCRIBER, LagProbe, ProbeLimits, Target, targets_of_config
from hub.monitor.status import Rules, Status
from tests.integration.monitor_support import Exchange, running_exchange, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture
def exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with running_exchange(kafka, tmp_path, monkeypatch) as ex:
        yield ex


def rows_by_id(board: LagBoard, ex: Exchange) -> dict[str, SubscriptionLag]:
    return {r.target.subscription: r for r in board.refresh(targets_of_config(ex.cfg, ex.names.hub))}


def test_stopped_subscriber_stalls_then_stops_and_recovers(exchange: Exchange) -> None:
    ex = exchange
    debtors, licences = ex.names.debtors, ex.names.licences
    probe = LagProbe(ex.kafka, ex.serde, client_id="test-lag")
    board = LagBoard(probe, Rules(window=4.0, stall_after=1.0))
    subscriber = ex.subscriber(debtors)
    idle_rows: list[SubscriptionLag] = []
    try:
        subscriber.start()
        ex.publish_debtors(3)

        def caught_up() -> dict[str, SubscriptionLag] | None:
            rows = rows_by_id(board, ex)
            idle_rows.append(rows[licences])
            row = rows[debtors]
            done = (
                row.status is Status.OK
                and row.hub.lag.lag_records == 0
                and row.subscriber.lag.lag_records == 0
                and sum(p.end for p in row.subscriber.lag.partitions) > 0
            )
            return rows if done else None

        rows = wait_for("the subscriber to catch up", caught_up)
        row = rows[debtors]
        assert row.subscriber.lag.lag_seconds == 0.0
        assert row.subscriber.lag.members == 1
        # The hub commits its source offsets in its transactions, before the source's commit markers:
        # those markers are not lag.
        assert any(p.end > (p.committed or 0) for p in row.hub.lag.partitions)
        assert row.hub.lag.lag_seconds == 0.0

        # The subscriber sidecar stops; new changes arrive and are delivered by the hub.
        subscriber.stop()
        ex.publish_debtors(3)
        seen: list[tuple[Status, int, float | None]] = []

        def stopped() -> bool:
            rows = rows_by_id(board, ex)
            idle_rows.append(rows[licences])
            sub = rows[debtors].subscriber
            seen.append((sub.status, sub.lag.lag_records, sub.lag.lag_seconds))
            time.sleep(0.2)
            return sub.status is Status.STOP

        wait_for("the subscription to turn STOP", stopped, timeout=60)
        statuses = [s for s, _, _ in seen]
        assert Status.STALL in statuses, statuses
        assert statuses.index(Status.STALL) < statuses.index(Status.STOP)
        waiting = [(n, secs) for s, n, secs in seen if s in (Status.STALL, Status.STOP)]
        assert all(n == 3 for n, _ in waiting), waiting
        ages = [secs for _, secs in waiting]
        assert all(a is not None for a in ages), ages
        assert ages == sorted(ages), f"lag in seconds must grow while stopped: {ages}"  # type: ignore[type-var]
        assert ages[-1] > ages[0]  # type: ignore[operator]
        stop_row = rows_by_id(board, ex)[debtors]
        assert stop_row.status is Status.STOP
        assert stop_row.subscriber.lag.members == 0
        assert "no progress" in stop_row.subscriber.verdict.reason
        assert stop_row.hub.status is Status.OK  # the hub itself kept up

        # Restarting the sidecar brings OK back.
        restarted = ex.subscriber(debtors)
        restarted.start()
        try:

            def ok_again() -> SubscriptionLag | None:
                r = rows_by_id(board, ex)[debtors]
                return r if r.status is Status.OK and r.subscriber.lag.lag_records == 0 else None

            # The restarted sink joins the group anew: on a loaded CI machine that took over 60 s once.
            row = wait_for("OK after the restart", ok_again, timeout=150)
            assert row.subscriber.lag.lag_seconds == 0.0
            assert restarted.consumed == 3
        finally:
            restarted.stop()
    finally:
        probe.close()

    # The idle subscription never had an event: OK at every refresh, 0 records, 0 seconds (never NaN).
    assert len(idle_rows) > 5
    for idle in idle_rows:
        assert idle.status is Status.OK, idle.to_json()
        for view in (idle.hub, idle.subscriber):
            assert view.lag.lag_records == 0
            assert view.lag.lag_seconds == 0.0


def test_lag_command_prints_every_subscription(exchange: Exchange) -> None:
    ex = exchange
    subscriber = ex.subscriber(ex.names.debtors)
    subscriber.start()
    try:
        ex.publish_debtors(2)
        wait_for("the subscriber to read both deliveries", lambda: subscriber.consumed >= 2)
        out = io.StringIO()

        def all_ok() -> dict[str, Any] | None:
            out.seek(0)
            out.truncate()
            code = lag_command(
                str(ex.config_dir),
                ex.names.hub,
                Rules(window=60.0),
                json_out=True,
                sampling=Sampling(samples=2, interval=0.2),
                out=out,
            )
            doc: dict[str, Any] = json.loads(out.getvalue())
            return doc if code == 0 else None

        doc = wait_for("xhub lag to report every subscription OK", all_ok)
    finally:
        subscriber.stop()
    rows = {r["subscription"]: r for r in doc["subscriptions"]}
    assert set(rows) == {ex.names.debtors, ex.names.licences}
    debtors = rows[ex.names.debtors]
    assert debtors["status"] == "OK"
    assert debtors["hub_lag"]["group"] == f"xhub-hub-{ex.names.hub}"
    assert debtors["subscriber_lag"]["group"] == f"xhub-sink-{ex.names.debtors}"
    assert debtors["subscriber_lag"]["lag_records"] == 0
    assert debtors["subscriber_lag"]["lag_seconds"] == 0.0
    assert doc["status_counts"]["OK"] == 2
    assert doc["window_seconds"] == 60.0


def test_lag_command_exits_non_zero_when_a_subscriber_never_reads(exchange: Exchange) -> None:
    ex = exchange
    ex.publish_debtors(2)
    wait_for("the hub to deliver", lambda: ex.delivered(ex.names.debtors) >= 2)
    time.sleep(1.5)  # the deliveries wait longer than the 1 s window
    out = io.StringIO()
    code = lag_command(
        str(ex.config_dir), None, Rules(window=1.0), sampling=Sampling(samples=2, interval=0.3), out=out
    )
    text = out.getvalue()
    assert code == EXIT_NOT_ALL_OK, text
    line = next(ln for ln in text.splitlines() if ex.names.debtors in ln)
    assert " STOP " in line
    assert "subscriber: partition" in line
    assert "no progress" in line
    idle = next(ln for ln in text.splitlines() if ex.names.licences in ln)
    assert " OK " in idle


def test_lag_seconds_come_from_the_source_commit_time(exchange: Exchange) -> None:
    ex = exchange
    # Committed at the court ten minutes ago, published now: the lag is ten minutes, not a few seconds.
    ex.publish_debtors(2, commit_ts_ms=now_ms() - 600_000)
    wait_for("the hub to deliver", lambda: ex.delivered(ex.names.debtors) >= 2)
    # The same exchange through the built-in registry (no URL in hubs.yaml: served in-process from its topic).
    hubs = ex.config_dir / "hubs.yaml"
    body = yaml.safe_load(hubs.read_text(encoding="utf-8"))
    body["registry"] = {"topic": f"_xhub_schemas-mon-{ex.names.token}"}
    hubs.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    out = io.StringIO()
    code = lag_command(
        str(ex.config_dir),
        ex.names.hub,
        Rules(window=3600.0),
        json_out=True,
        sampling=Sampling(watch=True, interval=0.2, refreshes=2),
        out=out,
    )
    assert code == 0  # --watch always ends with 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        rows = {r["subscription"]: r for r in json.loads(line)["subscriptions"]}
        waiting = rows[ex.names.debtors]["subscriber_lag"]
        assert waiting["lag_records"] == 2
        assert 600 <= waiting["lag_seconds"] < 3600
        assert all(p["oldest_commit_ms"] is not None for p in waiting["partitions"] if p["lag"])


def test_missing_delivery_topics_cost_nothing_until_created(
    exchange: Exchange, unique_name: Callable[[str], str]
) -> None:
    ex = exchange
    source = names.source_topic(ex.names.court, "PD-CRD-0001")
    delivery = unique_name("xhub.dlv.late")
    # Three subscriptions on the debtors resource that `xhub apply` has not created the topics of yet.
    targets = [
        Target(
            ex.names.hub, f"late-{i}", ex.names.tax, "PD-CRD-0001", ex.names.court, source, f"{delivery}-{i}"
        )
        for i in range(3)
    ]
    ex.publish_debtors(2)
    wait_for("the hub to consume", lambda: ex.process.worker.stats.consumed >= 2)
    probe = LagProbe(ex.kafka, ex.serde, client_id="test-lag-missing")
    try:
        lags = probe.measure(targets)
        # one hub lag for every subscription on the source topic, measured once
        assert lags[("late-0", HUB)] is lags[("late-1", HUB)] is lags[("late-2", HUB)]
        assert lags[("late-0", HUB)].error is None
        missing = lags[("late-0", SUBSCRIBER)]
        assert missing.error is not None
        assert missing.error.startswith(f"no delivery topic yet: topic {delivery}-0 does not exist")
        assert missing.partitions == ()
        row = LagBoard(probe).refresh(targets)[0]
        assert row.status is Status.STOP
        assert row.subscriber.verdict.reason == row.subscriber.lag.error
        assert (
            probe.measure(targets)[("late-1", SUBSCRIBER)] is probe.measure(targets)[("late-1", SUBSCRIBER)]
        )

        admin = make_admin(ex.kafka)
        try:
            ensure_topics(admin, {f"{delivery}-0": {}}, partitions=2)
        finally:
            admin.close()
        probe.recheck_missing()  # what the admin server does when the plans change after `xhub apply`
        lags = probe.measure(targets)
        found = lags[("late-0", SUBSCRIBER)]
        assert found.error is None
        assert [p.partition for p in found.partitions] == [0, 1]
        assert found.lag_records == 0
        assert found.lag_seconds == 0.0
        assert found.members == 0  # nobody reads it yet
        assert lags[("late-1", SUBSCRIBER)].error is not None
    finally:
        probe.close()


def test_a_backlog_longer_than_the_count_limit_is_estimated_from_offsets(exchange: Exchange) -> None:
    ex = exchange
    ex.publish_debtors(30)
    wait_for("the hub to deliver", lambda: ex.delivered(ex.names.debtors) >= 30)
    targets = targets_of_config(ex.cfg, ex.names.hub)
    exact = LagProbe(ex.kafka, ex.serde, client_id="test-lag-exact")
    rough = LagProbe(ex.kafka, ex.serde, client_id="test-lag-rough", limits=ProbeLimits(count_limit=10))
    try:
        counted = exact.measure(targets)[(ex.names.debtors, SUBSCRIBER)]
        estimated = rough.measure(targets)[(ex.names.debtors, SUBSCRIBER)]
    finally:
        exact.close()
        rough.close()
    assert counted.lag_records == 30  # nobody reads the deliveries: every one waits
    # over the limit only the first waiting record of each partition is read: the count is an upper
    # bound (the hub's commit markers are in the offsets), the age is known
    assert 30 <= estimated.lag_records <= sum(p.end - p.position for p in estimated.partitions)
    assert estimated.lag_seconds is not None
    assert counted.lag_seconds is not None
    assert estimated.lag_seconds >= counted.lag_seconds - 1
