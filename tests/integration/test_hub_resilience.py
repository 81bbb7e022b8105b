"""Nothing a record carries can stop the hub (issue 13, point 4), on a real broker.

Each scenario sends normal debtor events, something bad, then normal events again, and checks that the
worker is still alive, that every subscription received the normal events sent after the bad one, that
the bad record is a dead letter with its reason and its original bytes, and that the counters reconcile:
per subscription, delivered + filtered + refused + dead-lettered = consumed.
"""

from __future__ import annotations

import copy
import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.admin import ConfigResource, ConfigResourceType

from hub.app import HubProcess, start_hub
from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.config.snapshot import config_snapshot, snapshot_record
from hub.core import names
from hub.core.envelope import key_bytes
from hub.core.kafka import make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.provision.session import provision_session
from tests.fixtures.hubkit import Publisher, decode_all, read_all

CODE = "PD-CRD-0001"
DEBTOR_SUBS = ("tax-debtors", "housing-debtors", "transport-debtors", "lujiazui-debtors")


# -- fixtures and helpers ------------------------------------------------------------------------------
def _apply(root: Path) -> ConfigDir:
    cfg = load_config(root)
    with provision_session(cfg) as session:
        session.apply()
    return cfg


@pytest.fixture
def applied(demo_config: tuple[Path, dict[str, str]]) -> tuple[ConfigDir, dict[str, str]]:
    root, renames = demo_config
    return _apply(root), renames


@pytest.fixture
def hub(applied: tuple[ConfigDir, dict[str, str]]) -> Iterator[HubProcess]:
    cfg, renames = applied
    process = start_hub(cfg, renames["pudong"])
    assert process.worker.ready.wait(30), "hub worker did not start"
    yield process
    process.close()


def _wait_for(predicate: Callable[[], bool], timeout: float = 45.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


def _consumed(hub: HubProcess) -> int:
    with hub.worker.stats.lock:
        return hub.worker.stats.consumed


class Debtors:
    """Publishes normal debtor events (and evolved or raw ones) and counts what it sent."""

    def __init__(self, cfg: ConfigDir, registry_url: str, seed: int) -> None:
        self.fake = make_faker(seed)
        self.publisher = Publisher(cfg, registry_url, CODE)
        self.sent = 0

    def record(self) -> dict[str, Any]:
        return dishonest_debtor(self.fake, person(self.fake, district="浦东新区"))

    def normal(self, n: int) -> None:
        for _ in range(n):
            self.publisher.publish(self.record())
            self.sent += 1
        self.publisher.flush()

    def raw(self, value: bytes) -> None:
        self.publisher.raw(value)
        self.publisher.flush()
        self.sent += 1

    def close(self) -> None:
        self.publisher.close()


def _check_alive_and_reconciled(hub: HubProcess, events: int) -> dict[str, Any]:
    """The worker runs, consumed every event, and each debtor subscription accounts for each of them."""
    _wait_for(lambda: _consumed(hub) >= events, what=f"{events} events consumed")
    time.sleep(0.3)
    assert hub.thread.is_alive(), "the hub worker died"
    stats = hub.worker.stats
    with stats.lock:
        consumed = stats.consumed
        subs = {sid: copy.copy(stats.subscriptions[sid]) for sid in DEBTOR_SUBS}
    assert consumed == events
    for sid, s in subs.items():
        assert s.delivered + s.filtered + s.refused + s.dead_lettered == consumed, (sid, s)
    return subs


def _delivered(kafka: KafkaSettings, hub: HubProcess, sid: str, expect: int) -> list[dict[str, Any]]:
    serde = AvroSerde(RegistryClient(hub.registry_url))
    topic = names.delivery_topic(hub.worker.hub, sid)
    return decode_all(serde, read_all(kafka, topic, expect=expect, idle=1.0))


def _dead_letters(kafka: KafkaSettings, hub: HubProcess, expect: int) -> list[dict[str, Any]]:
    """The hub's dead letters, each checked to carry the bytes of the source record it names."""
    serde = AvroSerde(RegistryClient(hub.registry_url))
    letters = decode_all(serde, read_all(kafka, names.dead_letter_topic(hub.worker.hub), expect=expect))
    if letters:
        source: dict[str, bytes] = {}
        topic = letters[0]["origin"].rsplit("-", 1)[0]
        for rec in read_all(kafka, topic, idle=1.0):
            source[f"{rec.topic}-{rec.partition}@{rec.offset}"] = rec.value or b""
        for letter in letters:
            assert letter["original"] == source[letter["origin"]], letter["reason"]
    return letters


def _evolved(schema: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    data = next(f for f in out["fields"] if f["name"] == "data")["type"][1]
    edit(data)
    return out


def _add_enum_symbol(data: dict[str, Any]) -> None:
    field = next(f for f in data["fields"] if f["name"] == "debtor_type")
    field["type"]["symbols"].append("government")


def _add_optional_field(data: dict[str, Any]) -> None:
    data["fields"].append({"name": "note", "type": ["null", "string"], "default": None})


# -- the scenarios -------------------------------------------------------------------------------------
def test_finding_4_new_enum_symbol_does_not_stop_the_hub(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    """A source adds an enum symbol (a compatible change the registry accepts): before, the delivery
    encode raised outside any handler and the worker died on that record after every restart."""
    cfg, _ = applied
    debtors = Debtors(cfg, hub.registry_url, seed=401)
    debtors.normal(5)
    evolved = Publisher(cfg, hub.registry_url, CODE)
    evolved.schema = _evolved(evolved.schema, _add_enum_symbol)
    evolved.seq = 1000
    evolved.publish(dict(debtors.record(), debtor_type="government"))  # not in the catalog's enum
    evolved.publish(dict(debtors.record(), debtor_type="entity"))  # new writer schema, known symbol
    evolved.flush()
    evolved.close()
    debtors.sent += 2
    debtors.normal(5)

    subs = _check_alive_and_reconciled(hub, debtors.sent)
    for sid in DEBTOR_SUBS:
        assert subs[sid].dead_lettered == 1, sid
    assert len(_delivered(kafka, hub, "tax-debtors", expect=11)) == 11
    assert len(_delivered(kafka, hub, "transport-debtors", expect=11)) == 11
    letters = _dead_letters(kafka, hub, expect=1)
    assert [d["reason"] for d in letters] == ["schema_mismatch"]
    assert "data.debtor_type" in letters[0]["detail"]  # what differs between the schemas, by name
    assert letters[0]["subscription"] is None  # the record, not one subscription's delivery
    debtors.close()
