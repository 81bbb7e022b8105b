"""A small exchange on the real broker for the monitor tests: one hub, one provider, two subscriptions.

    <hub>-debtors   court's dishonest-debtor list -> tax        (events are published here)
    <hub>-licences  amr's business licences        -> transport  (never gets an event: the idle one)

Every name carries a random token, so tests never share topics or groups. The schema registry runs in
process on its own schemas topic; hubs.yaml names its URL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kafka import KafkaConsumer, KafkaProducer

from hub.app import HubProcess, start_hub
from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes, now_ms
from hub.core.kafka import make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.monitor.admin import AdminServer
from hub.monitor.lag import sink_group
from hub.provision.session import provision_session
from hub.registry.server import RegistryServer
from hub.registry.store import SchemaStore

SECRET_ENV = "XHUB_MONITOR_TEST_SECRET"
AUDIT_KEY_ENV = "XHUB_MONITOR_TEST_AUDIT_KEY"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Names:
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def hub(self) -> str:
        return f"mon{self.token}"

    @property
    def court(self) -> str:
        return f"court{self.token}"

    @property
    def amr(self) -> str:
        return f"amr{self.token}"

    @property
    def tax(self) -> str:
        return f"tax{self.token}"

    @property
    def transport(self) -> str:
        return f"transport{self.token}"

    @property
    def debtors(self) -> str:
        return f"{self.hub}-debtors"

    @property
    def licences(self) -> str:
        return f"{self.hub}-licences"


def write_config(root: Path, kafka: KafkaSettings, registry_url: str, names: Names) -> Path:
    """A config directory for :class:`Names`; returns it."""
    (root / "departments").mkdir(parents=True)
    (root / "catalog").mkdir()
    (root / "subscriptions").mkdir()

    def dump(path: str, body: dict[str, Any]) -> None:
        (root / path).write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")

    dump(
        "hubs.yaml",
        {
            "kafka": {"bootstrap_servers": kafka.bootstrap_servers},
            "registry": {"url": registry_url},
            "hubs": [
                {
                    "name": names.hub,
                    "description": "监控测试枢纽 (monitor test hub)",
                    "admin_port": 0,
                    "registry_port": 0,
                    "pseudonym_secret_env": SECRET_ENV,
                    "audit_key_env": AUDIT_KEY_ENV,
                    "partitions": 2,
                    "batch_max_ms": 50,
                }
            ],
        },
    )
    dump(
        "departments/all.yaml",
        {
            "departments": [
                {"id": names.court, "name": "浦东新区人民法院 (court)", "systems": ["enforcement"]},
                {"id": names.amr, "name": "市场监督管理局 (market regulation)", "systems": ["licensing"]},
                {"id": names.tax, "name": "税务局 (tax)"},
                {"id": names.transport, "name": "建设和交通委员会 (transport)"},
            ]
        },
    )
    dump(
        "catalog/all.yaml",
        {
            "resources": [
                {
                    "code": "PD-CRD-0001",
                    "name": "失信被执行人名单",
                    "owner": names.court,
                    "schema": "resources/dishonest_debtor.avsc",
                    "key": "case_no",
                    "share": "unconditional",
                    "fields": {
                        "case_no": "public",
                        "debtor_type": "public",
                        "debtor_id": "personal",
                        "debtor_name": "personal",
                        "court": "public",
                        "obligation": "internal",
                        "performance_status": "public",
                        "publish_date": "public",
                        "district": "public",
                    },
                },
                {
                    "code": "PD-LIC-0001",
                    "name": "电子营业执照",
                    "owner": names.amr,
                    "schema": "resources/business_licence.avsc",
                    "key": "licence_no",
                    "share": "unconditional",
                    "fields": {
                        "licence_no": "public",
                        "credit_code": "public",
                        "entity_name": "public",
                        "licence_type": "public",
                        "issue_date": "public",
                        "valid_until": "public",
                        "issuing_authority": "public",
                    },
                },
            ]
        },
    )
    dump(
        "subscriptions/all.yaml",
        {
            "subscriptions": [
                {
                    "id": names.debtors,
                    "subscriber": names.tax,
                    "resource": "PD-CRD-0001",
                    "hub": names.hub,
                    "fields": ["case_no", "court", "performance_status", "district"],
                    "purpose": "联合惩戒 (test)",
                },
                {
                    "id": names.licences,
                    "subscriber": names.transport,
                    "resource": "PD-LIC-0001",
                    "hub": names.hub,
                    "fields": ["licence_no", "entity_name"],
                    "purpose": "许可核验 (test)",
                },
            ]
        },
    )
    return root


class Subscriber:
    """A stand-in for the subscriber sidecar: consumes the delivery topic in the sink group and commits.

    The lag tool only reads the group's committed offsets, so this is what it sees of a real sidecar;
    :meth:`stop` is a stopped sidecar (the consumer leaves the group and nothing is committed any more).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, group: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.group = group
        self.consumed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"subscriber-{self.group}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer: KafkaConsumer = make_consumer(self.kafka, "monitor-test-sink", group_id=self.group)
        try:
            consumer.subscribe([self.topic])
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=100)
                if batch:
                    self.consumed += sum(len(r) for r in batch.values())
                    consumer.commit()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            consumer.close(autocommit=False)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._error is not None:
            raise AssertionError(f"subscriber failed: {self._error!r}")


@dataclass
class Exchange:
    """The running pieces of one test exchange."""

    names: Names
    kafka: KafkaSettings
    config_dir: Path
    cfg: ConfigDir
    serde: AvroSerde
    process: HubProcess
    producer: KafkaProducer
    source_producer: KafkaProducer  # transactional, like a department sidecar
    seq: int = 0

    @property
    def admin_url(self) -> str:
        assert self.process.admin_url is not None, "start_hub did not start the admin server"
        return self.process.admin_url

    def publish_debtors(self, n: int, *, commit_ts_ms: int | None = None) -> None:
        """Publish ``n`` change events of PD-CRD-0001 from the court in one transaction, as a sidecar does."""
        topic = names.source_topic(self.names.court, "PD-CRD-0001")
        schema = change_event_schema("PD-CRD-0001", self.cfg.schemas["PD-CRD-0001"])
        self.source_producer.begin_transaction()
        for _ in range(n):
            self.seq += 1
            case = f"(2026)沪0115执{self.seq:05d}号"
            event = ChangeEvent(
                resource="PD-CRD-0001",
                op="c",
                key=case,
                seq=self.seq,
                dept=self.names.court,
                system="enforcement",
                commit_ts_ms=commit_ts_ms or now_ms(),
                data={
                    "case_no": case,
                    "debtor_type": "entity",
                    "debtor_id": "91310115MA1K000000",
                    "debtor_name": "上海测试有限公司",
                    "court": "浦东新区人民法院",
                    "obligation": None,
                    "performance_status": "全部未履行",
                    "publish_date": 20400,
                    "district": "浦东新区",
                },
            )
            value = self.serde.encode(f"{topic}-value", schema, event.to_avro())
            self.source_producer.send(topic, key=key_bytes(case), value=value)
        self.source_producer.commit_transaction()

    def publish_raw(self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        self.producer.send(topic, key=b"raw", value=value, headers=headers or [])
        self.producer.flush(timeout=30)

    def subscriber(self, subscription: str) -> Subscriber:
        return Subscriber(
            self.kafka, names.delivery_topic(self.names.hub, subscription), sink_group(subscription)
        )

    def delivered(self, subscription: str) -> int:
        stats = self.process.worker.stats
        with stats.lock:
            return stats.subscriptions[subscription].delivered


@contextmanager
def running_exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: Any) -> Iterator[Exchange]:
    """Registry, config, topics, a running hub (with its admin server) and a producer."""
    names = Names()
    monkeypatch.setenv(SECRET_ENV, "monitor-test-secret")
    monkeypatch.setenv(AUDIT_KEY_ENV, "monitor-test-audit-key-0123456789")
    store = SchemaStore(kafka, topic=f"_xhub_schemas-mon-{names.token}", client_id=f"mon-{names.token}")
    store.start()
    server = RegistryServer(store, port=0)
    server.start()
    producer = make_producer(kafka, f"monitor-test-{names.token}")
    source_producer = make_producer(
        kafka, f"monitor-test-src-{names.token}", transactional_id=f"monitor-test-src-{names.token}"
    )
    source_producer.init_transactions()
    process: HubProcess | None = None
    try:
        config_dir = write_config(tmp_path / "config", kafka, server.url, names)
        cfg = load_config(config_dir)
        with provision_session(cfg) as session:
            session.apply()
        process = start_hub(cfg, names.hub, admin_port=0)
        wait_for("the hub worker to be ready", process.worker.ready.is_set)
        serde = AvroSerde(RegistryClient(server.url))
        yield Exchange(names, kafka, config_dir, cfg, serde, process, producer, source_producer)
    finally:
        if process is not None:
            process.close()
        producer.close(timeout=5)
        source_producer.close(timeout=5)
        server.stop()
        store.stop()


def add_late_subscription(ex: Exchange) -> str:
    """Subscribe tax to the debtors again, as ``<hub>-late`` (a backfill follows), and apply."""
    path = ex.config_dir / "subscriptions" / "all.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    late = f"{ex.names.hub}-late"
    body["subscriptions"].append(
        {
            "id": late,
            "subscriber": ex.names.tax,
            "resource": "PD-CRD-0001",
            "hub": ex.names.hub,
            "fields": ["case_no", "court", "performance_status"],
            "purpose": "联合惩戒 (late test)",
        }
    )
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with provision_session(load_config(ex.config_dir)) as session:
        session.apply()
    return late


def admin_server(ex: Exchange) -> AdminServer:
    """The hub's admin server (start_hub keeps it among the closers)."""
    found = [c.__self__ for c in ex.process.closers if isinstance(getattr(c, "__self__", None), AdminServer)]
    assert found, "start_hub started no admin server"
    return found[0]
