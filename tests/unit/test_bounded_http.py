"""Limits of the HTTP ports (issue 15, point 5): loopback sockets, no Kafka.

hub.core.bounded_http serves the HTTP push source, the admin port and the registry; here on its own and
as the admin port: slow clients, too many at once, malformed framing, a write on the read-only port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.config import load_config
from hub.core.bounded_http import BoundedHTTPServer, BoundedRequestHandler, HttpLimits, RequestRefused
from hub.monitor.admin import AdminOptions, AdminServer
from tests.unit.test_monitor_pieces import StubWorker

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
LIMITS = HttpLimits(max_concurrent=3, max_body_bytes=1000, request_timeout_s=1.0, shutdown_grace_s=2.0)


class Echo(BoundedRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        try:
            body = self.read_body(self.content_length())
        except RequestRefused as problem:
            self.refuse(problem)
            return
        with self.server.processing(self.connection):
            self.send_json(200, {"length": len(body)})


@pytest.fixture
def server() -> Iterator[BoundedHTTPServer]:
    httpd = BoundedHTTPServer(("127.0.0.1", 0), Echo, LIMITS)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield httpd
    if not httpd.stopping.is_set():
        httpd.stop()


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def _post(length: str | None, body: bytes = b"") -> bytes:
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n".encode()
    return head + b"\r\n" + body


@pytest.mark.parametrize(
    ("length", "status", "error"),
    [
        ("-1", 400, b"bad_content_length"),
        ("12abc", 400, b"bad_content_length"),
        ("+5", 400, b"bad_content_length"),
        ("\u0661\u0662", 400, b"bad_content_length"),  # Arabic-Indic digits: str.isdigit() says yes
        (None, 411, b"length_required"),
        ("1001", 413, b"too_large"),
        ("99999999999999999999999", 400, b"bad_content_length"),
    ],
)
def test_framing_errors_are_4xx_with_a_reason(
    server: BoundedHTTPServer, length: str | None, status: int, error: bytes
) -> None:
    answer = _exchange(server.server_address[1], _post(length))
    assert _status(answer) == status
    assert error in answer


def test_a_body_that_does_not_arrive_in_time_is_408(server: BoundedHTTPServer) -> None:
    answer = _exchange(server.server_address[1], _post("100", b"x" * 10))
    assert _status(answer) == 408
    assert b"within 1 s" in answer


def test_a_good_request_is_answered(server: BoundedHTTPServer) -> None:
    answer = _exchange(server.server_address[1], _post("5", b"hello"))
    assert _status(answer) == 200
    assert answer.endswith(b'{"length": 5}')


def test_slow_clients_beyond_the_cap_get_429_and_stop_does_not_wait(server: BoundedHTTPServer) -> None:
    port = server.server_address[1]
    before = threading.active_count()
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        for sock in slow:
            sock.sendall(_post("1000"))  # announces a body, sends none
        time.sleep(0.3)
        assert threading.active_count() - before <= LIMITS.max_concurrent
        refused = _exchange(port, _post("5", b"hello"))
        assert _status(refused) == 429
        assert b"more than 3 requests at once" in refused
        assert b"Retry-After: 1" in refused
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(LIMITS.shutdown_grace_s + 5)
        assert not stopper.is_alive(), "stop waited for the slow clients"
    finally:
        for sock in slow:
            sock.close()


def test_the_admin_port_is_read_only_and_bounded() -> None:
    admin = AdminServer(
        load_config(DEMO),
        "pudong",
        StubWorker(),  # type: ignore[arg-type]
        registry_url=None,
        options=AdminOptions(interval=3600),
    )
    admin.start()
    port = admin.port
    try:
        ok = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status(ok) == 200
        for method in (b"POST", b"PUT", b"DELETE"):
            write = _exchange(port, method + b" /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert _status(write) == 501, method
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the headers never end
        time.sleep(0.3)
        busy = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status(busy) == 429
        stopper = threading.Thread(target=admin.stop)
        stopper.start()
        stopper.join(30)
        assert not stopper.is_alive()
        for sock in slow:
            sock.close()
    finally:
        if admin._httpd is not None:
            admin.stop()
