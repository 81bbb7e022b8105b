"""Broker failures on a real three-broker cluster, with the hub, sidecars and SQL sinks on a steady stream:
nothing lost, nothing repeated, the audit intact (tests/integration/broker_chaos.py says how).

`make test` runs the short form (one broker restarted, a slow stream) and the sink group's rejoin after
its coordinator is SIGKILLed mid-rebalance (issue 18, hub/core/group_join.py); `make chaos` runs the four
failures, each on a fresh path, and writes build/chaos/summary.json (the chaos marker keeps it out of a
plain pytest run).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from hub.core.group_join import rejoin_if_stranded
from hub.core.kafka import (
    STATIC_MEMBER_SESSION_TIMEOUT_MS,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from hub.core.kafka_settings import KafkaSettings
from tests.fixtures.brokers import kafka_sh, node_pid, private_broker
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


# -- a sink's group member mid-rebalance when its coordinator is SIGKILLed (issue 18) ------------------
GROUPS = 9  # over three brokers: one of them coordinates at least three of these groups
REJOIN_TIMEOUT_S = 90.0


def sink_like_consumer(kafka: KafkaSettings, group: str) -> KafkaConsumer:
    """A group member configured as the sidecar configures its sinks (static membership)."""
    return make_consumer(
        kafka,
        f"test-{group}",
        group_id=group,
        max_poll_records=500,
        group_instance_id=f"{group}-0",
        session_timeout_ms=STATIC_MEMBER_SESSION_TIMEOUT_MS,
    )


def poll_like_the_sink(consumer: KafkaConsumer) -> set[str]:
    """One poll as SinkLoop._poll makes it (500 ms, then the stranded-rebalance check): the topics read."""
    polled = consumer.poll(timeout_ms=500, max_records=500)
    rejoin_if_stranded(consumer)
    return {tp.topic for tp, records in polled.items() if records}


def test_sink_group_rejoins_after_its_coordinator_is_killed_mid_rebalance(
    cluster: KafkaSettings,
) -> None:
    token = uuid.uuid4().hex[:6]
    first, added = f"rejoin-a-{token}", f"rejoin-b-{token}"
    admin = make_admin(cluster, "test-rejoin")
    producer = make_producer(cluster, "test-rejoin")
    kafka_sh(CLUSTER_PORT, "up", brokers=BROKERS)  # every node, also one an earlier test left down
    consumers: dict[str, KafkaConsumer] = {}
    try:
        ensure_topics(admin, {first: {}, added: {}})
        for n in range(GROUPS):
            consumer = sink_like_consumer(cluster, f"rejoin-{token}-{n}")
            consumer.subscribe([first])
            consumers[f"rejoin-{token}-{n}"] = consumer
        deadline = time.monotonic() + 60
        while not all(c.assignment() for c in consumers.values()):
            assert time.monotonic() < deadline, "the groups did not form in 60 s"
            for consumer in consumers.values():
                consumer.poll(timeout_ms=100)
        by_node: dict[int, list[str]] = {}
        for group, consumer in consumers.items():
            node = int(str(consumer._coordinator.coordinator_id).rsplit("-", 1)[-1])
            by_node.setdefault(node, []).append(group)
        node, groups = max(by_node.items(), key=lambda item: len(item[1]))
        for group in set(consumers) - set(groups):
            consumers.pop(group).close()
        # A rejoin in each group (its member now also reads `added`), SIGKILL while the joins are out.
        for consumer in consumers.values():
            consumer.subscribe([first, added])
            consumer.poll(timeout_ms=1)
        pid = node_pid(CLUSTER_PORT, node, brokers=BROKERS)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        for n in range(30):
            producer.send(added, key=f"k{n}".encode(), value=b"after the kill")
        producer.flush(timeout=60)
        read: dict[str, set[str]] = {group: set() for group in consumers}
        while not all(added in topics for topics in read.values()):
            if time.monotonic() - killed > REJOIN_TIMEOUT_S:
                stuck = {g: str(c._coordinator.state) for g, c in consumers.items() if added not in read[g]}
                raise AssertionError(
                    f"{len(stuck)} of {len(consumers)} sink-like members of groups coordinated by the "
                    f"SIGKILLed broker {node} read nothing of {added} {REJOIN_TIMEOUT_S:.0f} s later: {stuck}"
                )
            for group, consumer in consumers.items():
                read[group] |= poll_like_the_sink(consumer)
    finally:
        for consumer in consumers.values():
            consumer.close()
        producer.close(timeout=10)
        admin.close()
        kafka_sh(CLUSTER_PORT, "up", brokers=BROKERS)


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
