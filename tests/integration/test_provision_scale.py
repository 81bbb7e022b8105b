"""`xhub apply` of a generated catalog on a real broker: topics created in batches, settings read back.

The batched CreateTopics request and the settings read with only the keys a config sets are what make a
Pudong-size apply take seconds instead of minutes (tests/bench/pudong.py); here at a size a test affords.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml
from kafka.admin import NewTopic

from hub.app import start_hub
from hub.config import load_config
from hub.config.signing import apply_signing_key
from hub.core import names
from hub.core.kafka import make_admin
from hub.core.kafka_settings import KafkaSettings
from hub.demo.pudong import AUDIT_KEY_ENV, SECRET_ENV, Naming, Size, write_pudong_config
from hub.provision.acl_cluster import apply_acl_changes
from hub.provision.apply import apply_changes
from hub.provision.session import provision_session

pytestmark = pytest.mark.kafka


@pytest.fixture
def generated(tmp_path: Path, kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.setenv(SECRET_ENV, "test-secret-pudong-0123456789")
    monkeypatch.setenv(AUDIT_KEY_ENV, "test-audit-key-pudong-0123456789")
    token = uuid.uuid4().hex[:6]
    hub = f"pudong-{token}"
    write_pudong_config(
        tmp_path / "config",
        size=Size(departments=10, resources=10, data_items=60, subscriptions=20),
        bootstrap=kafka.bootstrap_servers,
        naming=Naming(hub=hub, suffix=f"-{token}"),
    )
    hubs_path = tmp_path / "config" / "hubs.yaml"
    hubs = yaml.safe_load(hubs_path.read_text(encoding="utf-8"))
    hubs["hubs"][0].update(admin_port=0, registry_port=0)  # several tests and workers on one machine
    hubs_path.write_text(yaml.safe_dump(hubs, allow_unicode=True), encoding="utf-8")
    return tmp_path / "config", hub


def test_apply_creates_every_topic_with_its_partitions_and_a_second_apply_finds_nothing(
    generated: tuple[Path, str], kafka: KafkaSettings
) -> None:
    root, hub = generated
    cfg = load_config(root)
    with provision_session(cfg) as session:
        plan, result = session.apply()
        again = session.plan()
    created = {c.topic: c.spec for c in plan.topics if c.action == "create"}
    # per department: dead letters, positions, backlog reports; per hub: audit, config, dead letters, state
    assert len(created) == len(cfg.resources) + len(cfg.subscriptions) + 3 * len(cfg.departments) + 4
    assert again.empty, again.to_text()
    admin = make_admin(kafka)
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(created))}
    finally:
        admin.close()
    assert set(described) == set(created)
    for name, spec in created.items():
        assert spec is not None
        assert len(described[name]["partitions"]) == spec.partitions
    sid = sorted(cfg.subscriptions)[0]
    assert len(described[names.delivery_topic(hub, sid)]["partitions"]) == 1
    assert sum(line.startswith("created topic") for line in result.done) == len(created)


def test_a_changed_retention_is_seen_and_applied(generated: tuple[Path, str]) -> None:
    root, hub = generated
    with provision_session(load_config(root)) as session:
        session.apply()
    path = sorted((root / "subscriptions").glob("*.yaml"))[0]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    sid = doc["subscriptions"][0]["id"]
    doc["subscriptions"][0]["delivery"] = {"retention_ms": 3_600_000}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    with provision_session(load_config(root)) as session:
        plan = session.plan()
        assert [(c.action, c.topic) for c in plan.topics] == [("update", names.delivery_topic(hub, sid))]
        assert "retention.ms" in plan.topics[0].detail
        session.apply()
        assert session.plan().empty


def test_a_topic_created_meanwhile_by_another_apply_is_no_error(
    generated: tuple[Path, str], kafka: KafkaSettings
) -> None:
    root, _ = generated
    with provision_session(load_config(root)) as session:
        plan = session.plan()
        first = next(c.spec for c in plan.topics if c.action == "create" and c.spec is not None)
        admin = make_admin(kafka)
        try:
            admin.create_topics([NewTopic(first.name, first.partitions, 1, topic_configs=first.configs)])
        finally:
            admin.close()
        result = apply_changes(
            plan, session.admin, session.producer, session.registrar, signer=apply_signing_key()
        )
        assert f"created topic {first.name}" in result.done
        if plan.acls is not None:  # a secure broker: the rest of session.apply (ACLs come after the topics)
            apply_acl_changes(session.admin, session.producer, plan.acls)
        assert session.plan().empty


def test_two_workers_share_single_partition_source_topics(
    generated: tuple[Path, str], kafka: KafkaSettings
) -> None:
    """Pudong's source topics have one partition each: N workers of a hub spread them, topic by topic.

    (Kafka's range assignor, kafka-python's default, hands partition 0 of every topic to the same member:
    a second worker would sit idle.)
    """
    root, hub = generated
    cfg = load_config(root)
    with provision_session(cfg) as session:
        session.apply()
    read = {s.resource for s in cfg.subscriptions.values()}  # a hub reads only resources subscribed to
    sources = {names.source_topic(r.owner, code) for code, r in cfg.resources.items() if code in read}
    assert len(sources) >= 4
    first = start_hub(cfg, hub, worker_id=0, admin_port=0)
    second = start_hub(cfg, hub, worker_id=1, admin_port=0)
    try:
        deadline = time.monotonic() + 90
        owned: list[set[str]] = [set(), set()]
        while time.monotonic() < deadline:
            owned = [{tp.topic for tp in w.worker.assignment if tp.topic in sources} for w in (first, second)]
            if owned[0] | owned[1] == sources and not owned[0] & owned[1] and all(owned):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the workers did not share the source topics: {[len(o) for o in owned]}")
        assert abs(len(owned[0]) - len(owned[1])) <= 1, [len(o) for o in owned]
    finally:
        first.close()
        second.close()
