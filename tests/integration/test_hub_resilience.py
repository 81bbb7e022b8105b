"""Nothing a record carries can stop the hub (issue 13, point 4), on a real broker.

Each scenario sends normal debtor events, something bad, then normal events again, and checks that the
worker is still alive, that every subscription received the normal events sent after the bad one, that
the bad record is a dead letter with its reason and its original bytes, and that the counters reconcile:
per subscription, delivered + filtered + refused + dead-lettered = consumed.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.admin import ConfigResource, ConfigResourceType

from hub.app import HubProcess, start_hub
from hub.config.loader import ConfigDir
from hub.config.snapshot import config_snapshot, snapshot_record
from hub.core import names
from hub.core.envelope import key_bytes
from hub.core.kafka import make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from tests.fixtures.hubkit import Publisher, apply_config, decode_all, read_all, wait_for

CODE = "PD-CRD-0001"
DEBTOR_SUBS = ("tax-debtors", "housing-debtors", "transport-debtors", "lujiazui-debtors")


# -- fixtures and helpers ------------------------------------------------------------------------------
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
    wait_for(lambda: _consumed(hub) >= events, what=f"{events} events consumed")
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


def test_a_record_of_an_unknown_schema_id_is_a_dead_letter_and_the_stream_goes_on(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    cfg, _ = applied
    debtors = Debtors(cfg, hub.registry_url, seed=402)
    debtors.normal(5)
    debtors.raw(b"\x00\x00\x7f\xff\xf0" + bytes(range(40)))  # framed, but no such schema id
    debtors.normal(5)

    subs = _check_alive_and_reconciled(hub, debtors.sent)
    assert all(subs[sid].dead_lettered == 1 for sid in DEBTOR_SUBS)
    assert len(_delivered(kafka, hub, "tax-debtors", expect=10)) == 10
    assert len(_delivered(kafka, hub, "housing-debtors", expect=10)) == 10
    letters = _dead_letters(kafka, hub, expect=1)
    assert [d["reason"] for d in letters] == ["unknown_schema_id"]
    assert "schema id 8388592" in letters[0]["detail"]
    debtors.close()


def test_random_bytes_are_dead_letters_and_the_stream_goes_on(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    cfg, _ = applied
    debtors = Debtors(cfg, hub.registry_url, seed=403)
    debtors.normal(5)
    publisher = debtors.publisher
    writer_id = publisher.serde.schema_id(f"{publisher.topic}-value", publisher.schema)
    noise = bytes((i * 151 + 7) % 256 for i in range(64))  # fixed, so the outcome is too
    debtors.raw(b"\x7f" + noise)  # not the wire format at all
    debtors.raw(b"\x00" + writer_id.to_bytes(4, "big") + b"\xff" * 12 + noise)  # the right id, garbage body
    debtors.raw(b"")  # an empty value
    debtors.normal(5)

    subs = _check_alive_and_reconciled(hub, debtors.sent)
    assert all(subs[sid].dead_lettered == 3 for sid in DEBTOR_SUBS)
    assert len(_delivered(kafka, hub, "transport-debtors", expect=10)) == 10
    letters = _dead_letters(kafka, hub, expect=3)
    assert sorted(d["reason"] for d in letters) == ["bad_wire_format", "bad_wire_format", "undecodable"]
    debtors.close()


def test_an_oversized_delivery_is_dead_lettered_after_three_attempts(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    """The tax office's delivery topic takes at most 64 KiB per batch: a debtor whose court field is
    90 KB cannot be delivered there, ever. The other subscriptions get it; tax gets a dead letter."""
    cfg, _ = applied
    topic = names.delivery_topic(hub.worker.hub, "tax-debtors")
    admin = make_admin(kafka, "test-resilience")
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "65536"})
        admin.alter_configs([resource])
    finally:
        admin.close()
    time.sleep(1.0)  # let the broker take the new limit
    debtors = Debtors(cfg, hub.registry_url, seed=404)
    debtors.normal(5)
    debtors.publisher.publish(dict(debtors.record(), court="上海市浦东新区人民法院" * 3000))  # ~90 KB
    debtors.sent += 1
    debtors.normal(5)

    subs = _check_alive_and_reconciled(hub, debtors.sent)
    assert subs["tax-debtors"].dead_lettered == 1
    assert subs["tax-debtors"].delivered == 10
    for sid in ("housing-debtors", "transport-debtors", "lujiazui-debtors"):
        assert subs[sid].delivered == 11, sid  # the court field is not theirs: they get the record
    with hub.worker.stats.lock:
        assert hub.worker.stats.aborted_transactions >= 3
    assert len(_delivered(kafka, hub, "tax-debtors", expect=10)) == 10
    assert len(_delivered(kafka, hub, "housing-debtors", expect=11)) == 11
    letters = _dead_letters(kafka, hub, expect=1)
    assert [(d["reason"], d["subscription"]) for d in letters] == [("undeliverable", "tax-debtors")]
    assert "MessageSizeTooLargeError" in letters[0]["detail"]
    debtors.close()


class OwnRegistry:
    """A registry server the test can stop and start again on the same port (the store stays)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        from hub.registry.server import RegistryServer
        from hub.registry.store import SchemaStore

        self._server_type = RegistryServer
        self.store = SchemaStore(kafka)
        self.store.start()
        self.server = RegistryServer(self.store)
        self.server.start()
        self.port = self.server.port
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = self._server_type(self.store, port=self.port)
        self.server.start()

    def close(self) -> None:
        self.server.stop()
        self.store.stop()


@pytest.fixture
def own_registry(kafka: KafkaSettings) -> Iterator[OwnRegistry]:
    registry = OwnRegistry(kafka)
    yield registry
    registry.close()


def test_a_registry_restart_mid_stream_loses_nothing(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], own_registry: OwnRegistry
) -> None:
    """The registry goes away while records of a writer schema the hub has not seen yet arrive: the hub
    backs off and retries in place; once the registry is back every record is delivered, none is lost
    and none is dead-lettered."""
    root, renames = demo_config
    hubs = yaml.safe_load((root / "hubs.yaml").read_text(encoding="utf-8"))
    hubs["registry"] = {"url": own_registry.url}
    (root / "hubs.yaml").write_text(
        yaml.safe_dump(hubs, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    cfg = apply_config(root)
    hub = start_hub(cfg, renames["pudong"])
    try:
        assert hub.worker.ready.wait(30), "hub worker did not start"
        debtors = Debtors(cfg, hub.registry_url, seed=405)
        debtors.normal(5)
        wait_for(lambda: _consumed(hub) >= 5, what="the first events consumed")
        evolved = Publisher(cfg, hub.registry_url, CODE)
        evolved.schema = _evolved(evolved.schema, _add_optional_field)
        evolved.seq = 1000
        evolved.serde.schema_id(f"{evolved.topic}-value", evolved.schema)  # registered while it is up

        own_registry.stop()
        for _ in range(3):
            evolved.publish(dict(debtors.record(), note="补充说明"))  # the writer is cached: no registry
        evolved.flush()
        debtors.sent += 3
        debtors.normal(5)

        def backing_off() -> bool:
            with hub.worker.stats.lock:
                return hub.worker.stats.aborted_transactions >= 2

        wait_for(backing_off, what="the hub backing off")
        assert hub.thread.is_alive()
        assert _consumed(hub) == 5  # nothing past the records it cannot read yet
        own_registry.start()

        subs = _check_alive_and_reconciled(hub, debtors.sent)
        assert all(subs[sid].dead_lettered == 0 for sid in DEBTOR_SUBS)
        tax = _delivered(kafka, hub, "tax-debtors", expect=13)
        assert len(tax) == 13
        assert all("note" not in (e["data"] or {}) for e in tax)  # read as the catalog has it
        assert _dead_letters(kafka, hub, expect=0) == []
        evolved.close()
        debtors.close()
    finally:
        hub.close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body


def test_a_bad_snapshot_on_the_config_topic_is_refused_and_the_policy_kept(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    """Someone writes config snapshots straight to xhub.cfg.<hub> (bypassing `xhub apply`): one that
    does not validate and one that is not JSON. The hub refuses both with an alert and keeps serving."""
    cfg, _ = applied
    name = hub.worker.hub
    debtors = Debtors(cfg, hub.registry_url, seed=406)
    debtors.normal(5)
    wait_for(lambda: _consumed(hub) >= 5, what="the first events consumed")
    before = hub.worker.policies

    body = json.loads(config_snapshot(cfg, name))
    body["subscriptions"]["tax-debtors"]["fields"].append("no_such_field")
    bad = snapshot_record(json.dumps(body, ensure_ascii=False).encode("utf-8"), int(time.time() * 1000))
    producer = make_producer(kafka, "test-cfg-writer")
    try:
        producer.send(names.config_topic(name), key=key_bytes(name), value=bad).get(timeout=30)

        def refused(n: int) -> Callable[[], bool]:
            def check() -> bool:
                with hub.worker.stats.lock:
                    return hub.worker.stats.config_refused >= n

            return check

        wait_for(refused(1), what="the invalid snapshot refused")
        producer.send(names.config_topic(name), key=key_bytes(name), value=b"{not json").get(timeout=30)
        wait_for(refused(2), what="the garbage refused")
    finally:
        producer.close()
    debtors.normal(5)

    subs = _check_alive_and_reconciled(hub, debtors.sent)
    assert hub.worker.policies is before  # still the policy it had
    assert subs["tax-debtors"].delivered == 10
    assert len(_delivered(kafka, hub, "tax-debtors", expect=10)) == 10

    assert hub.admin_url is not None
    status = json.loads(_get(f"{hub.admin_url}/api/status"))
    alerts = status["alerts"]
    assert [a["kind"] for a in alerts] == ["config_refused"]  # the newest refusal replaces the older
    assert "refused" in alerts[0]["message"]
    assert before.digest in alerts[0]["message"]  # says which config the hub keeps serving
    metrics = _get(f"{hub.admin_url}/metrics").decode()
    assert f'xhub_config_refused_total{{hub="{name}"}} 2.0' in metrics
    assert f'xhub_alerts{{hub="{name}",kind="config_refused"}} 1.0' in metrics
    page = _get(f"{hub.admin_url}/").decode()
    assert 'id="alerts"' in page
    debtors.close()
