"""Defence in depth in the hub (issue 15, point 3), on a real broker.

Whoever can write a source topic or the config topic, the hub does not take their word for it:
- an event whose ``source.dept`` is not the owner of the topic's resource is dead-lettered (reason
  ``wrong_department``, naming both departments) and delivered to no one;
- a config snapshot not signed by the apply role (unsigned, or signed by another key) is refused with an
  alert, and the hub keeps serving the policy it has; the same config signed by the apply role installs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.app import HubProcess, start_hub
from hub.config.loader import ConfigDir
from hub.config.signing import apply_signing_key, signed_snapshot_record
from hub.config.snapshot import config_snapshot, snapshot_record
from hub.core import names
from hub.core.envelope import ChangeEvent, key_bytes
from hub.core.kafka import make_producer
from hub.core.kafka_settings import KafkaSettings
from tests.fixtures.hubkit import apply_config, wait_for
from tests.integration.test_hub_resilience import (
    CODE,
    DEBTOR_SUBS,
    Debtors,
    _check_alive_and_reconciled,
    _dead_letters,
    _delivered,
    _get,
)


@pytest.fixture
def applied(demo_config: tuple[Path, dict[str, str]]) -> tuple[ConfigDir, dict[str, str]]:
    root, renames = demo_config
    return apply_config(root), renames


@pytest.fixture
def hub(applied: tuple[ConfigDir, dict[str, str]]) -> Iterator[HubProcess]:
    cfg, renames = applied
    process = start_hub(cfg, renames["pudong"])
    assert process.worker.ready.wait(30), "hub worker did not start"
    yield process
    process.close()


def test_an_event_claiming_another_department_is_dead_lettered(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    """The court's topic carries an event whose source says it comes from the tax bureau: whoever wrote
    it (a misconfigured sidecar, or a party able to write the court's topic), it is not the court's."""
    cfg, renames = applied
    debtors = Debtors(cfg, hub.registry_url, seed=501)
    debtors.normal(3)
    publisher = debtors.publisher
    data = debtors.record()
    forged = ChangeEvent(CODE, "c", str(data["case_no"]), 99, renames["tax"], "forged", 1, data)
    value = publisher.serde.encode(f"{publisher.topic}-value", publisher.schema, forged.to_avro())
    debtors.raw(value)
    debtors.normal(3)

    subs = _check_alive_and_reconciled(hub, debtors.sent)
    for sid in DEBTOR_SUBS:
        assert subs[sid].dead_lettered == 1, sid
        assert subs[sid].delivered + subs[sid].filtered == 6, sid
    tax = _delivered(kafka, hub, "tax-debtors", expect=6)
    assert len(tax) == 6
    assert all(e["source"]["dept"] == renames["court"] for e in tax)
    [letter] = _dead_letters(kafka, hub, expect=1)
    assert letter["reason"] == "wrong_department"
    assert renames["tax"] in letter["detail"]
    assert renames["court"] in letter["detail"]
    assert letter["original"] == value
    debtors.close()


def _refused(process: HubProcess, n: int) -> Callable[[], bool]:
    def check() -> bool:
        with process.worker.stats.lock:
            return process.worker.stats.config_refused >= n

    return check


def _narrowed(cfg: ConfigDir, hub_name: str) -> bytes:
    """The applied config with the tax office's debtor subscription losing the field "court"."""
    body: dict[str, Any] = json.loads(config_snapshot(cfg, hub_name))
    body["subscriptions"]["tax-debtors"]["fields"].remove("court")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def test_a_config_snapshot_not_signed_by_the_apply_role_is_refused(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    """A valid config written to xhub.cfg.<hub> by someone other than `xhub apply`: unsigned, then
    signed by a key the hub does not trust, then a signed record altered after signing. Each is refused
    with an alert and changes nothing; the same config signed by the apply role is installed."""
    cfg, _ = applied
    name = hub.worker.hub
    before = hub.worker.policies
    narrowed = _narrowed(cfg, name)
    now = int(time.time() * 1000)
    unsigned = snapshot_record(narrowed, now)
    stranger = signed_snapshot_record(narrowed, now, Ed25519PrivateKey.generate())
    altered = json.loads(signed_snapshot_record(_narrowed(cfg, name), now, apply_signing_key()))
    altered["config"]["subscriptions"]["tax-debtors"]["fields"].append("court")
    tampered = json.dumps(altered, ensure_ascii=False).encode("utf-8")
    producer = make_producer(kafka, "test-cfg-forger")
    topic = names.config_topic(name)
    try:
        for n, record in enumerate((unsigned, stranger, tampered), start=1):
            producer.send(topic, key=key_bytes(name), value=record).get(timeout=30)
            wait_for(_refused(hub, n), what=f"forged snapshot {n} refused")
            assert hub.worker.policies is before
        assert hub.admin_url is not None
        alerts = json.loads(_get(f"{hub.admin_url}/api/status"))["alerts"]
        assert [a["kind"] for a in alerts] == ["config_refused"]
        assert "does not verify" in alerts[0]["message"]

        genuine = signed_snapshot_record(narrowed, now + 1, apply_signing_key())
        producer.send(topic, key=key_bytes(name), value=genuine).get(timeout=30)
        wait_for(lambda: hub.worker.policies is not before, what="the signed snapshot installed")
    finally:
        producer.close()
    assert "court" not in hub.worker.policies.plans["tax-debtors"].fields
    assert json.loads(_get(f"{hub.admin_url}/api/status"))["alerts"] == []
    with hub.worker.stats.lock:
        assert hub.worker.stats.config_refused == 3
