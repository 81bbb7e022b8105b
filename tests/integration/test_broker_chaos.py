"""Broker failures on a real three-broker cluster, with the hub, sidecars and SQL sinks on a steady stream:
nothing lost, nothing repeated, the audit intact (tests/integration/broker_chaos.py says how).

`make test` runs the short form (one broker restarted, a slow stream); `make chaos` runs the four
failures, each on a fresh path, and writes build/chaos/summary.json (the chaos marker keeps it out of a
plain pytest run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.core.kafka_settings import KafkaSettings
from tests.fixtures.brokers import private_broker
from tests.integration.broker_chaos import (
    BROKERS,
    CLUSTER_PORT,
    SCENARIOS,
    SHORT_SCENARIO,
    SUMMARY,
    ChaosRun,
    ScenarioResult,
    chaos_run,
    run_scenario,
    summary_table,
    write_summary,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaSettings]:
    """Three broker+controller nodes of deploy/local/kafka.sh on ports of their own, stopped at the end."""
    with private_broker(CLUSTER_PORT, heap="512m", brokers=BROKERS) as settings:
        yield settings


def test_broker_restarted_mid_stream_every_row_once_in_every_sink(
    cluster: KafkaSettings, tmp_path: Path
) -> None:
    # Short: a slow stream, a shorter quiet window and shorter waits for recovery.
    with chaos_run(
        cluster, CLUSTER_PORT, tmp_path / "run", rate=10, quiet_s=5, baseline_s=4, recovery_timeout_s=45
    ) as run:
        result = run_scenario(run, SHORT_SCENARIO)
    print(result.to_json())  # the recovery seconds, for a look with -s or on a failure
    assert result.failures == []


@pytest.mark.chaos
def test_broker_failures_measured(cluster: KafkaSettings) -> None:
    runs: list[tuple[ChaosRun, ScenarioResult]] = []
    # XHUB_CHAOS_SCENARIOS=kill-txn-coordinator,... runs only those (to look at one failure again)
    chosen = [n for n in os.environ.get("XHUB_CHAOS_SCENARIOS", ",".join(SCENARIOS)).split(",") if n]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    assert not unknown, f"XHUB_CHAOS_SCENARIOS names no scenario {unknown}; there are {sorted(SCENARIOS)}"
    try:
        for name in chosen:
            # Beside the summary, so that the logs of the hub and the sidecars stay for a look afterwards.
            with chaos_run(cluster, CLUSTER_PORT, SUMMARY.parent / name, rate=20) as run:
                runs.append((run, run_scenario(run, name)))
    finally:  # the figures are written even when something raised midway
        print("\n" + summary_table(write_summary(runs, rate=20)))
    assert {r.scenario: r.failures for _, r in runs} == {name: [] for name in chosen}
