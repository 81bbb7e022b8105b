"""Broker failures on a three-broker cluster (replication 3, min ISR 2) while a steady stream runs.

The court's debtor table -> its sidecar -> the hub -> the SQL inboxes of two subscribers
(tests.bench.end_to_end.debtor_path), a writer adding rows at a steady rate, and one failure at a time:

- ``kill-source-leader``: SIGKILL the leader of partition 0 of the court's source topic;
- ``kill-txn-coordinator``: SIGKILL the broker coordinating the hub's transactions (DescribeTransactions);
- ``stop-broker-60s``: stop a broker (SIGTERM) for 60 s and start it again;
- ``rolling-restart``: stop and start each broker in turn, waiting for its replicas to catch up.

After each: the writer pauses, every row written is in every inbox exactly once, the hub delivered each
exactly once (its delivery topics, read_committed) and the audit verifies. Recovery, per broker action,
is the seconds from the action until the lag (rows written minus rows in the slowest inbox) is back to
normal and stays so for QUIET_S; normal is twice the lag seen before any failure, at least one second of
stream. Shared by the tests (tests/integration/test_broker_chaos.py) and ``make chaos``, which runs all
four and writes ``build/chaos/summary.json``; ``python -m tests.integration.broker_chaos`` prints its table.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from hub.audit.cli import verify_command
from hub.core import names
from hub.core.kafka import make_admin
from hub.core.kafka_settings import KafkaSettings
from hub.demo.harness import HUB, SINK_TABLES, Demo
from hub.demo.scenario import DepartmentDbs
from tests.bench.end_to_end import debtor_path, debtor_pool
from tests.fixtures.brokers import kafka_sh, node_pid
from tests.fixtures.hubkit import read_all

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "build" / "chaos" / "summary.json"
# The cluster's first port (nodes on it, +2, +4); others on this machine use 9092-9193 and 19192-19593.
CLUSTER_PORT = int(os.environ.get("XHUB_CHAOS_PORT", "29110"))
BROKERS = 3
# Two SQL sinks of two departments that publish nothing themselves; no row filter.
SUBSCRIPTIONS = ("tax-debtors", "transport-debtors")
SOURCE_TOPIC = names.source_topic("court", "PD-CRD-0001")
QUIET_S = 10.0  # lag normal this long: recovered, not a lull between two stalls
# Longest wait for recovery after one broker action: past it the scenario fails (noted, and the next
# action still runs: a broker killed is brought back, so that what its return does is measured too).
RECOVERY_TIMEOUT_S = 90.0
OUTAGE_S = 60.0


class Stream:
    """Writes debtor rows into the court's table at ``rate`` per second on a thread, until paused."""

    def __init__(self, dbs: DepartmentDbs, rate: float) -> None:
        self.dbs = dbs
        self.rate = rate
        self.keys: list[str] = []
        self._pool = debtor_pool(500)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def written(self) -> int:
        return len(self.keys)

    def resume(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.failure is not None:
            raise AssertionError(f"the writer failed: {self.failure!r}")

    def _write(self) -> None:
        try:
            conn = self.dbs.connect("court")
            start, sent = time.monotonic(), 0
            while not self._stop.is_set():
                while sent < (time.monotonic() - start) * self.rate:
                    n = len(self.keys)
                    record = dict(self._pool[n % len(self._pool)])
                    record["case_no"] = f"(2026)沪0115执{n:07d}号"
                    self.dbs.upsert(conn, "dishonest_debtor", record)  # autocommit: one change each
                    self.keys.append(record["case_no"])
                    sent += 1
                self._stop.wait(0.02)
            conn.close()
        except BaseException as exc:  # reported by pause()
            self.failure = exc


@dataclass
class ScenarioResult:
    scenario: str
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    """Per broker action: seconds to normal lag, None when not within RECOVERY_TIMEOUT_S."""
    max_lag_rows: int = 0
    rows: int = 0
    checks: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def recover_s(self) -> float | None:
        seconds = [r["recover_s"] for r in self.recoveries]
        return None if None in seconds else max(seconds, default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "passed": not self.failures,
            "failures": self.failures,
            "recover_s": self.recover_s,
            "recoveries": self.recoveries,
            "max_lag_rows": self.max_lag_rows,
            "rows": self.rows,
            "checks": self.checks,
        }


@dataclass
class ChaosRun:
    """The running path on the cluster from ``port``, with the stream and the measurements."""

    kafka: KafkaSettings
    port: int
    demo: Demo
    stream: Stream
    admin: KafkaAdminClient
    quiet_s: float = QUIET_S
    recovery_timeout_s: float = RECOVERY_TIMEOUT_S
    normal_lag: int = 0
    baseline_lag: int = 0

    # -- looking ---------------------------------------------------------------------------------
    def inbox_keys(self, sid: str) -> list[str]:
        path = self.demo.workdir / "db" / f"{sid.split('-', maxsplit=1)[0]}-inbox.db"
        if not path.exists():
            return []
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                table = SINK_TABLES[sid]
                return [r[0] for r in conn.execute(f'SELECT case_no FROM "{table}"')]
            finally:
                conn.close()
        except sqlite3.OperationalError:  # the sink has not created its table yet, or a write lock
            return []

    def lag(self) -> int:
        return self.stream.written - min(len(self.inbox_keys(sid)) for sid in SUBSCRIPTIONS)

    def measure_baseline(self, seconds: float) -> None:
        """The lag of the undisturbed stream, once every inbox received rows and caught up with its start."""
        self.wait_flowing(int(self.stream.rate * 2))
        self.wait_caught_up(self.stream.rate * 2)
        samples = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            samples.append(self.lag())
            time.sleep(0.25)
        self.baseline_lag = max(samples)
        self.normal_lag = max(2 * self.baseline_lag, int(self.stream.rate))

    def wait_flowing(self, rows: int, timeout_s: float = RECOVERY_TIMEOUT_S) -> None:
        """Until every inbox holds ``rows``: a "normal" lag measured while a sink receives nothing yet
        is the stream's whole length (a make chaos run took 156 rows, 8 s of stream, for normal)."""
        deadline = time.monotonic() + timeout_s
        while (held := {sid: len(self.inbox_keys(sid)) for sid in SUBSCRIPTIONS}) and min(
            held.values()
        ) < rows:
            self.demo.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the path does not flow: after {timeout_s:.0f} s the inboxes hold {held} rows of "
                    f"{self.stream.written} written (logs in {self.demo.workdir / 'logs'})"
                )
            time.sleep(0.25)

    def wait_caught_up(self, within: float, timeout_s: float = RECOVERY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while self.lag() > within:
            self.demo.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"the inboxes lag {self.lag()} rows after {timeout_s:.0f} s")
            time.sleep(0.25)

    def recovery(self, result: ScenarioResult, action: str, since: float) -> None:
        """Seconds from ``since`` (the broker action) until the lag is normal and stays so ``quiet_s``;
        a failure of ``result`` when that takes over ``recovery_timeout_s``."""
        last_bad = since
        while time.monotonic() - last_bad < self.quiet_s:
            self.demo.check_alive()
            lag = self.lag()
            result.max_lag_rows = max(result.max_lag_rows, lag)
            if lag > self.normal_lag:
                last_bad = time.monotonic()
            if time.monotonic() - since > self.recovery_timeout_s:
                result.recoveries.append({"action": action, "recover_s": None, "lag_rows": lag})
                result.failures.append(
                    f"{action}: the lag is {lag} rows {self.recovery_timeout_s:.0f} s later (normal: "
                    f"{self.normal_lag}; logs in {self.demo.workdir / 'logs'})"
                )
                return
            time.sleep(0.25)
        result.recoveries.append({"action": action, "recover_s": round(last_bad - since, 1)})

    # -- the brokers -------------------------------------------------------------------------------
    def stop_node(self, node: int, sig: signal.Signals) -> float:
        """Send ``sig`` to node ``node``; wait until it is gone. Returns when it was sent."""
        pid = node_pid(self.port, node, brokers=BROKERS)
        sent = time.monotonic()
        os.kill(pid, sig)
        deadline = sent + 60
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"broker {node} (pid {pid}) still runs 60 s after {sig.name}")
            time.sleep(0.1)
        return sent

    def start_missing_nodes(self) -> float:
        """Start the stopped nodes (kafka.sh up starts only those). Returns when they run."""
        kafka_sh(self.port, "up", brokers=BROKERS)
        return time.monotonic()

    def wait_in_sync(self) -> None:
        """Until every replica is in sync again: before the next broker action, as an operator would."""
        deadline = time.monotonic() + 180
        while lagging := self.partitions_out_of_sync():
            if time.monotonic() > deadline:
                raise AssertionError(f"replicas not in sync 180 s after the restart: {lagging[:5]}")
            time.sleep(0.5)

    def brought_back(self, result: ScenarioResult, action: str, since: float | None = None) -> None:
        """Start the stopped nodes; the recovery is measured from ``since`` (default: their start) while
        their replicas catch up (the lag of those seconds counts), then wait until every replica is in
        sync."""
        started = self.start_missing_nodes()
        self.recovery(result, action, started if since is None else since)
        self.wait_in_sync()

    def partitions_out_of_sync(self) -> list[str]:
        topics = self.admin.describe_topics()
        return [
            f"{t['name']}-{p['partition_index']}"
            for t in topics
            for p in t["partitions"]
            if len(p["isr_nodes"]) < len(p["replica_nodes"])
        ]

    def source_leader(self) -> int:
        (topic,) = self.admin.describe_topics([SOURCE_TOPIC])
        (leader,) = [p["leader_id"] for p in topic["partitions"] if p["partition_index"] == 0]
        return int(leader)

    def transaction_coordinator(self) -> int:
        tid = names.hub_transactional_id(HUB, 0)
        return int(self.admin.describe_transactions([tid])[tid].coordinator_id)

    # -- checking ----------------------------------------------------------------------------------
    def where_lost(self, sid: str, keys: list[str]) -> str:
        """Where rows missing from an inbox were lost: how many of them the court's source topic and the
        hub's delivery topic hold (read_committed): in neither, lost before the hub (the sidecar); in the
        source only, lost in the hub; in both, lost in the subscriber's sidecar."""
        if not keys:
            return "none missing"
        source = _keys_in(self.kafka, SOURCE_TOPIC)
        delivered = _keys_in(self.kafka, names.delivery_topic(HUB, sid))
        return (
            f"of them {sum(k in source for k in keys)} in {SOURCE_TOPIC}, "
            f"{sum(k in delivered for k in keys)} in the delivery topic"
        )

    def check_exactly_once(self, result: ScenarioResult) -> None:
        """With the writer paused: every row in every inbox once, delivered once, the audit intact."""
        self.stream.pause()
        try:
            self._check_exactly_once(result)
        except AssertionError as exc:
            result.failures.append(str(exc))
        finally:
            self.stream.resume()

    def _check_exactly_once(self, result: ScenarioResult) -> None:
        expected = set(self.stream.keys)
        result.rows = len(expected)
        stalled = ""
        try:
            self.wait_caught_up(0, timeout_s=self.recovery_timeout_s)
        except AssertionError as exc:  # stalled or lost: the inboxes say which rows
            stalled = f"{exc}; "
        for sid in SUBSCRIPTIONS:
            keys = self.inbox_keys(sid)
            held = set(keys)
            # Which rows, as their places in the order written (the keys are case numbers: not logged).
            missing = [n for n, key in enumerate(self.stream.keys) if key not in held]
            assert (len(keys), held) == (len(expected), expected), (
                f"{result.scenario}: {stalled}inbox of {sid} has {len(keys)} rows for {len(expected)} "
                f"written (missing {len(missing)}: rows {row_ranges(missing)} in the order written; "
                f"{self.where_lost(sid, [self.stream.keys[n] for n in missing])}; "
                f"unexpected {len(held - expected)})"
            )
            topic = names.delivery_topic(HUB, sid)
            deliveries = read_all(self.kafka, topic, expect=len(expected), timeout=120)
            repeated = [k for k, n in Counter(r.key for r in deliveries).items() if n > 1]
            assert (len(deliveries), repeated) == (len(expected), []), (
                f"{result.scenario}: {topic} holds {len(deliveries)} deliveries for {len(expected)} rows, "
                f"{len(repeated)} keys more than once"
            )
            result.checks[sid] = {"rows": len(keys), "deliveries": len(deliveries)}
        report = io.StringIO()
        code = verify_command(str(self.demo.workdir / "config"), HUB, out=report)
        assert code == 0, f"{result.scenario}: the audit does not verify:\n{report.getvalue()}"
        result.checks["audit"] = report.getvalue().splitlines()[0]


def _keys_in(kafka: KafkaSettings, topic: str) -> set[str]:
    return {r.key.decode("utf-8") for r in read_all(kafka, topic, idle=3.0, timeout=120) if r.key}


def row_ranges(rows: list[int]) -> str:
    """Ascending row numbers as ranges: [3, 4, 5, 9] -> "#3-#5, #9"."""
    spans: list[list[int]] = []
    for n in rows:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in spans) or "none"


# -- the scenarios -------------------------------------------------------------------------------------
def kill_source_leader(run: ChaosRun, result: ScenarioResult) -> None:
    node = run.source_leader()
    killed = run.stop_node(node, signal.SIGKILL)
    run.recovery(result, f"SIGKILL broker {node} (leader of {SOURCE_TOPIC}-0)", killed)
    run.brought_back(result, f"broker {node} back")


def kill_transaction_coordinator(run: ChaosRun, result: ScenarioResult) -> None:
    node = run.transaction_coordinator()
    killed = run.stop_node(node, signal.SIGKILL)
    run.recovery(result, f"SIGKILL broker {node} (the hub's transaction coordinator)", killed)
    run.brought_back(result, f"broker {node} back")


def stop_broker_for_a_minute(run: ChaosRun, result: ScenarioResult) -> None:
    node = BROKERS  # the last node: the others are still bootstrap servers of every client
    stopped = run.stop_node(node, signal.SIGTERM)
    run.recovery(result, f"broker {node} stopped", stopped)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    run.brought_back(result, f"broker {node} back after {OUTAGE_S:.0f} s")


def restart_brokers(run: ChaosRun, result: ScenarioResult, nodes: range) -> None:
    for node in nodes:
        stopped = run.stop_node(node, signal.SIGTERM)
        run.brought_back(result, f"broker {node} restarted (from its stop)", since=stopped)


def rolling_restart(run: ChaosRun, result: ScenarioResult) -> None:
    restart_brokers(run, result, range(1, BROKERS + 1))


def restart_one_broker(run: ChaosRun, result: ScenarioResult) -> None:
    """The first step of a rolling restart: the short form in `make test`."""
    restart_brokers(run, result, range(BROKERS, BROKERS + 1))


# The graceful ones first: the SIGKILLs are the ones known to wedge the hub (README: Deploying).
SCENARIOS: dict[str, Callable[[ChaosRun, ScenarioResult], None]] = {
    "stop-broker-60s": stop_broker_for_a_minute,
    "rolling-restart": rolling_restart,
    "kill-source-leader": kill_source_leader,
    "kill-txn-coordinator": kill_transaction_coordinator,
}
SHORT_SCENARIO = "restart-one-broker"
ALL_SCENARIOS = {**SCENARIOS, SHORT_SCENARIO: restart_one_broker}


@contextmanager
def chaos_run(
    kafka: KafkaSettings,
    port: int,
    workdir: Path,
    *,
    rate: float,
    quiet_s: float = QUIET_S,
    baseline_s: float = 8.0,
    recovery_timeout_s: float = RECOVERY_TIMEOUT_S,
) -> Iterator[ChaosRun]:
    """The debtor path running on the cluster with the stream writing at ``rate`` rows per second."""
    kafka_sh(port, "up", brokers=BROKERS)  # every node, also one an earlier short run left down
    admin = make_admin(kafka, "chaos")
    try:
        with debtor_path(kafka, workdir, SUBSCRIPTIONS, rate=rate, log_level="INFO") as (demo, dbs):
            stream = Stream(dbs, rate)
            run = ChaosRun(
                kafka, port, demo, stream, admin, quiet_s=quiet_s, recovery_timeout_s=recovery_timeout_s
            )
            stream.resume()
            try:
                run.measure_baseline(baseline_s)
                yield run
            finally:
                stream.pause()
    finally:
        admin.close()


def run_scenario(run: ChaosRun, name: str) -> ScenarioResult:
    """One failure on the running path, then the exactly-once and audit checks."""
    result = ScenarioResult(name)
    ALL_SCENARIOS[name](run, result)
    run.check_exactly_once(result)
    return result


def write_summary(
    runs: list[tuple[ChaosRun, ScenarioResult]], rate: float, path: Path = SUMMARY
) -> dict[str, Any]:
    """Each scenario ran on a path of its own (a hub wedged by one failure must not fail the next)."""
    summary = {
        "cluster": f"{BROKERS} KRaft broker+controller nodes, replication 3, min.insync.replicas 2",
        "stream_rows_per_s": rate,
        "sinks": list(SUBSCRIPTIONS),
        "quiet_s": QUIET_S,
        "recovery_timeout_s": RECOVERY_TIMEOUT_S,
        "scenarios": [
            {**r.to_json(), "baseline_lag_rows": run.baseline_lag, "normal_lag_rows": run.normal_lag}
            for run, r in runs
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return summary


def summary_table(summary: dict[str, Any]) -> str:
    lines = [
        f"broker failures: {summary['cluster']}; stream {summary['stream_rows_per_s']:.0f} rows/s into "
        f"{len(summary['sinks'])} SQL sinks; recovered = lag back to normal for {summary['quiet_s']:.0f} s",
        f"{'scenario':<22} {'recover s':>9} {'max lag':>8} {'normal':>6} {'rows':>6}  exactly once + audit",
    ]
    for s in summary["scenarios"]:
        recover = "-" if s["recover_s"] is None else f"{s['recover_s']:.1f}"
        verdict = "ok" if s["passed"] else "FAILED"
        lines.append(
            f"{s['scenario']:<22} {recover:>9} {s['max_lag_rows']:>8} {s['normal_lag_rows']:>6} "
            f"{s['rows']:>6}  {verdict}"
        )
        for r in s["recoveries"]:
            took = "not within the timeout" if r["recover_s"] is None else f"{r['recover_s']:.1f} s"
            lines.append(f"    {r['action']}: {took}")
        lines += [f"    failed: {f}" for f in s["failures"]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary_table(json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else SUMMARY).read_text())))
