"""The registry's HTTP framing (issue 15, point 4): bad requests get a 4xx answer, never a hang or a trace.

Before: the server read ``int(Content-Length)`` as given: a negative length blocked the request thread
until the client went away, a non-numeric one raised out of the handler (the client got no answer).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import pytest

from hub.core.bounded_http import HttpLimits
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore

PERSON = {"type": "record", "name": "Person", "fields": [{"name": "name", "type": "string"}]}
LIMITS = HttpLimits(max_concurrent=4, max_body_bytes=64 * 1024, request_timeout_s=1.0, shutdown_grace_s=2.0)


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    srv = RegistryServer(MemorySchemaStore(), limits=LIMITS)
    srv.start()
    yield srv
    srv.stop()


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def _request(method: str, length: str | None, body: bytes = b"") -> bytes:
    head = f"{method} /subjects/s-value/versions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += "Content-Type: application/vnd.schemaregistry.v1+json\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return head.encode() + b"\r\n" + body


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def _body(answer: bytes) -> dict[str, object]:
    value: dict[str, object] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return value


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", 400), ("abc", 400), ("1.5", 400), ("0x10", 400), (None, 411), (str(10**7), 413)],
)
def test_a_post_with_bad_framing_is_a_4xx_with_a_reason(
    server: RegistryServer, length: str | None, status: int
) -> None:
    answer = _exchange(server.port, _request("POST", length))
    assert _status(answer) == status, answer[:300]
    assert _body(answer)["message"]


def test_a_body_shorter_than_announced_is_408_not_a_hang(server: RegistryServer) -> None:
    answer = _exchange(server.port, _request("POST", "500", b'{"schema": '))
    assert _status(answer) == 408


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe not utf-8", b"[1, 2]", b'{"schema": 5}', b"{" * 100_00, b'"just a string"'],
)
def test_bodies_that_are_not_a_schema_request_are_4xx(server: RegistryServer, payload: bytes) -> None:
    answer = _exchange(server.port, _request("POST", str(len(payload)), payload))
    assert 400 <= _status(answer) < 500, answer[:300]


def test_a_good_request_still_registers(server: RegistryServer) -> None:
    payload = json.dumps({"schema": json.dumps(PERSON)}).encode()
    answer = _exchange(server.port, _request("POST", str(len(payload)), payload))
    assert _status(answer) == 200
    assert _body(answer) == {"id": 1}
    listing = _exchange(server.port, b"GET /subjects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _body(listing) == ["s-value"]  # type: ignore[comparison-overlap]
