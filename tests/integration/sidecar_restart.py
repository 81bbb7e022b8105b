"""A subscriber's sidecar killed with SIGKILL and restarted: how soon does it apply deliveries again?

Shared by the integration test (which checks the sink joined its group as a static member and the row
arrives) and the bench (which reports the seconds as ``sidecar_restart_recovery_s``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.testing.catalog import write_catalog, write_connector_config
from connectors.testing.records import RESOURCE, SCHEMA, citizen_id, record
from connectors.testing.runtime import SidecarProcess, serde_for, shared_registry, wait_for
from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes
from hub.core.kafka import ensure_topics, make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import delivery_topic, sink_group

SINK = "lines"


@dataclass(frozen=True)
class RestartRecovery:
    """What one kill-and-restart showed."""

    seconds: float
    """From the SIGKILL to the first row the restarted sidecar applied."""
    members: list[dict[str, Any]]
    """The sink group's members after the restart (as the broker describes them)."""
    group: str
    subscriber: str
    lines: list[str]


def sidecar_restart_recovery(kafka: KafkaSettings, workdir: Path) -> RestartRecovery:
    """Run a subscriber sidecar with a JSON-lines sink, kill -9 it once, restart it and time the next row."""
    owner, subscriber = f"t{uuid.uuid4().hex[:10]}", f"s{uuid.uuid4().hex[:10]}"
    registry = shared_registry()
    catalog = write_catalog(
        workdir / "config",
        owner,
        bootstrap=kafka.bootstrap_servers,
        registry_url=registry.url,
        subscriber=subscriber,
    )
    out = workdir / "deliveries.jsonl"
    config = write_connector_config(
        workdir / "connector.yaml",
        dept=subscriber,
        catalog=catalog,
        bootstrap=kafka.bootstrap_servers,
        registry_url=registry.url,
        sources=[],
        sinks=[{"name": SINK, "hub": "testhub", "type": "jsonl", "path": str(out), "fsync": False}],
    )
    topic = delivery_topic("testhub", f"{subscriber}-enrolees")
    admin = make_admin(kafka)
    ensure_topics(admin, {topic: {}}, partitions=1)
    serde = serde_for(registry.url)
    schema = change_event_schema(RESOURCE, SCHEMA)
    producer = make_producer(kafka, "test-hub")

    def deliver(n: int) -> None:
        data = record(n)
        data["birth_date"] = 5630
        event = ChangeEvent(RESOURCE, "c", citizen_id(n), n + 1, owner, "test", 1_700_000_000_000, data)
        value = serde.encode(f"{topic}-value", schema, event.to_avro())
        producer.send(topic, key=key_bytes(event.key), value=value)
        producer.flush()

    def applied(count: int) -> bool:
        return out.exists() and len(out.read_text().splitlines()) >= count

    sidecar = SidecarProcess(config, workdir / "sidecar.log")
    try:
        sidecar.start()
        sidecar.wait_started()
        deliver(0)
        if not wait_for(lambda: applied(1), timeout_s=60):
            raise AssertionError(f"the first row never reached the sink (log: {sidecar.log_path})")
        sidecar.kill()
        killed_at = time.monotonic()
        sidecar.start()
        deliver(1)
        if not wait_for(lambda: applied(2), timeout_s=120, interval_s=0.05):
            raise AssertionError(
                f"the restarted sidecar never applied the next row (log: {sidecar.log_path})"
            )
        seconds = time.monotonic() - killed_at
        group = sink_group(subscriber, SINK)
        members = list(admin.describe_groups([group])[group]["members"])
        sidecar.wait_started()
        if sidecar.terminate() != 0:
            raise AssertionError(f"SIGTERM must stop the sidecar cleanly (log: {sidecar.log_path})")
    finally:
        sidecar.kill()
        producer.close()
        admin.close()
    return RestartRecovery(seconds, members, group, subscriber, out.read_text().splitlines())
