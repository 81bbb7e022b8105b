"""Shared pieces of the sink tests: a delivery schema, a delivery producer, a TCP proxy, waiting.

Deliveries are produced exactly as the hub writes them (CONTRACTS.md): the change-event envelope of a
projected schema, Confluent-framed through a registry, in Kafka transactions, with the xhub.* headers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes
from hub.core.kafka import ensure_topics, make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from tests.fixtures.hubkit import wait_for

LICENCE: dict[str, Any] = {
    "type": "record",
    "name": "LicenceView",
    "namespace": "gov.xhub.test",
    "fields": [
        {"name": "licence_no", "type": "string"},
        {"name": "holder", "type": ["null", "string"], "default": None},
        {"name": "issued", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "capital", "type": ["null", "double"], "default": None},
        {"name": "active", "type": "boolean", "default": True},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["OPEN", "CLOSED"]}},
    ],
}
LICENCE_V2: dict[str, Any] = {
    **LICENCE,
    "fields": [*LICENCE["fields"], {"name": "note", "type": ["null", "string"], "default": None}],
}
EVENT = change_event_schema("PD-LIC-0001", LICENCE, name="LicenceDelivery")
EVENT_V2 = change_event_schema("PD-LIC-0001", LICENCE_V2, name="LicenceDelivery")


def licence(key: str, seq: int, *, holder: str | None = None, note: str | None = None) -> dict[str, Any]:
    """A data record whose values are derived from ``seq``, so a test can tell which change won."""
    data: dict[str, Any] = {
        "licence_no": key,
        "holder": holder if holder is not None else f"持证人{seq}",
        "issued": dt.date(2020, 1, 1) + dt.timedelta(days=seq % 1000),
        "capital": seq * 1.5,
        "active": seq % 2 == 0,
        "status": "OPEN" if seq % 3 else "CLOSED",
    }
    if note is not None:
        data["note"] = note
    return data


@dataclass
class Change:
    """One change to deliver."""

    key: str
    op: str
    seq: int
    data: dict[str, Any] | None = None
    schema: dict[str, Any] = field(default_factory=lambda: EVENT)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Sent:
    """Where a change (None: a raw record) landed, and its exact value bytes."""

    change: Change | None
    partition: int
    offset: int
    value: bytes


def make_topic(kafka: KafkaSettings, topic: str, partitions: int = 3) -> None:
    admin = make_admin(kafka)
    try:
        ensure_topics(admin, {topic: {}}, partitions=partitions)
    finally:
        admin.close()


class DeliveryProducer:
    """Writes deliveries to one topic as the hub does: transactional, framed, with xhub headers."""

    def __init__(self, kafka: KafkaSettings, registry_url: str, topic: str, *, hub: str = "hub1") -> None:
        self.topic = topic
        self.hub = hub
        self.subscription = topic.rsplit(".", 1)[-1]
        self.serde = AvroSerde(RegistryClient(registry_url))
        self.producer = make_producer(
            kafka, "test-dlv", transactional_id=f"tx-{topic}-{uuid.uuid4().hex[:6]}"
        )
        self.producer.init_transactions()

    def encode(self, change: Change) -> bytes:
        event = ChangeEvent(
            resource="PD-LIC-0001",
            op=change.op,  # type: ignore[arg-type]
            key=change.key,
            seq=change.seq,
            dept="amr",
            system="licensing",
            commit_ts_ms=1_700_000_000_000 + change.seq,
            data=change.data,
            event_id=change.event_id,
        )
        return self.serde.encode(f"{self.topic}-value", change.schema, event.to_avro())

    def send(self, changes: Iterable[Change], *, raw: Iterable[tuple[bytes, bytes]] = ()) -> list[Sent]:
        """Send ``changes`` (and ``raw`` (key, value) pairs, e.g. garbage) in one transaction."""
        self.producer.begin_transaction()
        futures: list[tuple[Change | None, bytes, Any]] = []
        for change in changes:
            value = self.encode(change)
            headers = [
                ("xhub.event_id", change.event_id.encode()),
                ("xhub.policy_version", b"pv-1"),
                ("xhub.hub", self.hub.encode()),
                ("xhub.subscription", self.subscription.encode()),
                ("xhub.source", f"xhub.src.amr.pd-lic-0001-0@{change.seq}".encode()),
            ]
            future = self.producer.send(self.topic, key=key_bytes(change.key), value=value, headers=headers)
            futures.append((change, value, future))
        for key, value in raw:
            futures.append((None, value, self.producer.send(self.topic, key=key, value=value)))
        self.producer.commit_transaction()
        sent: list[Sent] = []
        for sent_change, value, future in futures:
            meta = future.get(timeout=30)
            sent.append(Sent(sent_change, meta.partition, meta.offset, value))
        return sent

    def close(self) -> None:
        self.producer.close(timeout=10)


def expected_rows(changes: Iterable[Change]) -> dict[str, Change]:
    """The final state a sink must hold: per key the change with the highest seq, unless a delete."""
    newest: dict[str, Change] = {}
    for change in changes:
        if change.key not in newest or change.seq > newest[change.key].seq:
            newest[change.key] = change
    return {k: c for k, c in newest.items() if c.op != "d"}


def next_offsets(topic: str, sent: Iterable[Sent]) -> dict[tuple[str, int], int]:
    """Per partition, the offset after the last record sent: what a caught-up sink stores."""
    found: dict[tuple[str, int], int] = {}
    for s in sent:
        found[(topic, s.partition)] = max(found.get((topic, s.partition), 0), s.offset + 1)
    return found


def read_topic(kafka: KafkaSettings, topic: str, count: int, timeout: float = 30) -> list[Any]:
    """Read ``count`` records of ``topic`` from the beginning (no group)."""
    consumer: KafkaConsumer = make_consumer(kafka, "test-read", group_id=None)
    try:
        wait_for(lambda: bool(consumer.partitions_for_topic(topic)), timeout, f"topic {topic}")
        consumer.assign([TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))])
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


class TcpProxy:
    """A TCP relay to ``upstream`` that can be cut (``down``) and restored (``up``): a database outage."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._accepting.start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        return sock

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        # shutdown() wakes the thread blocked in accept(); close() alone leaves the socket listening.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(timeout=5)
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def up(self) -> None:
        """Accept connections again, on the same port."""
        self._listener = self._listen(self.port)
        self._accepting = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._accepting.start()

    def close(self) -> None:
        self.down()


@dataclass
class Received:
    """One request the web application got."""

    headers: dict[str, str]
    body: Any
    status: int


Answer = Callable[[Any, int], "tuple[int, dict[str, str]]"]
"""(parsed JSON body, how many requests came before) -> (status, extra response headers)."""


class WebApp:
    """A department's web application on a local port: answers POSTs as ``answer`` says, records them."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or (lambda body, n: (200, {}))
        self.received: list[Received] = []
        self._lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                with app._lock:
                    status, extra = app.answer(body, len(app.received))
                    app.received.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/xhub/deliveries"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def ok(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def fetch(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` in the SQLite or PostgreSQL database of a sink DSN."""
    if dsn.startswith("sqlite:///"):
        with closing(sqlite3.connect(dsn[len("sqlite:///") :])) as conn:
            return list(conn.execute(sql).fetchall())
    import psycopg

    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql).fetchall())
