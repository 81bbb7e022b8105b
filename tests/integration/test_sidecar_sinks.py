"""A sidecar runs its sinks too: deliveries of its subscriptions reach the sink, and are counted."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from connectors.testing.records import citizen_id
from connectors.testing.runtime import running_sidecar, wait_for
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import sink_instance_id
from tests.integration.sidecar_restart import sidecar_restart_recovery, subscriber_sidecar


def test_sinks_consume_the_delivery_topics_of_the_departments_subscriptions(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    dept = subscriber_sidecar(kafka, tmp_path)
    for n in range(3):
        dept.deliver(n)
    dept.close()
    out, config = dept.out, dept.config

    with running_sidecar(config) as sidecar:
        assert wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 3, timeout_s=30)
        assert sidecar.health is not None
        with urllib.request.urlopen(f"{sidecar.health.url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        with urllib.request.urlopen(f"{sidecar.health.url}/healthz", timeout=10) as response:
            health = json.loads(response.read())
    assert 'xhub_connector_applied_total{sink="lines"} 3.0' in metrics
    assert health["sinks"]["lines"]["state"] == "running"
    lines = out.read_text().splitlines()
    assert len(lines) == 3
    assert citizen_id(2) in lines[2]


def test_a_sidecar_killed_and_restarted_takes_its_old_place_in_the_sink_group(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    # Static membership: the restarted process rejoins under the same instance id, so the broker hands
    # it the dead member's partitions without waiting out that member's session (bench:
    # sidecar_restart_recovery_s measures how soon).
    recovery = sidecar_restart_recovery(kafka, tmp_path)
    assert [citizen_id(0) in recovery.lines[0], citizen_id(1) in recovery.lines[1]] == [True, True]
    assert len(recovery.lines) == 2, "the row applied before the kill must not be applied again"
    instance_ids = [m.get("group_instance_id") for m in recovery.members]
    assert instance_ids == [sink_instance_id(recovery.subscriber, "lines")], recovery.members
