"""Federation (issue 17 point 1): a hub link carries a district hub's deliveries to the city cluster.

Two private clusters, started with deploy/local/kafka.sh and stopped at the end: the district on port
19192 and the city on 19292 (the shared broker is never touched). A real district hub (the demo config,
plus a link department subscribing to the court's dishonest-debtor list) delivers to the link; the link
is a sidecar (``type: hub_link``) whose own cluster is the city's: it publishes on
``xhub.src.<link-dept>.pd-crd-0001`` there, with its position on the district delivery topic in the same
transaction. The city registry is a built-in one stored on the city cluster; the district's is the hub's.

The city's catalog takes persons only (``debtor_type`` is an enum of one symbol there), so an entity
debtor the district delivers is a record the city's schema cannot take: it must be dead-lettered with
the district's bytes.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import TopicPartition

import schemas
from connectors.testing.catalog import write_connector_config
from connectors.testing.kafka import Consumed, TopicReader
from connectors.testing.records import citizen_id
from connectors.testing.runtime import SidecarProcess, running_sidecar, serde_for
from hub.app import HubProcess, start_hub
from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.envelope import ChangeEvent, Op, change_event_schema, key_bytes
from hub.core.kafka import make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.provision.session import provision_session
from tests.fixtures.brokers import private_broker
from tests.fixtures.hubkit import read_all
from tests.fixtures.plugin import DEMO_CONFIG, isolate_config

pytestmark = pytest.mark.kafka

DISTRICT_PORT = 19192
CITY_PORT = 19292
RESOURCE = "PD-CRD-0001"
SUBSCRIPTION = "city-debtors"
DEBTOR_SCHEMA = schemas.load("resources/dishonest_debtor.avsc")
LINKED_FIELDS = [f["name"] for f in DEBTOR_SCHEMA["fields"] if f["name"] != "obligation"]
"""What climbs to the city: every field of the court's list but the obligation."""
COMMIT_BASE_MS = 1_760_000_000_000


# --- the two clusters -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[KafkaSettings, KafkaSettings]]:
    """(district, city): two single-node brokers of their own, stopped at the end."""
    with (
        private_broker(DISTRICT_PORT, heap="512m") as district,
        private_broker(CITY_PORT, heap="512m") as city,
    ):
        yield district, city


@pytest.fixture(scope="module")
def city_registry(clusters: tuple[KafkaSettings, KafkaSettings]) -> Iterator[str]:
    """The city's schema registry: built in, stored on the city cluster."""
    from hub.registry.server import RegistryServer
    from hub.registry.store import SchemaStore

    store = SchemaStore(clusters[1])
    store.start()
    server = RegistryServer(store, port=0)
    server.start()
    yield server.url
    server.stop()
    store.stop()


# --- the district: a real hub delivering to the link's subscription --------------------------------


@dataclass
class District:
    cfg: ConfigDir
    hub: HubProcess
    hub_name: str
    court: str
    kafka: KafkaSettings

    @property
    def delivery_topic(self) -> str:
        return names.delivery_topic(self.hub_name, SUBSCRIPTION)


@pytest.fixture
def district(
    clusters: tuple[KafkaSettings, KafkaSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[District]:
    kafka = clusters[0]
    token = uuid.uuid4().hex[:6]
    root = tmp_path / "district"
    renames = isolate_config(DEMO_CONFIG, root, kafka, token)
    link = f"citylink-{token}"
    _yaml(
        root / "departments" / "citylink.yaml",
        {
            "departments": [
                {"id": link, "name": "市级共享交换平台 (the city hub's link)", "principal": f"User:{link}"}
            ]
        },
    )
    subscription = {
        "id": SUBSCRIPTION,
        "subscriber": link,
        "resource": RESOURCE,
        "hub": renames["pudong"],
        "fields": LINKED_FIELDS,
        "purpose": "一处失信、处处受限 at city level: the district list climbs to the city hub",
    }
    _yaml(root / "subscriptions" / link / "credit.yaml", {"subscriptions": [subscription]})
    monkeypatch.setenv("XHUB_PUDONG_SECRET", "test-secret-pudong-0123456789")
    monkeypatch.setenv("XHUB_CITY_SECRET", "test-secret-city-0123456789")
    monkeypatch.setenv("XHUB_PUDONG_AUDIT_KEY", "test-audit-key-pudong-0123456789")
    monkeypatch.setenv("XHUB_CITY_AUDIT_KEY", "test-audit-key-city-0123456789")
    monkeypatch.setenv("XHUB_STATE_DIR", str(tmp_path / "state"))
    cfg = load_config(root)
    with provision_session(cfg) as session:
        session.apply()
    process = start_hub(cfg, renames["pudong"])
    try:
        assert process.worker.ready.wait(60), "district hub worker did not start"
        yield District(cfg, process, renames["pudong"], renames["court"], kafka)
    finally:
        process.close()


def _yaml(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


# --- the city side: its catalog knows the district's list as a resource of the link --------------


@dataclass
class City:
    kafka: KafkaSettings
    registry_url: str
    dept: str
    connector: Path

    @property
    def source_topic(self) -> str:
        return names.source_topic(self.dept, RESOURCE)

    @property
    def dead_letter_topic(self) -> str:
        return names.dead_letter_topic(self.dept)


def _city_schema() -> dict[str, Any]:
    """The district's record as delivered to the link, persons only."""
    schema = DEBTOR_SCHEMA
    persons_only = {"type": "enum", "name": "PersonOnly", "symbols": ["person"]}
    fields = [
        {**field, "type": persons_only} if field["name"] == "debtor_type" else field
        for field in schema["fields"]
        if field["name"] in LINKED_FIELDS
    ]
    return {**schema, "name": "LinkedDishonestDebtor", "fields": fields}


@pytest.fixture
def city(
    clusters: tuple[KafkaSettings, KafkaSettings], city_registry: str, district: District, tmp_path: Path
) -> City:
    kafka = clusters[1]
    token = uuid.uuid4().hex[:6]
    dept = f"pudong-{token}"  # the district hub, as the city's config names it (provider of its resources)
    root = tmp_path / "city"
    (root / "schemas").mkdir(parents=True)
    (root / "schemas" / "linked_debtor.avsc").write_text(
        json.dumps(_city_schema(), ensure_ascii=False), "utf-8"
    )
    _yaml(
        root / "hubs.yaml",
        {
            "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
            "registry": {"url": city_registry},
            "hubs": [{"name": f"city-{token}"}],
        },
    )
    _yaml(
        root / "departments" / "pudong.yaml",
        {
            "departments": [
                {"id": dept, "name": "浦东新区共享交换枢纽 (district hub)", "principal": f"User:{dept}"}
            ]
        },
    )
    classes = dict.fromkeys(LINKED_FIELDS, "public") | {"debtor_id": "personal", "debtor_name": "personal"}
    resource = {
        "code": RESOURCE,
        "name": "失信被执行人名单 (linked from Pudong)",
        "owner": dept,
        "schema": "schemas/linked_debtor.avsc",
        "key": "case_no",
        "share": "unconditional",
        "fields": classes,
    }
    _yaml(root / "catalog" / "linked.yaml", {"resources": [resource]})
    source = {
        "name": "pudong-debtors",
        "type": "hub_link",
        "resource": RESOURCE,
        "batch_size": 100,
        "district": {
            "hub": district.hub_name,
            "subscription": SUBSCRIPTION,
            "registry_url": district.hub.registry_url,
            "kafka": {"bootstrap_servers": district.kafka.bootstrap_servers},
        },
    }
    connector = write_connector_config(
        tmp_path / "link.yaml",
        dept=dept,
        catalog=root,
        bootstrap=kafka.bootstrap_servers,
        registry_url=city_registry,
        sources=[source],
    )
    return City(kafka, city_registry, dept, connector)


# --- the court's stream at the district ------------------------------------------------------------


class Court:
    """Publishes the court's changes on the district cluster as its sidecar would, each with a known
    source commit time; remembers (key, seq) -> (op, commit time)."""

    def __init__(self, district: District) -> None:
        self.topic = names.source_topic(district.court, RESOURCE)
        self.schema = change_event_schema(RESOURCE, district.cfg.schemas[RESOURCE])
        self.serde = serde_for(district.hub.registry_url)
        self.producer = make_producer(district.kafka, "test-court")
        self.court = district.court
        self.seq = 0
        self.sent: dict[tuple[str, int], tuple[str, int]] = {}

    def publish(self, n: int, op: Op, *, debtor_type: str = "person") -> None:
        self.seq += 1
        key = f"(2025)沪0115执{n}号"
        data = None
        if op != "d":
            data = {
                "case_no": key,
                "debtor_type": debtor_type,
                "debtor_id": citizen_id(n),
                "debtor_name": "张三",
                "court": "上海市浦东新区人民法院",
                "obligation": None,
                "performance_status": "全部未履行" if self.seq % 2 else "部分履行",
                "publish_date": 20_000 + n,
                "district": "浦东新区",
            }
        commit = COMMIT_BASE_MS + self.seq * 7
        event = ChangeEvent(RESOURCE, op, key, self.seq, self.court, "enforcement", commit, data)
        value = self.serde.encode(f"{self.topic}-value", self.schema, event.to_avro())
        self.producer.send(self.topic, key=key_bytes(key), value=value)
        self.sent[(key, self.seq)] = (op, commit)

    def rounds(self, keys: int, rounds: int, *, every_s: float = 0.0) -> None:
        """Every key created, then updated each round; in the last round every fifth is deleted instead.
        ``every_s``: the pause after each change (a steady stream rather than bursts)."""
        for r in range(rounds):
            for n in range(keys):
                if r == rounds - 1 and n % 5 == 0:
                    self.publish(n, "d")
                else:
                    self.publish(n, "c" if r == 0 else "u")
                if every_s:
                    time.sleep(every_s)
            self.producer.flush()

    def close(self) -> None:
        self.producer.close()


# --- reading and checking the city's topics ---------------------------------------------------------


def _read(city: City, topic: str, count: int, *, timeout_s: float = 60.0) -> list[Consumed]:
    """``count`` records of a city topic, and then 2 s more to see that nothing more comes."""
    reader = TopicReader(city.kafka, [topic], serde_for(city.registry_url))
    try:
        reader.read_until(_at_least(count), timeout_s=timeout_s)
        return list(reader.read_quiet(quiet_s=2.0))
    finally:
        reader.close()


def _at_least(count: int) -> Callable[[list[Consumed]], bool]:
    return lambda records: len(records) >= count


def _assert_carried_exactly_once(court: Court, city: City, records: list[Consumed], expected: int) -> None:
    serde = serde_for(city.registry_url)
    events = [(r, serde.decode(r.raw, logical=False)[1]) for r in records if r.value is not None]
    seen = [(e["key"], e["seq"]) for _, e in events]
    assert len(seen) == len(set(seen)), "a change reached the city twice"
    assert len(seen) == expected, f"{len(seen)} changes at the city for {expected} delivered"
    by_key: dict[str, list[int]] = defaultdict(list)
    for record, event in sorted(events, key=lambda pair: (pair[0].partition, pair[0].offset)):
        op, commit = court.sent[(event["key"], event["seq"])]
        assert event["op"] == op
        assert event["source"]["commit_ts_ms"] == commit, "the department's commit time is kept"
        assert event["source"]["dept"] == city.dept, "the city's source topic carries its owner's events"
        assert record.key == key_bytes(event["key"])
        by_key[event["key"]].append(event["seq"])
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"changes of {key} out of order at the city: {seqs}"


# --- the tests --------------------------------------------------------------------------------------


def test_district_deliveries_reach_the_city_source_topic_exactly_once_in_order(
    district: District, city: City
) -> None:
    court = Court(district)
    court.rounds(keys=40, rounds=6)
    court.close()
    expected = len(court.sent)
    delivered = read_all(district.kafka, district.delivery_topic, expect=expected, timeout=60)
    assert len(delivered) == expected, "the district hub delivers every change to the link"
    with running_sidecar(city.connector):
        records = _read(city, city.source_topic, expected)
    _assert_carried_exactly_once(court, city, records, expected)
    assert not read_all(city.kafka, city.dead_letter_topic, idle=0.5), "nothing dead-lettered"


@pytest.mark.slow
def test_sigkill_of_the_link_during_the_stream_loses_and_repeats_nothing(
    district: District, city: City, tmp_path: Path
) -> None:
    court = Court(district)
    stream = threading.Thread(
        target=court.rounds, kwargs={"keys": 50, "rounds": 12, "every_s": 0.025}, daemon=True
    )
    link = SidecarProcess(city.connector, tmp_path / "link.log")
    link.start()
    link.wait_started(60)
    stream.start()
    reader = TopicReader(city.kafka, [city.source_topic], serde_for(city.registry_url))
    jitter = random.Random(17)
    kills = 0
    try:
        while kills < 4 and stream.is_alive():
            carried = len(reader.records)
            # only once the link carries again since its last start: a kill mid-batch, not mid-start
            reader.read_until(_at_least(carried + 20), timeout_s=60)
            assert len(reader.records) >= carried + 20, f"the link stalled after {kills} kills"
            time.sleep(jitter.uniform(0, 0.3))  # anywhere in its cycle of poll, send, commit
            link.kill()
            kills += 1
            link.start()
            link.wait_started(60)
        stream.join(120)
        assert not stream.is_alive()
        court.close()
        expected = len(court.sent)
        reader.read_until(_at_least(expected), timeout_s=90)
        records = reader.read_quiet(quiet_s=3.0)
    finally:
        reader.close()
        code = link.terminate() if link.alive() else 0
    assert kills >= 3, f"only {kills} SIGKILLs happened during the stream"
    assert code == 0, f"the link did not stop cleanly (log: {link.log_path})"
    _assert_carried_exactly_once(court, city, records, expected)
    # For the record (-s): how many records of transactions the kills cut short the brokers hold, aborted.
    print(f"{kills} kills; {_written(city) - expected} records of aborted link transactions at the city")


def _written(city: City) -> int:
    """Records written to the city source topic, committed or not (read_uncommitted, control records
    excluded)."""
    consumer = make_consumer(
        city.kafka, "test-uncommitted", group_id=None, isolation_level="read_uncommitted"
    )
    try:
        tps = [TopicPartition(city.source_topic, p) for p in consumer.partitions_for_topic(city.source_topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        count = 0
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            count += sum(len(records) for records in consumer.poll(timeout_ms=300).values())
        return count
    finally:
        consumer.close()


def test_a_record_the_city_cannot_take_is_dead_lettered_with_its_bytes(
    district: District, city: City
) -> None:
    court = Court(district)
    court.rounds(keys=10, rounds=2)
    court.publish(999, "c", debtor_type="entity")  # the district delivers it; the city takes persons only
    court.rounds(keys=10, rounds=1)
    court.close()
    delivered_count = len(court.sent)
    garbage = b"not a change event at all"
    stray = make_producer(district.kafka, "test-stray")
    stray.send(district.delivery_topic, key=b"stray", value=garbage).get(30)
    stray.close()
    delivered = read_all(district.kafka, district.delivery_topic, expect=delivered_count + 1, timeout=60)
    by_origin = {f"{r.topic}-{r.partition}@{r.offset}": r.value for r in delivered}

    with running_sidecar(city.connector):
        letters = _read(city, city.dead_letter_topic, 2)
        records = _read(city, city.source_topic, delivered_count - 1)

    reasons = {letter.value["reason"]: letter.value for letter in letters}
    assert set(reasons) == {"wrong_type", "bad_wire_format"}, reasons
    refused = reasons["wrong_type"]
    assert refused["field"] == "debtor_type"
    assert refused["original"] == by_origin[refused["origin"]], "the bytes as the district delivered them"
    assert serde_for(district.hub.registry_url).decode(refused["original"])[1]["key"] == "(2025)沪0115执999号"
    assert reasons["bad_wire_format"]["original"] == garbage
    assert all(dict(letter.headers)["xhub.reason"] for letter in letters)
    court.sent = {k: v for k, v in court.sent.items() if k[0] != "(2025)沪0115执999号"}
    _assert_carried_exactly_once(court, city, records, delivered_count - 1)
