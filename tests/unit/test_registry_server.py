"""The registry REST API (Confluent's endpoints, bodies and error codes) and the client speaking it.

The store here is the in-memory one, which applies the same rules as the Kafka-backed store; the Kafka store
itself is tested against a real broker in tests/integration/test_registry_store.py.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    InvalidVersion,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from hub.core.registry.schema import canonical_text
from hub.registry.server import CONTENT_TYPE, RegistryApi, RegistryServer
from hub.registry.store import MemorySchemaStore

PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.xhub",
    "fields": [{"name": "name", "type": "string"}],
}
PERSON_V2 = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string", "default": ""}]}
PERSON_BAD = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string"}]}


def body(schema: Any, **extra: Any) -> bytes:
    return json.dumps({"schema": json.dumps(schema), **extra}).encode()


def req(api: RegistryApi, method: str, path: str, data: bytes | None) -> tuple[int, Any]:
    """``api.handle`` with the body typed loosely, for terse assertions."""
    return api.handle(method, path, data)


@pytest.fixture
def api() -> RegistryApi:
    return RegistryApi(MemorySchemaStore())


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    srv = RegistryServer(MemorySchemaStore())
    srv.start()
    yield srv
    srv.stop()


# --- the API without HTTP ------------------------------------------------------------------------


def test_register_then_read_every_way(api: RegistryApi) -> None:
    assert req(api, "POST", "/subjects/p-value/versions", body(PERSON)) == (200, {"id": 1})
    assert req(api, "POST", "/subjects/p-value/versions?normalize=false", body(PERSON)) == (200, {"id": 1})
    assert req(api, "POST", "/subjects/p-value/versions", body(PERSON_V2)) == (200, {"id": 2})
    assert req(api, "POST", "/subjects/other-value/versions", body(PERSON)) == (200, {"id": 1})

    assert req(api, "GET", "/schemas/ids/2", None) == (200, {"schema": canonical_text(PERSON_V2)})
    assert req(api, "GET", "/schemas/ids/2/schema", None) == (200, json.loads(canonical_text(PERSON_V2)))
    assert req(api, "GET", "/schemas/ids/1/subjects", None) == (200, ["other-value", "p-value"])
    assert req(api, "GET", "/schemas/ids/1/versions", None) == (
        200,
        [{"subject": "other-value", "version": 1}, {"subject": "p-value", "version": 1}],
    )
    assert req(api, "GET", "/schemas/types", None) == (200, ["AVRO"])
    assert req(api, "GET", "/subjects", None) == (200, ["other-value", "p-value"])
    assert req(api, "GET", "/subjects/p-value/versions", None) == (200, [1, 2])
    latest = {"subject": "p-value", "version": 2, "id": 2, "schema": canonical_text(PERSON_V2)}
    assert req(api, "GET", "/subjects/p-value/versions/latest", None) == (200, latest)
    assert req(api, "GET", "/subjects/p-value/versions/-1", None) == (200, latest)
    assert req(api, "GET", "/subjects/p-value/versions/1", None)[1]["id"] == 1
    assert req(api, "GET", "/subjects/p-value/versions/1/schema", None) == (200, PERSON)
    assert req(api, "POST", "/subjects/p-value", body(PERSON_V2)) == (200, latest)
    assert req(api, "GET", "/", None) == (200, {})
    assert req(api, "GET", "/mode", None) == (200, {"mode": "READWRITE"})


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/schemas/ids/99", 404, 40403),
        ("GET", "/schemas/ids/abc", 404, 40403),
        ("GET", "/subjects/nope/versions", 404, 40401),
        ("GET", "/subjects/nope/versions/latest", 404, 40401),
        ("GET", "/subjects/p-value/versions/7", 404, 40402),
        ("GET", "/subjects/p-value/versions/0", 422, 42202),
        ("GET", "/subjects/p-value/versions/first", 422, 42202),
        ("GET", "/config/p-value", 404, 40408),
        ("GET", "/nowhere", 404, 404),
        ("DELETE", "/subjects", 405, 405),
        ("PUT", "/schemas/ids/1", 405, 405),
    ],
)
def test_errors_have_confluent_codes(
    api: RegistryApi, method: str, path: str, status: int, code: int
) -> None:
    req(api, "POST", "/subjects/p-value/versions", body(PERSON))
    got_status, got = req(api, method, path, None)
    assert (got_status, got["error_code"]) == (status, code)
    assert got["message"]


def test_lookup_errors(api: RegistryApi) -> None:
    assert req(api, "POST", "/subjects/p-value", body(PERSON))[1]["error_code"] == 40401
    req(api, "POST", "/subjects/p-value/versions", body(PERSON))
    assert req(api, "POST", "/subjects/p-value", body(PERSON_V2))[1]["error_code"] == 40403


@pytest.mark.parametrize(
    "request_body",
    [
        json.dumps({"schema": "{not json"}).encode(),
        json.dumps(
            {"schema": json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]})}
        ).encode(),
        json.dumps({"schema": ""}).encode(),
        json.dumps({"nothing": 1}).encode(),
        json.dumps({"schema": '{"type":"object"}', "schemaType": "JSON"}).encode(),
        json.dumps(
            {"schema": '"string"', "references": [{"name": "x", "subject": "y", "version": 1}]}
        ).encode(),
    ],
)
def test_invalid_schemas_are_42201(api: RegistryApi, request_body: bytes) -> None:
    status, got = req(api, "POST", "/subjects/p-value/versions", request_body)
    assert (status, got["error_code"]) == (422, 42201)


def test_bad_json_body_is_400(api: RegistryApi) -> None:
    assert req(api, "POST", "/subjects/p-value/versions", b"{")[0] == 400
    assert req(api, "POST", "/subjects/p-value/versions", None)[0] == 400


def test_incompatible_is_409_naming_the_field(api: RegistryApi) -> None:
    req(api, "POST", "/subjects/p-value/versions", body(PERSON))
    status, got = req(api, "POST", "/subjects/p-value/versions", body(PERSON_BAD))
    assert status == 409
    assert got["error_code"] == 409
    assert 'field "phone" of record gov.xhub.Person: added without a default' in got["message"]
    assert got["messages"] == [
        'field "phone" of record gov.xhub.Person: added without a default (a BACKWARD reader '
        "cannot read old data)"
    ]
    assert req(api, "GET", "/subjects/p-value/versions", None) == (200, [1])


def test_compatibility_endpoint(api: RegistryApi) -> None:
    path = "/compatibility/subjects/p-value/versions/latest"
    assert req(api, "POST", path, body(PERSON_BAD)) == (
        200,
        {"is_compatible": True, "messages": []},
    )  # no subject
    req(api, "POST", "/subjects/p-value/versions", body(PERSON))
    assert req(api, "POST", path + "?verbose=true", body(PERSON_V2)) == (
        200,
        {"is_compatible": True, "messages": []},
    )
    status, got = req(api, "POST", path, body(PERSON_BAD))
    assert status == 200
    assert got["is_compatible"] is False
    assert 'field "phone"' in got["messages"][0]
    assert (
        req(api, "POST", "/compatibility/subjects/p-value/versions/1", body(PERSON_BAD))[1]["is_compatible"]
        is False
    )
    assert (
        req(api, "POST", "/compatibility/subjects/p-value/versions", body(PERSON_BAD))[1]["is_compatible"]
        is False
    )
    assert (
        req(api, "POST", "/compatibility/subjects/p-value/versions/5", body(PERSON))[1]["error_code"] == 40402
    )
    assert req(api, "POST", "/compatibility/subjects/nope/versions/1", body(PERSON))[1]["error_code"] == 40401


def test_config_global_and_per_subject(api: RegistryApi) -> None:
    assert req(api, "GET", "/config", None) == (200, {"compatibilityLevel": "BACKWARD"})
    assert req(api, "PUT", "/config", b'{"compatibility": "full"}') == (200, {"compatibility": "FULL"})
    assert req(api, "GET", "/config", None) == (200, {"compatibilityLevel": "FULL"})
    assert req(api, "GET", "/config/p-value?defaultToGlobal=true", None) == (
        200,
        {"compatibilityLevel": "FULL"},
    )
    assert req(api, "PUT", "/config/p-value", b'{"compatibility": "NONE"}') == (
        200,
        {"compatibility": "NONE"},
    )
    assert req(api, "GET", "/config/p-value", None) == (200, {"compatibilityLevel": "NONE"})
    assert req(api, "PUT", "/config/p-value", b'{"compatibility": "SIDEWAYS"}')[1]["error_code"] == 42203
    assert req(api, "PUT", "/config", b"{}")[1]["error_code"] == 42203

    # the override lets an incompatible change through for that subject only
    req(api, "POST", "/subjects/p-value/versions", body(PERSON))
    req(api, "POST", "/subjects/q-value/versions", body(PERSON))
    assert req(api, "POST", "/subjects/p-value/versions", body(PERSON_BAD))[0] == 200
    assert req(api, "POST", "/subjects/q-value/versions", body(PERSON_BAD))[0] == 409

    assert req(api, "DELETE", "/config/p-value", None) == (200, {"compatibilityLevel": "NONE"})
    assert req(api, "GET", "/config/p-value", None)[0] == 404


def test_subjects_with_special_characters_are_url_decoded(api: RegistryApi) -> None:
    assert req(api, "POST", "/subjects/a%2Fb%20c%E9%83%A8/versions", body("string")) == (200, {"id": 1})
    assert req(api, "GET", "/subjects", None) == (200, ["a/b c部"])


def test_owns_the_registry_paths_only() -> None:
    for path in (
        "/subjects",
        "/subjects/x/versions",
        "/schemas/ids/1",
        "/config",
        "/config/x?y=1",
        "/compatibility/subjects/x/versions/1",
        "/mode",
    ):
        assert RegistryApi.owns(path), path
    for path in ("/", "/status", "/metrics", "/subjectsx", "/configure"):
        assert not RegistryApi.owns(path), path


# --- over HTTP, with the client ------------------------------------------------------------------


def test_http_content_type_and_body(server: RegistryServer) -> None:
    request = urllib.request.Request(
        server.url + "/subjects/p-value/versions",
        data=body(PERSON),
        method="POST",
        headers={"Content-Type": CONTENT_TYPE},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        assert json.loads(response.read()) == {"id": 1}


def test_client_round_trip(server: RegistryServer) -> None:
    client = RegistryClient(server.url)
    assert client.register("p-value", PERSON) == 1
    assert client.register("p-value", json.dumps(PERSON)) == 1
    assert client.register("p-value", PERSON_V2) == 2
    assert client.get_schema(1) == PERSON
    assert client.get_schema_text(2) == canonical_text(PERSON_V2)
    assert client.get_latest("p-value") == (2, 2, PERSON_V2)
    assert client.get_version("p-value", 1) == (1, 1, PERSON)
    assert client.versions("p-value") == [1, 2]
    assert client.lookup("p-value", PERSON) == 1
    assert client.lookup("p-value", "string") is None
    assert client.lookup("nope", PERSON) is None
    assert client.subjects() == ["p-value"]
    assert client.test_compatibility("p-value", PERSON_V2) == []
    problems = client.test_compatibility("p-value", PERSON_BAD, version=1)
    assert problems == [
        'field "phone" of record gov.xhub.Person: added without a default (a BACKWARD reader '
        "cannot read old data)"
    ]
    assert client.get_config() == "BACKWARD"
    assert client.set_config("forward", "p-value") == "FORWARD"
    assert client.get_config("p-value") == "FORWARD"
    assert client.get_config("other") == "BACKWARD"
    assert client.set_config("FULL") == "FULL"
    assert client.get_config() == "FULL"


def test_client_raises_the_registry_errors(server: RegistryServer) -> None:
    client = RegistryClient(server.url + "/")
    client.register("p-value", PERSON)
    with pytest.raises(IncompatibleSchema) as caught:
        client.register("p-value", PERSON_BAD)
    assert caught.value.messages == [
        'field "phone" of record gov.xhub.Person: added without a default (a BACKWARD reader '
        "cannot read old data)"
    ]
    assert server.url in str(caught.value)
    with pytest.raises(SchemaNotFound, match="40403"):
        client.get_schema(42)
    with pytest.raises(SubjectNotFound):
        client.get_latest("nope")
    with pytest.raises(VersionNotFound):
        client.get_version("p-value", 3)
    with pytest.raises(InvalidVersion):
        client.get_version("p-value", "first")
    with pytest.raises(InvalidSchema):
        client.register("p-value", {"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]})
    with pytest.raises(InvalidCompatibilityLevel):
        client.set_config("SIDEWAYS")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_client_names_the_url_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    client = RegistryClient(url, timeout=2)
    with pytest.raises(RegistryUnavailable, match=url):
        client.get_schema(1)
    with pytest.raises(RegistryUnavailable, match=url):
        client.register("p-value", PERSON)


def test_client_refuses_a_non_http_url() -> None:
    with pytest.raises(Exception, match="http"):
        RegistryClient("file:///etc/passwd")


def test_server_start_stop_are_idempotent() -> None:
    srv = RegistryServer(MemorySchemaStore())
    srv.start()
    srv.start()
    assert srv.port > 0
    assert srv.handle("GET", "/subjects", None) == (200, [])
    srv.stop()
    srv.stop()


class _BrokenStore(MemorySchemaStore):
    def subjects(self) -> list[str]:
        raise ZeroDivisionError


def test_an_unexpected_failure_still_gets_a_confluent_error_body() -> None:
    status, got = RegistryApi(_BrokenStore()).handle("GET", "/subjects", None)
    assert status == 500
    assert got == {"error_code": 50001, "message": "internal error: ZeroDivisionError"}
