"""The path beyond the lags, pure parts: the lag history of the sparklines, backfill and restore progress,
the sidecars' backlog reports judged, "drained", and how /api/status, /metrics and ``xhub lag`` show them."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hub.core.backlog_report import BacklogReport, SourceBacklog, decode_report
from hub.engine.handover import BackfillProgress
from hub.monitor.backlog import backlog_of_resource, judge, source_views
from hub.monitor.board import KindView, SubscriptionLag
from hub.monitor.history import LagHistory
from hub.monitor.lag import HUB, SUBSCRIBER, GroupLag, PartitionLag
from hub.monitor.lag_path import HubFigures, combined_restore, figures_of_status, sources_ok
from hub.monitor.lag_text import format_path
from hub.monitor.path import path_state
from hub.monitor.path_metrics import PathCollector
from hub.monitor.progress import Progress, ProgressTracker, RestoreProgress, backfill_figures
from hub.monitor.snapshot import StatsCopy, StatusEncoder, StatusHeader, status_document
from hub.monitor.status import Rules, Status, Verdict
from tests.unit.test_monitor_scale import NOW_MS, idle_state, target

RULES = Rules(window=60.0)  # STALL after 15 s


# -- history -------------------------------------------------------------------------------------
def test_history_keeps_the_largest_lag_per_bucket_and_runs_of_equal_buckets() -> None:
    h = LagHistory(span_s=100, bucket_s=10)  # 10 buckets
    for i in range(10):
        h.add(1000 + i * 10, {"idle": 0.0, "busy": float(i)})
    assert h.runs("idle") == ((100, 109, 0.0),)  # one run however long idle
    assert len(h.runs("busy")) == 10
    h.add(1101, {"idle": 0.0, "busy": 3.0})
    h.add(1105, {"idle": 7.0, "busy": 1.0})  # same bucket: the larger stays
    assert h.series("busy")[-1] == 3.0
    assert h.series("idle")[-1] == 7.0
    assert h.runs("idle")[0][0] == 101  # the oldest bucket fell out of the span
    h.add(1130, {"idle": None, "busy": 2.0})  # a gap: buckets 111, 112 unsampled; idle unknown now
    series = h.series("busy")
    assert series[-3:] == [None, None, 2.0]
    assert h.series("idle")[-1] is None
    h.add(1140, {"busy": 2.0})  # a subscription that went away is forgotten
    assert h.runs("idle") == ()


def test_history_of_ten_thousand_idle_subscriptions_is_one_run_each() -> None:
    h2 = LagHistory()
    lags = dict.fromkeys((f"s{i}" for i in range(10_000)), 0.0)
    for step in range(100):
        h2.add(step * 10.0, lags)
    assert all(len(h2.runs(f"s{i}")) == 1 for i in range(0, 10_000, 997))


# -- progress ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewProgress:  # the shape the state store may give BackfillProgress
    records_done: int
    records_total: int
    state: str


@dataclass(frozen=True)
class Span:
    snapshot_end: int
    log_start: int


@dataclass(frozen=True)
class NoTotal:
    done: int
    state: str
    partitions: dict[int, Span]


def test_backfill_figures_read_either_shape_and_work_out_a_missing_total() -> None:
    figures = backfill_figures(
        {
            "a": BackfillProgress(10, 100, "delivering"),
            "b": NewProgress(5, 50, "catching_up"),
            "c": NoTotal(7, "scanning", {0: Span(120, 20), 1: Span(30, 0)}),
            "d": NoTotal(7, "scanning", {}),
        }
    )
    assert figures == {
        "a": (10, 100, "delivering"),
        "b": (5, 50, "catching_up"),
        "c": (7, 130, "scanning"),
        "d": (7, None, "scanning"),
    }


def test_progress_rate_and_eta_over_the_window() -> None:
    tracker = ProgressTracker(window=60.0)
    first = tracker.backfills(100.0, {"a": (0, 1000, "delivering")})["a"]
    assert first.per_second is None
    assert first.eta_seconds is None
    later = tracker.backfills(110.0, {"a": (200, 1000, "delivering")})["a"]
    assert later.per_second == pytest.approx(20.0)
    assert later.eta_seconds == pytest.approx(40.0)
    assert later.fraction == pytest.approx(0.2)
    again = tracker.backfills(111.0, {"a": (10, 1000, "delivering")})["a"]  # a new backfill began
    assert again.per_second is None
    done = tracker.backfills(112.0, {"a": (1000, 1000, "done")})["a"]
    assert done.eta_seconds == 0.0
    assert done.finished

    assert not tracker.restore(100.0, (0, 0, 0, 0)).running
    tracker.restore(100.0, (4, 1, 100, 1000))
    r = tracker.restore(105.0, (4, 2, 600, 1000))
    assert r.running
    assert r.records.eta_seconds == pytest.approx(4.0)
    assert not tracker.restore(106.0, (4, 4, 1000, 1000)).running


# -- backlog reports -----------------------------------------------------------------------------
def report(
    rows: int | None, *, oldest_ms: int | None = None, measured_ms: int = NOW_MS, **kw: object
) -> BacklogReport:
    source = SourceBacklog("sql_trigger", "running", rows, oldest_ms, resources=("PD-SOC-0001",), **kw)  # type: ignore[arg-type]
    return BacklogReport("amr", measured_ms, 5.0, {"db": source})


def test_a_report_survives_the_wire_and_foreign_bytes_are_not_one() -> None:
    r = report(3, oldest_ms=NOW_MS - 2000, snapshot=True)
    assert decode_report(r.encode()) == r
    for bad in (None, b"", b"not json", b'{"v": 2}', b'{"position": {"log": 1}}', b'{"v": 1}'):
        assert decode_report(bad) is None


@pytest.mark.parametrize(
    ("rep", "now_ms", "status", "rows", "age"),
    [
        (report(0), NOW_MS + 1000, Status.OK, 0, 0.0),
        (report(4, oldest_ms=NOW_MS - 3000), NOW_MS, Status.OK, 4, 3.0),
        (report(4, oldest_ms=NOW_MS - 20_000), NOW_MS, Status.STALL, 4, 20.0),
        (report(4, oldest_ms=NOW_MS - 90_000), NOW_MS, Status.STOP, 4, 90.0),
        (report(0), NOW_MS + 26_000, Status.STOP, None, None),  # 2 heartbeats + 10 s: stale
        (report(None, error="SourceUnavailable: database down"), NOW_MS, Status.STOP, None, None),
    ],
)
def test_a_report_is_judged_by_its_rows_their_age_and_its_own_age(
    rep: BacklogReport, now_ms: int, status: Status, rows: int | None, age: float | None
) -> None:
    (view,) = judge("amr", rep, RULES, now_ms)
    assert view.status is status
    assert view.rows == rows
    assert view.oldest_seconds == age


def test_a_logical_decoding_source_reports_the_wal_its_slot_holds_and_its_warnings() -> None:
    held = SourceBacklog("pg_logical", "running", 0, wal_held_bytes=12_345_678, wal_held_age_s=42.0)
    rep = BacklogReport("amr", NOW_MS, 5.0, {"db": held})
    assert decode_report(rep.encode()) == rep
    (view,) = judge("amr", rep, RULES, NOW_MS)
    assert view.status is Status.OK
    assert view.drained
    assert "slot holds 12.3 MB of WAL, oldest 42 s" in view.reason
    assert view.to_json()["wal_held_bytes"] == 12_345_678
    state, _, _ = path_monitor_state()
    state = replace(state, path=replace(state.path, sources=(view,)))  # type: ignore[attr-defined]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PathCollector("pudong", lambda: state, clock=lambda: NOW_MS / 1000))  # type: ignore[arg-type,return-value]
    metric = 'xhub_source_wal_held_bytes{department="amr",hub="pudong",source="db"} 1.2345678e+07'
    assert metric in generate_latest(registry).decode()
    text = format_path(state.path, [])  # type: ignore[attr-defined]
    assert "slot holds 12.3 MB of WAL, oldest 42 s" in text  # shown even though it is drained

    warned = replace(held, warnings=("slot xhub_amr holds back WAL for 900 s",))
    (view,) = judge("amr", BacklogReport("amr", NOW_MS, 5.0, {"db": warned}), RULES, NOW_MS)
    assert view.status is Status.WARN
    assert view.reason.endswith("slot xhub_amr holds back WAL for 900 s")
    # a trigger source's report has no WAL fields on the wire
    assert "wal_held_bytes" not in json.loads(report(0).encode())["sources"]["db"]


def test_no_report_is_a_warning_and_unknown() -> None:
    (view,) = judge("amr", None, RULES, NOW_MS)
    assert view.status is Status.WARN
    assert view.rows is None
    assert "no backlog report" in view.reason
    assert sources_ok(path_state([], {}, RestoreProgress(), [view]))


def test_backlog_of_a_resource_counts_only_its_owner_s_sources_that_publish_it() -> None:
    views = source_views({"amr": report(4, oldest_ms=NOW_MS - 3000), "psb": report(9)}, RULES, NOW_MS)
    assert backlog_of_resource(views, "amr", "PD-SOC-0001") == (4, 3.0)
    assert backlog_of_resource(views, "amr", "PD-OTHER-0001") == (0, 0.0)
    assert backlog_of_resource(views, "court", "PD-SOC-0001") == (0, 0.0)  # no sidecar of its own
    stale = source_views({"amr": report(0)}, RULES, NOW_MS + 60_000)
    assert backlog_of_resource(stale, "amr", "PD-SOC-0001") == (None, None)


# -- drained -------------------------------------------------------------------------------------
def lag_rows(count: int, *, sub_error: str | None = None) -> list[SubscriptionLag]:
    """Rows of subscriptions s0.. on PD-SOC-0001 of amr, with nothing waiting."""
    out = []
    for i in range(count):
        t = target(f"s{i}")
        part = (PartitionLag(0, 10, 10, 10, 0),)
        hub = GroupLag(HUB, "xhub-hub-pudong", t.source_topic, NOW_MS, part, members=1)
        sub = GroupLag(
            SUBSCRIBER, "xhub-sink-x", t.delivery_topic, NOW_MS, () if sub_error else part, 1, sub_error
        )
        verdict = Verdict(Status.OK, "idle")
        out.append(SubscriptionLag(t, KindView(hub, verdict), KindView(sub, verdict)))
    return out


def test_the_path_is_drained_only_when_nothing_waits_anywhere() -> None:
    rows = lag_rows(2)
    fresh = source_views({"amr": report(0)}, RULES, NOW_MS)
    drained = path_state(rows, {}, RestoreProgress(), fresh)
    assert drained.drained
    assert drained.reasons == ()
    assert drained.paths["s0"].seconds == 0.0

    waiting = path_state(
        rows, {}, RestoreProgress(), source_views({"amr": report(4, oldest_ms=NOW_MS - 7000)}, RULES, NOW_MS)
    )
    assert not waiting.drained
    assert waiting.paths["s0"].seconds == 7.0
    assert waiting.reasons == ("sources not yet published: amr/db",)

    backfill = {"s1": Progress(5, 10, "delivering")}
    busy = path_state(rows, backfill, RestoreProgress(), fresh)
    assert not busy.drained
    assert busy.paths["s0"].drained
    assert not busy.paths["s1"].drained

    restoring = RestoreProgress(4, 1, Progress(10, 100, "restoring"))
    assert path_state(rows, {}, restoring, fresh).reasons == ("state store restoring: 1/4 partitions",)
    unknown = path_state(rows, {}, RestoreProgress(), source_views({"amr": None}, RULES, NOW_MS))
    assert not unknown.drained
    assert unknown.paths["s0"].seconds is None or unknown.paths["s0"].seconds == 0.0
    assert "source backlog unknown: amr" in unknown.reasons
    missing = path_state(lag_rows(1, sub_error="no delivery topic yet"), {}, RestoreProgress(), fresh)
    assert missing.reasons == ("lag not measured: s0",)


# -- rendering -----------------------------------------------------------------------------------
def path_monitor_state() -> tuple[object, StatsCopy, StatusHeader]:
    state, _ = idle_state(3)
    state = replace(state, rows=tuple(lag_rows(3)))
    history = LagHistory()
    history.add(NOW_MS / 1000 - 30, {"s0": 0.0, "s1": 12.0, "s2": 0.0})
    history.add(NOW_MS / 1000, {"s0": 0.0, "s1": 30.0, "s2": 0.0})
    views = source_views({"amr": report(4, oldest_ms=NOW_MS - 30_000)}, RULES, NOW_MS)
    restore = RestoreProgress(6, 2, Progress(30_000, 90_000, "restoring", 1500.0, 40.0))
    path = path_state(lag_rows(3), {"s1": Progress(400, 1000, "delivering", 100.0, 6.0)}, restore, views)
    full = replace(state, path=path, history=history)
    return full, StatsCopy(), StatusHeader("pudong", "浦东", True, NOW_MS, 60.0)


def test_the_status_document_carries_the_path_and_the_encoder_follows_its_changes() -> None:
    state, stats, header = path_monitor_state()
    doc = status_document(header, stats, state, {})  # type: ignore[arg-type]
    encoder = StatusEncoder()
    assert json.loads(encoder.encode(header, stats, state, {})) == doc  # type: ignore[arg-type]
    s1 = next(s for s in doc["subscriptions"] if s["subscription"] == "s1")
    assert s1["backfill"] == {
        "records_done": 400,
        "records_total": 1000,
        "state": "delivering",
        "per_second": 100.0,
        "eta_seconds": 6.0,
    }
    assert s1["source_backlog"] == {"rows": 4, "oldest_seconds": 30.0}
    assert s1["path_lag_seconds"] == 30.0
    assert s1["lag_history"][-1][2] == 30.0
    assert doc["history"]["bucket_seconds"] == 10.0
    assert doc["history"]["buckets"] == 90
    assert doc["path"]["restore"]["partitions_total"] == 6
    assert doc["path"]["sources"][0]["rows"] == 4
    assert doc["path"]["drained"] is False

    state.history.add(NOW_MS / 1000 + 10, {"s0": 0.0, "s1": 45.0, "s2": 0.0})  # type: ignore[attr-defined]
    again = json.loads(encoder.encode(header, stats, state, {}))  # type: ignore[arg-type]
    assert next(s for s in again["subscriptions"] if s["subscription"] == "s1")["lag_history"][-1][2] == 45.0


def test_path_metrics() -> None:
    state, _, _ = path_monitor_state()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PathCollector("pudong", lambda: state, clock=lambda: NOW_MS / 1000 + 2))  # type: ignore[arg-type,return-value]
    text = generate_latest(registry).decode()
    for line in (
        'xhub_path_drained{hub="pudong"} 0.0',
        'xhub_subscription_path_lag_seconds{hub="pudong",subscription="s1"} 30.0',
        'xhub_backfill_records_done{hub="pudong",subscription="s1"} 400.0',
        'xhub_backfill_records_expected{hub="pudong",subscription="s1"} 1000.0',
        'xhub_backfill_eta_seconds{hub="pudong",subscription="s1"} 6.0',
        'xhub_backfill_running{hub="pudong",subscription="s1"} 1.0',
        'xhub_state_restore_running{hub="pudong"} 1.0',
        'xhub_state_restore_partitions_assigned{hub="pudong"} 6.0',
        'xhub_state_restore_records_restored{hub="pudong"} 30000.0',
        'xhub_state_restore_eta_seconds{hub="pudong"} 40.0',
        'xhub_source_backlog_rows{department="amr",hub="pudong",source="db"} 4.0',
        'xhub_source_backlog_oldest_seconds{department="amr",hub="pudong",source="db"} 30.0',
        'xhub_source_backlog_report_age_seconds{department="amr",hub="pudong"} 2.0',
    ):
        assert line in text, line


def test_lag_text_and_figures_from_an_admin_document() -> None:
    state, stats, header = path_monitor_state()
    doc = status_document(header, stats, state, {})  # type: ignore[arg-type]
    figures = figures_of_status("pudong", "http://hub:8090", doc)
    assert figures.backfills["s1"] == Progress(400, 1000, "delivering", 100.0, 6.0)
    assert figures.restore == RestoreProgress(6, 2, Progress(30_000, 90_000, "restoring", 1500.0, 40.0))
    text = format_path(state.path, [figures])  # type: ignore[attr-defined]
    assert "s1        delivering   400  1,000     100  6.0s" in text
    assert "RESTORE  pudong: restoring 2/6 partitions, 30,000 / 90,000 records, ETA 40s" in text
    assert "amr         db      STALL             4     30s" in text
    assert "4 rows not published, oldest 30 s (source running)" in text
    assert text.endswith(
        "PATH     not drained: state store restoring: 2/6 partitions; 1 backfill(s) running: s1; "
        "sources not yet published: amr/db"
    )
    unknown = format_path(
        state.path, [HubFigures("pudong", {}, None, "committed offsets (admin port not reachable)")]
    )  # type: ignore[attr-defined]
    assert "RESTORE  pudong: unknown (committed offsets (admin port not reachable))" in unknown


def test_restores_of_several_hubs_add_up() -> None:
    a = HubFigures("a", {}, RestoreProgress(2, 1, Progress(10, 20, "restoring", 1.0, 10.0)), "x")
    b = HubFigures("b", {}, RestoreProgress(3, 3, Progress(30, 30, "done", None, 0.0)), "y")
    c = HubFigures("c", {}, None, "z")
    both = combined_restore([a, b, c])
    assert (both.partitions_total, both.partitions_done, both.records.done, both.records.total) == (
        5,
        4,
        40,
        50,
    )
    assert both.running
    assert both.records.eta_seconds == 10.0
