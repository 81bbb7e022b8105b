"""What keeps the monitor's cost flat as the catalog grows: pure parts, no Kafka.

Topic metadata looked up in bounded slices, one status window per group and topic, rows and views kept
while nothing changes, cached renderings of /api/status and /metrics, targets rebuilt only when the plans
change, and the refresh interval that grows with the refresh time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.config import load_config
from hub.engine.policy_set import PolicySet
from hub.engine.stats import WorkerStats
from hub.monitor.admin import AdminOptions, AdminServer
from hub.monitor.board import LagBoard, SubscriptionLag
from hub.monitor.lag import HUB, SUBSCRIBER, GroupLag, PartitionLag, Target, refusals_change_at
from hub.monitor.metadata import TopicPartitions
from hub.monitor.metrics import HubCollector, LagSeries
from hub.monitor.snapshot import (
    MonitorState,
    StatsCopy,
    StatusEncoder,
    StatusHeader,
    SubscriptionCounts,
    copy_stats,
    status_document,
)
from hub.monitor.status import Rules, Status

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
NOW_MS = 1_800_000_000_000
SOURCE = "xhub.src.amr.pd-soc-0001"


def target(sub: str, source: str = SOURCE) -> Target:
    return Target("pudong", sub, "tax", "PD-SOC-0001", "amr", source, f"xhub.dlv.pudong.{sub}")


# -- topic metadata ------------------------------------------------------------------------------
class Describer:
    def __init__(self, existing: Mapping[str, tuple[int, ...]]) -> None:
        self.existing = dict(existing)
        self.calls: list[list[str]] = []
        self.unsettled: set[str] = set()

    def __call__(self, names: Sequence[str]) -> dict[str, tuple[int, ...] | None]:
        self.calls.append(list(names))
        return {n: self.existing.get(n) for n in names if n not in self.unsettled}


def test_topics_are_described_once_then_rechecked_in_bounded_slices() -> None:
    now = [0.0]
    names = {f"t{i}" for i in range(10)}
    describe = Describer({"t0": (0, 1), "t1": (0,)})
    cache = TopicPartitions(describe, max_age=60.0, batch=3, clock=lambda: now[0])
    found = cache.get(names)
    assert describe.calls == [sorted(names)]  # every new name in one request
    assert found.get("t0") == (0, 1)
    assert found.get("t5", ()) is None  # missing: known to be absent
    now[0] = 30.0
    cache.get(names)
    assert len(describe.calls) == 1  # nothing due yet
    describe.existing["t7"] = (0, 1, 2)  # `xhub apply` created it
    now[0] = 61.0
    seen: set[str] = set()
    for _ in range(4):
        cache.get(names)
        assert len(describe.calls[-1]) <= 3  # never more than a slice per refresh
        seen.update(describe.calls[-1])
    assert seen == names  # every topic looked at again within a few refreshes
    assert cache.get(names).get("t7") == (0, 1, 2)


def test_new_names_unsettled_answers_and_forgetting() -> None:
    describe = Describer({"a": (0,)})
    describe.unsettled = {"b"}
    cache = TopicPartitions(describe, batch=1, clock=lambda: 0.0)
    assert "b" not in cache.get({"a", "b"})
    cache.get({"a", "b"})
    assert describe.calls[-1] == ["b"]  # an unsettled name is asked again at once
    describe.unsettled = set()
    assert cache.get({"a", "b"}).get("b", ()) is None
    cache.get({"a", "b", "c"})
    assert describe.calls[-1] == ["c"]  # a new name is asked at once
    describe.existing["b"] = (0, 1)
    cache.forget_missing()
    assert cache.get({"a", "b", "c"}).get("b") == (0, 1)
    assert describe.calls[-1] == ["b", "c"]  # only the missing ones


# -- the board -----------------------------------------------------------------------------------
@dataclass
class SharedProbe:
    """Like LagProbe: one GroupLag per group and topic, a missing delivery topic's lag kept as is."""

    ts_ms: int = NOW_MS
    hub_lag: int = 0
    calls: int = 0
    missing: dict[str, GroupLag] = field(default_factory=dict)

    def measure(self, targets: Sequence[Target]) -> dict[tuple[str, str], GroupLag]:
        self.calls += 1
        self.ts_ms += 2000
        out: dict[tuple[str, str], GroupLag] = {}
        shared: dict[str, GroupLag] = {}
        for t in targets:
            group, topic = t.group_and_topic(HUB)
            if topic not in shared:
                waiting = PartitionLag(
                    0, 10 + self.hub_lag, 10, 10, self.hub_lag, self.ts_ms - 500 if self.hub_lag else None
                )
                shared[topic] = GroupLag(HUB, group, topic, self.ts_ms, (waiting,), members=1)
            out[(t.subscription, HUB)] = shared[topic]
            sink, delivery = t.group_and_topic(SUBSCRIBER)
            if delivery not in self.missing:
                self.missing[delivery] = GroupLag(
                    SUBSCRIBER, sink, delivery, self.ts_ms, error=f"no delivery topic yet: topic {delivery}"
                )
            out[(t.subscription, SUBSCRIBER)] = self.missing[delivery]
        return out


def test_board_keeps_one_window_per_group_and_topic_and_unchanged_rows() -> None:
    probe = SharedProbe()
    board = LagBoard(probe, Rules(window=10.0, stall_after=3.0))
    targets = tuple(target(f"s{i}", source=f"xhub.src.amr.pd-soc-{i % 3:04d}") for i in range(30))
    first = board.refresh(targets)
    assert len(board._trackers) == 3  # three source topics, thirty subscriptions
    assert all(r.subscriber.status is Status.STOP for r in first)
    assert first[0].subscriber.verdict.reason.startswith("no delivery topic yet")
    rows = first
    for _ in range(4):
        rows = board.refresh(targets)
    assert all(r.hub.verdict.reason == "idle" for r in rows)
    again = board.refresh(targets)
    assert all(a is b for a, b in zip(rows, again, strict=True))  # idle: the very same row objects
    assert again[0].hub is again[3].hub  # one view for every subscription on the topic

    probe.hub_lag = 5
    busy = board.refresh(targets)
    assert busy[0] is not again[0]
    assert busy[0].hub.lag.lag_records == 5
    assert busy[0].status is Status.STOP  # the worse of hub OK and subscriber STOP
    assert busy[1].hub.status is Status.OK

    board.refresh(targets[:3])
    assert len(board._trackers) == 3
    board.refresh(targets[:1])
    assert set(board._trackers) == {(HUB, "xhub-hub-pudong", "xhub.src.amr.pd-soc-0000")}


# -- rendering -----------------------------------------------------------------------------------
def idle_state(count: int) -> tuple[MonitorState, LagBoard]:
    probe = SharedProbe()
    board = LagBoard(probe)
    targets = tuple(target(f"s{i}") for i in range(count))
    rows: list[SubscriptionLag] = []
    for _ in range(3):
        rows = board.refresh(targets)
    return MonitorState(targets, tuple(rows), NOW_MS, 0.01, None, 0, {}, {"s1": 2.5}, 2.5), board


def test_status_encoder_matches_the_document_and_reuses_unchanged_rows() -> None:
    state, _ = idle_state(4)
    stats = StatsCopy(
        consumed=9, subscriptions={"s1": SubscriptionCounts(delivered=9, last_delivery_ms=NOW_MS)}
    )
    names = {"tax": "税务局", "amr": "市场监督管理局"}
    header = StatusHeader("pudong", "浦东", True, NOW_MS, 60.0)
    encoder = StatusEncoder()
    body = encoder.encode(header, stats, state, names)
    assert json.loads(body) == status_document(header, stats, state, names)
    cached = dict(encoder._items)
    encoder.encode(header, stats, state, names)
    assert all(encoder._items[s][-1] is cached[s][-1] for s in cached)  # no row encoded again
    more = StatsCopy(
        consumed=10, subscriptions={"s1": SubscriptionCounts(delivered=10, last_delivery_ms=NOW_MS)}
    )
    doc = json.loads(encoder.encode(header, more, state, names))
    assert {r["subscription"]: r["delivered"] for r in doc["subscriptions"]} == {
        "s0": 0,
        "s1": 10,
        "s2": 0,
        "s3": 0,
    }
    assert encoder._items["s0"][-1] is cached["s0"][-1]


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_lag_series_are_the_collector_s_series_rendered_once_per_row() -> None:
    state, _ = idle_state(3)
    odd = Target('pu"dong', 'we"ird\\sub\nx', "tax", "R", "amr", SOURCE, "xhub.dlv.pudong.weird")
    rows = (*state.rows, SubscriptionLag(odd, state.rows[0].hub, state.rows[0].subscriber))
    state = MonitorState(state.targets, rows)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector("pudong", WorkerStats(), lambda: state, lambda: True))
    everything = samples_of(generate_latest(registry).decode())
    expected = {
        k: v
        for k, v in everything.items()
        if k[0].startswith("xhub_subscription_") and "last_delivery" not in k[0]
    }

    series = LagSeries("pudong")
    text = series.render(rows).decode()
    assert samples_of(text) == expected
    # per row: hub kind 8 (records, seconds, status x5, consumers), missing delivery topic 5 (status x5)
    assert len(expected) == 4 * (8 + 5)
    blocks = dict(series._blocks)
    assert series.render(rows).decode() == text
    assert all(series._blocks[s][1] is blocks[s][1] for s in blocks)  # nothing rendered again


def test_admin_renders_lag_series_once() -> None:
    admin = AdminServer(load_config(DEMO), "pudong", StubWorker(), registry_url=None)  # type: ignore[arg-type]
    admin._state, _ = idle_state(2)
    names = [f.name for f in text_string_to_metric_families(admin.metrics().decode())]
    assert names.count("xhub_subscription_lag_records") == 1
    assert "xhub_monitor_refresh_interval_seconds" in names


# -- the admin server's targets and interval ------------------------------------------------------
class StubWorker:
    def __init__(self) -> None:
        self.stats = WorkerStats()
        self.policies = PolicySet(hub="pudong", digest="")
        self.ready = threading.Event()
        self.backfills: dict[str, object] = {}  # read by the admin server's path section


def test_targets_are_rebuilt_only_when_the_plans_change() -> None:
    from hub.engine.policy_set import build_policy_set

    cfg = load_config(DEMO)
    worker = StubWorker()
    worker.policies = build_policy_set("pudong", cfg, secret=b"k" * 32, digest="a")
    admin = AdminServer(cfg, "pudong", worker, registry_url=None)  # type: ignore[arg-type]
    first = admin.targets()
    assert first
    assert admin.targets() is first
    worker.policies = build_policy_set("pudong", cfg, secret=b"k" * 32, digest="b")
    second = admin.targets()
    assert second is not first
    assert second == first


def test_refusals_change_when_a_grant_starts_or_ends() -> None:
    @dataclass
    class Plan:
        refusal: str | None = None
        valid_from_ms: int | None = None
        valid_until_ms: int | None = None

    plans = [
        Plan(valid_from_ms=NOW_MS + 5),
        Plan(valid_until_ms=NOW_MS + 3),
        Plan("revoked", NOW_MS + 1),
        Plan(),
    ]
    assert refusals_change_at(plans, NOW_MS) == NOW_MS + 3  # type: ignore[arg-type]
    assert refusals_change_at(plans, NOW_MS + 10) is None  # type: ignore[arg-type]


def test_interval_grows_with_the_refresh_time_and_is_said_on_the_page() -> None:
    admin = AdminServer(
        load_config(DEMO), "pudong", StubWorker(), registry_url=None, options=AdminOptions(interval=2.0)
    )  # type: ignore[arg-type]
    assert admin.max_interval == 30.0
    assert admin.next_wait(3.0) == 0.0  # the first refresh (clients, every topic) does not count
    assert admin.next_wait(0.04) == 2.0 - 0.04  # cheap: the configured interval
    assert admin.next_wait(0.3) == 2.0 - 0.3  # one slow answer does not stretch it
    assert admin.next_wait(0.25) == 0.25 / 0.05 - 0.25  # slow twice: 5 s, 5% of the time measuring
    admin.next_wait(2.0)
    assert admin.next_wait(2.0) == 30.0 - 2.0  # 40 s wanted, never beyond the cap (half the window)
    state = MonitorState((target("a"),), refresh_seconds=0.25, period=5.0, interval=2.0, max_share=0.05)
    assert "every 5 s instead of 2 s" in state.period_note()
    assert MonitorState(period=2.0, interval=2.0, max_share=0.05).period_note() == ""


def test_copy_without_subscriptions_keeps_the_totals() -> None:
    stats = WorkerStats()
    stats.subscriptions["a"].delivered = 3
    stats.subscriptions["b"].delivered = 4
    stats.subscriptions["b"].refused = 1
    copy = copy_stats(stats, subscriptions=False)
    assert copy.delivered == 7
    assert copy.outcome_total("refused") == 1
