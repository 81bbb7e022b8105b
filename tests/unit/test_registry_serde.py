"""AvroSerde: Confluent-framed Avro, schemas from the registry, cached so records cost no registry calls."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hub.core.errors import InvalidRecord
from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import IncompatibleSchema, RegistryUnavailable
from hub.core.registry.serde import AvroSerde
from hub.core.registry.wire import frame, unframe
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore

PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.xhub",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "phone", "type": ["null", "string"], "default": None},
    ],
}
PERSON_V2 = {**PERSON, "fields": [*PERSON["fields"], {"name": "city", "type": "string", "default": "北京"}]}
RECORD = {"name": "张三", "age": 40, "phone": "13800000000"}


class CountingClient(RegistryClient):
    """Counts HTTP requests, to prove the per-record path never reaches the registry."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.requests: list[str] = []

    def _request(self, method: str, path: str, body: Any = None, query: Any = None) -> Any:
        self.requests.append(f"{method} {path}")
        return super()._request(method, path, body, query)


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    srv = RegistryServer(MemorySchemaStore())
    srv.start()
    yield srv
    srv.stop()


def test_roundtrip_with_the_confluent_header(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    data = serde.encode("p-value", PERSON, RECORD)
    schema_id, body = unframe(data)
    assert data[0] == 0
    assert schema_id == 1 == serde.schema_id("p-value", PERSON)
    assert body
    assert serde.decode(data) == (1, RECORD)


def test_no_registry_call_per_record(server: RegistryServer) -> None:
    writer_client = CountingClient(server.url)
    writer = AvroSerde(writer_client)
    values = [writer.encode("p-value", PERSON, {**RECORD, "age": i}) for i in range(500)]
    assert writer_client.requests == ["POST /subjects/p-value/versions"]

    reader_client = CountingClient(server.url)
    reader = AvroSerde(reader_client)
    decoded = [reader.decode(v)[1]["age"] for v in values]
    assert decoded == list(range(500))
    assert reader_client.requests == ["GET /schemas/ids/1"]

    # a schema given as an equal but distinct object (or as text) is still one registration
    writer.encode("p-value", json.loads(json.dumps(PERSON)), RECORD)
    writer.encode("p-value", json.dumps(PERSON), RECORD)
    assert writer_client.requests == ["POST /subjects/p-value/versions"]


def test_the_writer_id_is_known_to_its_own_decoder_without_a_lookup(server: RegistryServer) -> None:
    client = CountingClient(server.url)
    serde = AvroSerde(client)
    serde.decode(serde.encode("p-value", PERSON, RECORD))
    assert client.requests == ["POST /subjects/p-value/versions"]


def test_decode_with_a_newer_reader_schema(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    old = serde.encode("p-value", PERSON, RECORD)
    new = serde.encode("p-value", PERSON_V2, {**RECORD, "city": "上海"})
    assert serde.decode(old, PERSON_V2) == (1, {**RECORD, "city": "北京"})
    assert serde.decode(new, PERSON_V2) == (2, {**RECORD, "city": "上海"})
    assert serde.decode(new) == (2, {**RECORD, "city": "上海"})
    assert serde.decode(new, PERSON) == (2, RECORD)  # FORWARD: the old reader skips the new field


def test_a_value_the_reader_cannot_resolve_is_a_schema_mismatch(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    data = serde.encode("p-value", PERSON, RECORD)
    reader = {**PERSON, "fields": [*PERSON["fields"], {"name": "email", "type": "string"}]}
    with pytest.raises(InvalidRecord) as caught:
        serde.decode(data, reader)
    assert caught.value.reason == "schema_mismatch"
    assert "schema id 1" in caught.value.detail
    assert 'field "email"' in caught.value.detail
    assert caught.value.original == data


def test_unknown_schema_id(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    with pytest.raises(InvalidRecord) as caught:
        serde.decode(frame(77, b"\x02"))
    assert caught.value.reason == "unknown_schema_id"
    assert "schema id 77" in caught.value.detail
    assert server.url in caught.value.detail


def test_garbage_body_is_undecodable(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    good = serde.encode("p-value", PERSON, RECORD)
    for bad in (good[:-3], frame(1, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")):
        with pytest.raises(InvalidRecord) as caught:
            serde.decode(bad)
        assert caught.value.reason == "undecodable"
        assert "schema id 1" in caught.value.detail


def test_bad_wire_format(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    with pytest.raises(InvalidRecord) as caught:
        serde.decode(b"\x01\x00\x00\x00\x01abc")
    assert caught.value.reason == "bad_wire_format"


def test_record_not_matching_its_schema_names_the_field_not_the_value(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    with pytest.raises(InvalidRecord) as caught:
        serde.encode("p-value", PERSON, {"name": "张三", "age": "forty", "phone": None})
    assert caught.value.reason == "unencodable"
    assert caught.value.field == "gov.xhub.Person.age"
    assert "forty" not in caught.value.detail
    assert "张三" not in caught.value.detail
    assert 'subject "p-value"' in caught.value.detail


def test_encoding_an_incompatible_schema_is_refused_by_the_registry(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    serde.encode("p-value", PERSON, RECORD)
    breaking = {**PERSON, "fields": [*PERSON["fields"], {"name": "email", "type": "string"}]}
    with pytest.raises(IncompatibleSchema) as caught:
        serde.encode("p-value", breaking, {**RECORD, "email": "x"})
    assert 'field "email"' in caught.value.messages[0]


def test_registry_down_is_retriable_not_a_bad_record() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serde = AvroSerde(RegistryClient(f"http://127.0.0.1:{port}", timeout=2))
    with pytest.raises(RegistryUnavailable):
        serde.decode(frame(1, b"\x02"))
    with pytest.raises(RegistryUnavailable):
        serde.encode("p-value", PERSON, RECORD)


def test_primitive_schemas(server: RegistryServer) -> None:
    serde = AvroSerde(RegistryClient(server.url))
    data = serde.encode("p-key", "string", "110101199003074514")
    assert serde.decode(data) == (1, "110101199003074514")
