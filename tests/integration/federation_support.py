"""Two clusters and a federation on them, for the hub-link and federation tests (issue 17).

Two private clusters, started with deploy/local/kafka.sh once per test session and stopped at its end: the
district on port 19192 and the city on 19292 (moved by XHUB_TEST_PRIVATE_PORT_BASE), the shared
broker never touched. A real district hub (the demo config, plus a link department subscribing to the
court's dishonest-debtor list) delivers to the link; the link is a sidecar (``type: hub_link``) whose own
cluster is the city's: it publishes on ``xhub.src.<link-dept>.pd-crd-0001`` there, with its position on
the district delivery topic in the same transaction. The city registry is a built-in one stored on the
city cluster; the district's is the hub's.

The city's catalog knows the list as a linked resource (``linked_from``, with a copy of the district's
published terms) and takes persons only (``debtor_type`` is an enum of one symbol there), so an entity
debtor the district delivers is a record the city's schema cannot take.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.testing.catalog import write_connector_config
from connectors.testing.kafka import Consumed, TopicReader
from connectors.testing.records import citizen_id
from connectors.testing.runtime import serde_for
from hub.app import HubProcess, start_hub
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.envelope import ChangeEvent, Op, change_event_schema, key_bytes
from hub.core.kafka import make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.demo.federation.links import hub_link_source
from hub.demo.federation.table import SubscriberTable
from hub.monitor.lag_path import read_admin
from hub.provision.credentials import issue
from tests.fixtures.brokers import private_broker, private_port
from tests.fixtures.federation import (
    LINK_SUBSCRIPTION,
    RESOURCE,
    add_link_subscription,
    district_terms,
    recode,
    write_city_config,
)
from tests.fixtures.hubkit import apply_config
from tests.fixtures.plugin import DEMO_CONFIG, isolate_config

__all__ = ["SubscriberTable", "hub_link_source"]  # moved to hub.demo.federation; the tests import them here

# Other ports when another run of these tests shares the machine (both would stop the same brokers).
DISTRICT_PORT = private_port(19192, 1)
CITY_PORT = private_port(19292, 2)
SUBSCRIPTION = LINK_SUBSCRIPTION
COMMIT_BASE_MS = 1_760_000_000_000

# --- the two clusters -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clusters() -> Iterator[tuple[KafkaSettings, KafkaSettings]]:
    """(district, city): two single-node brokers of their own, for the session (every federation test
    module uses them), stopped at its end."""
    with (
        private_broker(DISTRICT_PORT, heap="512m") as district,
        private_broker(CITY_PORT, heap="512m") as city,
    ):
        yield district, city


@pytest.fixture(scope="session")
def city_registry(clusters: tuple[KafkaSettings, KafkaSettings]) -> Iterator[str]:
    """The city's schema registry: built in, stored on the city cluster."""
    with registry_on(clusters[1]) as url:
        yield url


@contextmanager
def registry_on(kafka: KafkaSettings) -> Iterator[str]:
    """A built-in schema registry stored on ``kafka`` while the block runs; its url."""
    from hub.registry.server import RegistryServer
    from hub.registry.store import SchemaStore

    store = SchemaStore(kafka)
    store.start()
    server = RegistryServer(store, port=0)
    server.start()
    try:
        yield server.url
    finally:
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
    root: Path
    link: str  # the link, as a department of the district
    resource: str = RESOURCE
    area: str = "0115"  # the court's area code in its case numbers (Pudong's)

    @property
    def delivery_topic(self) -> str:
        return names.delivery_topic(self.hub_name, SUBSCRIPTION)

    def link_source(self, name: str, *, own_identity: bool = True) -> dict[str, Any]:
        """A hub link source (connector config) carrying this district's deliveries to the link: with
        the link's own certificate on secure clusters, or (``own_identity`` False) as the tests'
        super user."""
        connection = {"bootstrap_servers": self.kafka.bootstrap_servers}
        if own_identity:
            connection = party_connection(self.kafka, self.link, self.root.parent / "credentials")
        return hub_link_source(
            name,
            resource=self.resource,
            hub=self.hub_name,
            subscription=SUBSCRIPTION,
            registry_url=self.hub.registry_url,
            connection=connection,
        )


def secure_clusters() -> bool:
    """Whether the private clusters are secure (mutual TLS, ACLs): so when the tests connect so, as
    `make test` does (tests.fixtures.brokers starts them like the broker the tests connect to)."""
    return os.environ.get("XHUB_KAFKA_SECURITY_PROTOCOL") == "SSL" and bool(
        os.environ.get("XHUB_KAFKA_SSL_CAFILE")
    )


def party_connection(kafka: KafkaSettings, party: str, folder: Path) -> dict[str, Any]:
    """How ``party`` connects to ``kafka`` (a connector config's ``kafka``): on secure clusters (as `make
    test` runs them) with a certificate of its own, issued in ``folder`` by the brokers' CA, so that
    only the ACLs `xhub apply` gave it let it in; else plaintext."""
    if not secure_clusters():
        return {"bootstrap_servers": kafka.bootstrap_servers, "security_protocol": "PLAINTEXT"}
    folder.mkdir(parents=True, exist_ok=True)
    brokers_ca = Path(os.environ["XHUB_KAFKA_SSL_CAFILE"]).parent
    for name in ("ca.pem", "ca.key"):  # the brokers' CA, copied: parties are issued here, not there
        if not (folder / name).exists():
            shutil.copy(brokers_ca / name, folder / name)
    cert, key = issue(folder, party)
    return {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": "SSL",
        "ssl_cafile": str(folder / "ca.pem"),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }


@pytest.fixture
def district(
    clusters: tuple[KafkaSettings, KafkaSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[District]:
    monkeypatch.setenv("XHUB_PUDONG_SECRET", "test-secret-pudong-0123456789")
    monkeypatch.setenv("XHUB_CITY_SECRET", "test-secret-city-0123456789")
    monkeypatch.setenv("XHUB_PUDONG_AUDIT_KEY", "test-audit-key-pudong-0123456789")
    monkeypatch.setenv("XHUB_CITY_AUDIT_KEY", "test-audit-key-city-0123456789")
    monkeypatch.setenv("XHUB_STATE_DIR", str(tmp_path / "state"))
    with running_district(clusters[0], tmp_path / "district") as running:
        yield running


@contextmanager
def running_district(
    kafka: KafkaSettings, root: Path, *, name: str = "pudong", resource: str = RESOURCE, area: str = "0115"
) -> Iterator[District]:
    """A district (the demo config as hub ``name``-<token>, its court's list coded ``resource``, with the
    link's subscription), applied on ``kafka`` and its hub running while the block runs."""
    token = uuid.uuid4().hex[:6]
    renames = isolate_config(DEMO_CONFIG, root, kafka, token)
    hub = f"{name}-{token}"
    recode(root, renames["pudong"], hub)
    link = f"citylink-{token}"
    add_link_subscription(root, link=link, hub=hub, court=renames["court"])
    recode(root, RESOURCE, resource)  # the catalog, the grants, the subscriptions (the link's too)
    cfg = apply_config(root)
    with running_hub(cfg, hub) as process:
        yield District(cfg, process, hub, renames["court"], kafka, root, link, resource, area)


# --- the city side: its catalog knows the district's list as a resource of the link --------------


CITY_SUBSCRIBER = "credit-centre"
CITY_SUBSCRIPTION = "centre-debtors"
CITY_FIELDS = ["case_no", "debtor_name", "court", "performance_status"]


@dataclass
class City:
    kafka: KafkaSettings
    registry_url: str
    dept: str
    connector: Path
    root: Path
    hub_name: str
    subscriber: str

    @property
    def source_topic(self) -> str:
        return names.source_topic(self.dept, RESOURCE)

    @property
    def dead_letter_topic(self) -> str:
        return names.dead_letter_topic(self.dept)

    @property
    def delivery_topic(self) -> str:
        return names.delivery_topic(self.hub_name, CITY_SUBSCRIPTION)


@pytest.fixture
def city(
    clusters: tuple[KafkaSettings, KafkaSettings], city_registry: str, district: District, tmp_path: Path
) -> City:
    """The city config (the district's list as a linked resource, a city subscriber narrowing it: fewer
    fields, the name masked again) and the link's connector config."""
    return make_city(clusters[1], city_registry, district, tmp_path)


def make_city(kafka: KafkaSettings, city_registry: str, district: District, tmp_path: Path) -> City:
    """What the ``city`` fixture makes, in ``tmp_path`` (the benchmark's too)."""
    token = uuid.uuid4().hex[:6]
    dept = f"pudong-{token}"  # the district hub, as the city's config names it (provider of its resources)
    hub = f"city-{token}"
    subscriber = {"id": f"{CITY_SUBSCRIBER}-{token}", "name": "市公共信用信息服务中心"}
    subscription = {
        "id": CITY_SUBSCRIPTION,
        "subscriber": subscriber["id"],
        "resource": RESOURCE,
        "hub": hub,
        "fields": CITY_FIELDS,
        "masks": {"debtor_name": "name"},
        "purpose": "信用联动奖惩: the city's merged list of dishonest debtors",
    }
    root = write_city_config(
        tmp_path / "city",
        dept=dept,
        hub=hub,
        bootstrap=kafka.bootstrap_servers,
        registry_url=city_registry,
        district_hub=district.hub_name,
        terms=district_terms(district.root),
        departments=[subscriber],
        subscriptions=[subscription],
    )
    connector = write_connector_config(
        tmp_path / "link.yaml",
        dept=dept,
        catalog=root,
        bootstrap=kafka.bootstrap_servers,
        registry_url=city_registry,
        sources=[district.link_source("pudong-debtors")],
    )
    return City(kafka, city_registry, dept, connector, root, hub, subscriber["id"])


@pytest.fixture
def city_hub(city: City) -> Iterator[HubProcess]:
    """The city hub, applied and running on the city cluster: it serves the city's own subscription."""
    with running_hub(apply_config(city.root), city.hub_name) as process:
        yield process


def link_on_status_page(hub: HubProcess, dept: str) -> dict[str, Any] | None:
    """The hub link's source on ``hub``'s status page once it reports nothing waiting, else None."""
    link = link_status(hub, dept)
    return link if link is not None and link["rows"] == 0 else None


def link_status(hub: HubProcess, dept: str) -> dict[str, Any] | None:
    """The hub link's source (of department ``dept``) as ``hub``'s status page shows it, if it does."""
    assert hub.admin_url is not None
    sources = read_admin(hub.admin_url)["path"]["sources"]
    links = [s for s in sources if s["kind"] == "hub_link" and s["department"] == dept]
    return links[0] if links else None


@contextmanager
def running_hub(cfg: ConfigDir, hub: str) -> Iterator[HubProcess]:
    """Hub ``hub`` of an applied config, running in this process while the block runs."""
    process = start_hub(cfg, hub)
    try:
        assert process.worker.ready.wait(60), f"hub {hub}: worker did not start"
        yield process
    finally:
        process.close()


# --- the court's stream at the district ------------------------------------------------------------


class Court:
    """Publishes the court's changes on the district cluster as its sidecar would, each with a known
    source commit time; remembers (key, seq) -> (op, commit time)."""

    def __init__(self, district: District) -> None:
        self.resource = district.resource
        self.area = district.area
        self.topic = names.source_topic(district.court, self.resource)
        self.schema = change_event_schema(self.resource, district.cfg.schemas[self.resource])
        self.serde = serde_for(district.hub.registry_url)
        self.producer = make_producer(district.kafka, "test-court")
        self.court = district.court
        self.seq = 0
        self.sent: dict[tuple[str, int], tuple[str, int]] = {}

    def publish(self, n: int, op: Op, *, debtor_type: str = "person", commit_ms: int | None = None) -> None:
        """One change of key ``n``; its source commit time is ``commit_ms`` (default: a made-up one)."""
        self.seq += 1
        key = self.key_of(n)
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
        commit = COMMIT_BASE_MS + self.seq * 7 if commit_ms is None else commit_ms
        event = ChangeEvent(self.resource, op, key, self.seq, self.court, "enforcement", commit, data)
        value = self.serde.encode(f"{self.topic}-value", self.schema, event.to_avro())
        self.producer.send(self.topic, key=key_bytes(key), value=value)
        self.sent[(key, self.seq)] = (op, commit)

    def key_of(self, n: int) -> str:
        """The business key (case number) of debtor ``n``."""
        return f"(2025)沪{self.area}执{n}号"

    def rounds(
        self, keys: int, rounds: int, *, every_s: float = 0.0, gate: threading.Event | None = None
    ) -> None:
        """Every key created, then updated each round; in the last round every fifth is deleted instead.
        ``every_s``: the pause after each change (a steady stream rather than bursts); ``gate``: each change
        waits until it is set (a test pauses the stream by clearing it)."""
        for r in range(rounds):
            for n in range(keys):
                if gate is not None:
                    gate.wait()
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


def read_city(city: City, topic: str, count: int, *, timeout_s: float = 60.0) -> list[Consumed]:
    """``count`` records of a city topic, and then 2 s more to see that nothing more comes."""
    reader = TopicReader(city.kafka, [topic], serde_for(city.registry_url))
    try:
        reader.read_until(at_least(count), timeout_s=timeout_s)
        return list(reader.read_quiet(quiet_s=2.0))
    finally:
        reader.close()


def at_least(count: int) -> Callable[[list[Consumed]], bool]:
    return lambda records: len(records) >= count


def assert_carried_exactly_once(court: Court, city: City, records: list[Consumed], expected: int) -> None:
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


# --- the city subscriber's table: the end of the path ----------------------------------------------


def city_table(city: City, workdir: Path) -> SubscriberTable:
    """The city subscriber's table, fed by the city hub's deliveries of its subscription."""
    return SubscriberTable.of(
        workdir,
        dept=city.subscriber,
        catalog=city.root,
        kafka=city.kafka,
        registry_url=city.registry_url,
        hub=city.hub_name,
    )


def assert_applied_exactly_once(
    table: SubscriberTable, sent: Mapping[tuple[str, int], tuple[str, int]]
) -> None:
    """Every change of ``sent`` ((key, seq) -> (op, commit time)) applied once at ``table``, nothing else;
    the table holds per key its newest change, a deleted key not at all."""
    receipts = table.receipts()
    repeated = sorted(k for k, n in Counter(receipts).items() if n > 1)
    assert not repeated, f"{len(repeated)} changes applied twice at the subscriber, e.g. {repeated[:3]}"
    missing = sorted(set(sent) - set(receipts))
    assert not missing, f"{len(missing)} of {len(sent)} changes never applied, e.g. {missing[:3]}"
    extra = sorted(set(receipts) - set(sent))
    assert not extra, f"{len(extra)} changes applied that were not sent, e.g. {extra[:3]}"
    newest: dict[str, tuple[int, str]] = {}
    for (key, seq), (op, _) in sent.items():
        if key not in newest or seq > newest[key][0]:
            newest[key] = (seq, op)
    assert table.rows() == {k: seq for k, (seq, op) in newest.items() if op != "d"}
