"""A sidecar runs its sinks too: deliveries of its subscriptions reach the sink, and are counted."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

from connectors.testing.catalog import write_catalog, write_connector_config
from connectors.testing.records import RESOURCE, SCHEMA, citizen_id, record
from connectors.testing.runtime import running_sidecar, serde_for, shared_registry, wait_for
from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes
from hub.core.kafka import ensure_topics, make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import delivery_topic, sink_instance_id
from tests.integration.sidecar_restart import sidecar_restart_recovery


def test_sinks_consume_the_delivery_topics_of_the_departments_subscriptions(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    owner, subscriber = f"t{uuid.uuid4().hex[:10]}", f"s{uuid.uuid4().hex[:10]}"
    registry = shared_registry()
    catalog = write_catalog(
        tmp_path / "config",
        owner,
        bootstrap=kafka.bootstrap_servers,
        registry_url=registry.url,
        subscriber=subscriber,
    )
    out = tmp_path / "deliveries.jsonl"
    config = write_connector_config(
        tmp_path / "connector.yaml",
        dept=subscriber,
        catalog=catalog,
        bootstrap=kafka.bootstrap_servers,
        registry_url=registry.url,
        sources=[],
        sinks=[{"name": "lines", "hub": "testhub", "type": "jsonl", "path": str(out), "fsync": False}],
    )
    topic = delivery_topic("testhub", f"{subscriber}-enrolees")
    admin = make_admin(kafka)
    ensure_topics(admin, {topic: {}}, partitions=1)
    admin.close()
    serde = serde_for(registry.url)
    schema = change_event_schema(RESOURCE, SCHEMA)
    producer = make_producer(kafka, "test-hub")
    for n in range(3):
        data = record(n)
        data["birth_date"] = 5630
        event = ChangeEvent(RESOURCE, "c", citizen_id(n), n + 1, owner, "test", 1_700_000_000_000, data)
        producer.send(
            topic, key=key_bytes(event.key), value=serde.encode(f"{topic}-value", schema, event.to_avro())
        )
    producer.flush()
    producer.close()

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
