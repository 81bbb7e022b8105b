"""Exactly once through the hub: SIGKILL mid-stream, two workers sharing partitions, hubs side by side."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from connectors.validation import RecordValidator
from hub.app import start_hub
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from tests.fixtures.hubkit import Publisher, apply_config, decode_all, read_all


def _debtors(cfg: ConfigDir, n: int, seed: int) -> list[dict[str, object]]:
    fake = make_faker(seed)
    check = RecordValidator(cfg.schemas["PD-CRD-0001"], "case_no", "any")
    return [check.validate(dishonest_debtor(fake, person(fake))) for _ in range(n)]


def _event_ids(serde: AvroSerde, records: list[object]) -> Counter[str]:
    return Counter(str(e["event_id"]) for e in decode_all(serde, records))


def test_sigkill_during_a_stream_delivers_each_event_exactly_once(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    records = _debtors(cfg, 1500, seed=11)
    publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
    sent: list[str] = []
    done = threading.Event()

    def produce() -> None:
        for i, record in enumerate(records):
            sent.append(publisher.publish(record).event_id)
            if i % 50 == 49:
                publisher.flush()
                time.sleep(0.05)
        publisher.flush()
        done.set()

    env = {**os.environ, "XHUB_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "hub.cli", "run", str(root), "--hub", hub_name]
    producer_thread = threading.Thread(target=produce)
    producer_thread.start()
    kills = 0
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while kills < 4:
            time.sleep(1.5 + kills * 0.5)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        producer_thread.join(120)
        assert done.is_set()
        serde = AvroSerde(RegistryClient(kafka_registry))
        delivered = read_all(
            kafka, names.delivery_topic(hub_name, "tax-debtors"), expect=len(records), timeout=90
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    counts = _event_ids(serde, delivered)
    assert kills == 4
    assert set(counts) == set(sent), f"missing {len(set(sent) - set(counts))}"
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]


def test_two_workers_split_the_partitions_and_deliver_everything_once(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    first = start_hub(cfg, hub_name, worker_id=0)
    second = start_hub(cfg, hub_name, worker_id=1)
    try:
        assert first.worker.ready.wait(30)
        assert second.worker.ready.wait(30)
        topic = names.source_topic(renames["court"], "PD-CRD-0001")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the group settles: both own partitions, together all of them
            owned = [{tp for tp in w.worker.assignment if tp.topic == topic} for w in (first, second)]
            if all(owned) and len(owned[0] | owned[1]) == 3 and not owned[0] & owned[1]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the two workers did not share the partitions: {owned}")
        publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
        sent = [publisher.publish(r).event_id for r in _debtors(cfg, 600, seed=12)]
        publisher.flush()
        serde = AvroSerde(RegistryClient(kafka_registry))
        delivered = read_all(
            kafka, names.delivery_topic(hub_name, "tax-debtors"), expect=len(sent), timeout=60
        )
        counts = _event_ids(serde, delivered)
        assert set(counts) == set(sent)
        assert max(counts.values()) == 1
        consumed = (first.worker.stats.consumed, second.worker.stats.consumed)
        assert sum(consumed) == len(sent)
        assert min(consumed) > 0, f"one worker got no partitions: {consumed}"
    finally:
        first.close()
        second.close()


def test_hubs_run_side_by_side_with_their_own_topics_and_groups(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    city = renames["city"]
    (root / "subscriptions" / "city.yaml").write_text(
        yaml.safe_dump(
            {
                "subscriptions": [
                    {
                        "id": "city-debtors",
                        "subscriber": renames["tax"],
                        "resource": "PD-CRD-0001",
                        "hub": city,
                        "fields": ["case_no", "performance_status"],
                        "purpose": "city credit platform",
                    }
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    cfg = apply_config(root)
    pudong = start_hub(cfg, renames["pudong"])
    city_hub = start_hub(cfg, city)
    try:
        assert pudong.worker.ready.wait(30)
        assert city_hub.worker.ready.wait(30)
        assert pudong.worker.group_id != city_hub.worker.group_id
        publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
        sent = [publisher.publish(r).event_id for r in _debtors(cfg, 50, seed=13)]
        publisher.flush()
        serde = AvroSerde(RegistryClient(kafka_registry))
        city_got = _event_ids(serde, read_all(kafka, names.delivery_topic(city, "city-debtors"), expect=50))
        pudong_got = _event_ids(
            serde, read_all(kafka, names.delivery_topic(renames["pudong"], "tax-debtors"), expect=50)
        )
        assert set(city_got) == set(pudong_got) == set(sent)
        assert max(city_got.values()) == max(pudong_got.values()) == 1
        city_batches = decode_all(serde, read_all(kafka, names.audit_topic(city), idle=1.5))
        city_audit = [entry for batch in city_batches for entry in batch["entries"]]
        assert {a["subscription"] for a in city_audit if a["kind"] == "delivered"} == {"city-debtors"}
    finally:
        pudong.close()
        city_hub.close()
