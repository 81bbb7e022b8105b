"""The sidecar as operators see it: health, metrics, SIGTERM, fencing, logs without personal data."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

from connectors.testing import SqlTriggerHarness
from connectors.testing.catalog import installed_sidecar
from connectors.testing.kafka import TopicReader, events_of
from connectors.testing.records import RESOURCE, bad_record, record
from connectors.testing.runtime import SidecarProcess, running_sidecar, serde_for, shared_registry, wait_for
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import dead_letter_topic, source_topic


def _setup(
    tmp_path: Path, kafka: KafkaSettings, **source_overrides: Any
) -> tuple[str, Path, SqlTriggerHarness]:
    harness = SqlTriggerHarness(tmp_path)
    harness.prepare()
    registry = shared_registry()
    source = harness.source_config("src")
    source.update(source_overrides)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    return dept, config, harness


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} {labels} not found")


def test_health_and_metrics_count_published_and_dead_lettered(tmp_path: Path, kafka: KafkaSettings) -> None:
    dept, config, harness = _setup(tmp_path, kafka)
    with running_sidecar(config) as sidecar:
        assert sidecar.health is not None
        status, body = _get(f"{sidecar.health.url}/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["status"] == "ok"
        assert health["sources"]["src"]["state"] == "running"
        for n in range(5):
            harness.insert(record(n))
        harness.insert(bad_record("bad_id_check_digit", 9))
        reader = TopicReader(
            kafka, [source_topic(dept, RESOURCE), dead_letter_topic(dept)], serde_for(shared_registry().url)
        )
        reader.read_until(lambda rs: len(rs) >= 6)
        reader.close()
        _, metrics = _get(f"{sidecar.health.url}/metrics")
        text = metrics.decode()
        assert _metric(text, "xhub_connector_published_total", resource=RESOURCE) == 5
        assert (
            _metric(
                text, "xhub_connector_dead_lettered_total", resource=RESOURCE, reason="bad_id_check_digit"
            )
            == 1
        )
        assert _metric(text, "xhub_connector_last_source_commit_seconds", source="src") > 1_600_000_000
        assert _metric(text, "xhub_connector_source_up", source="src") == 1
        status, _ = _get(f"{sidecar.health.url}/nothing")
        assert status == 404
    harness.close()


def test_sigterm_finishes_and_exits_0_and_logs_hold_no_personal_data(
    tmp_path: Path, kafka: KafkaSettings
) -> None:
    dept, config, harness = _setup(tmp_path, kafka, snapshot=False)
    log = tmp_path / "sidecar.log"
    sidecar = SidecarProcess(config, log)
    sidecar.start()
    try:
        sidecar.wait_started()
        for n in range(50):
            harness.insert(record(n))
        harness.insert(bad_record("bad_credit_code", 77))
        reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(shared_registry().url))
        reader.read_until(lambda rs: len(rs) >= 50)
        reader.close()
        assert sidecar.terminate(30) == 0
    finally:
        sidecar.kill()
        harness.close()
    text = log.read_text()
    assert '"sidecar_stopped"' in text
    assert '"change_dead_lettered"' in text
    for n in (1, 50):
        rec = record(n)
        assert rec["id_number"] not in text, "a citizen ID number must never be logged"
        assert rec["name"] not in text
    bad = bad_record("bad_credit_code", 77)
    assert bad["employer_code"] not in text
    assert bad["id_number"] not in text
    for line in text.splitlines():
        if line.startswith("{"):
            assert re.fullmatch(r"[a-z_]+", json.loads(line)["event"]), line


def test_a_second_sidecar_with_the_same_source_fences_the_first(tmp_path: Path, kafka: KafkaSettings) -> None:
    dept, config, harness = _setup(tmp_path, kafka, snapshot=False)
    first = SidecarProcess(config, tmp_path / "first.log")
    second = SidecarProcess(config, tmp_path / "second.log")
    first.start()
    try:
        first.wait_started()
        for n in range(10):
            harness.insert(record(n))
        reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(shared_registry().url))
        reader.read_until(lambda rs: len(rs) >= 10)
        second.start()
        second.wait_started()
        assert wait_for(lambda: '"source_resumed"' in (tmp_path / "second.log").read_text(), timeout_s=30)
        for n in range(10, 20):
            harness.insert(record(n))
        assert wait_for(lambda: not first.alive(), timeout_s=30), "the fenced sidecar must stop"
        assert first.proc is not None
        assert first.proc.returncode == 1
        records = reader.read_until(lambda rs: len(rs) >= 20)
        records = reader.read_quiet(quiet_s=1.5)
        reader.close()
        assert second.alive()
        assert second.terminate() == 0
    finally:
        first.kill()
        second.kill()
        harness.close()
    events = events_of(records, source_topic(dept, RESOURCE))
    assert sorted(e["seq"] for e in events) == sorted({e["seq"] for e in events}), "nothing twice"
    assert len(events) == 20
    assert '"source_fenced"' in (tmp_path / "first.log").read_text()


def test_sigint_stops_cleanly_too(tmp_path: Path, kafka: KafkaSettings) -> None:
    _, config, harness = _setup(tmp_path, kafka)
    harness.close()
    sidecar = SidecarProcess(config, tmp_path / "sidecar.log")
    sidecar.start()
    try:
        sidecar.wait_started()
        assert sidecar.proc is not None
        sidecar.proc.send_signal(signal.SIGINT)
        assert sidecar.proc.wait(30) == 0
        sidecar.proc = None
    finally:
        sidecar.kill()
