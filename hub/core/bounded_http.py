"""An HTTP server with limits, for every port the hub and the sidecars open (push source, registry, admin).

The standard library's ``ThreadingHTTPServer`` starts a thread per connection, waits forever for a body
a client announced and never sends, and on close joins every one of those threads. Here:

- at most ``max_concurrent`` requests are served at once; one more is answered ``429`` at once by the
  accepting thread, without a thread of its own;
- a request must arrive whole within ``request_timeout_s`` (headers, then the body, read against one
  deadline): else ``408``;
- a body is read only after its ``Content-Length`` is checked: missing ``411``, not a non-negative
  decimal ``400``, over ``max_body_bytes`` ``413`` (the body is not read);
- :meth:`BoundedHTTPServer.stop` closes connections still being read at once and gives requests being
  processed ``shutdown_grace_s`` to finish: it returns within seconds whatever the clients do;
- with an ``ssl.SSLContext`` the socket speaks TLS (the handshake runs in the request's thread, under the
  same deadline); a context that requires client certificates makes it mutual TLS.

Every refusal is a JSON answer ``{"error": ..., "detail": ...}`` naming the limit; nothing of the request
is logged (its path or body may carry personal data).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HttpLimits:
    """What one server accepts; defaults suit an admin or registry port."""

    max_concurrent: int = 16
    max_body_bytes: int = 1024 * 1024
    request_timeout_s: float = 10.0
    shutdown_grace_s: float = 5.0


class RequestRefused(Exception):  # noqa: N818 - an answer to send, not a crash
    """A request answered with a 4xx before the application sees it."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def problem_answer(status: int, error: str, detail: str, *, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer (JSON body, connection closed), for refusals sent on a bare socket."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    reason = {408: "Request Timeout", 429: "Too Many Requests"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


class BoundedHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with the limits of :class:`HttpLimits` (see the module docstring)."""

    daemon_threads = True
    block_on_close = False  # stop() joins with a deadline instead
    request_queue_size = 128  # a burst is accepted (and answered 429) rather than left in the backlog

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BoundedRequestHandler],
        limits: HttpLimits,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits
        self.tls = tls
        self._slots = threading.BoundedSemaphore(limits.max_concurrent)
        self._lock = threading.Lock()
        self._reading: set[socket.socket] = set()  # connections waiting for the client: closed on stop
        self._workers: set[threading.Thread] = set()
        self.stopping = threading.Event()
        self._serving = threading.Event()
        super().__init__(address, handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving.set()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving.clear()

    # -- accepting ---------------------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set() or not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), name="http-request", daemon=True
        )
        with self._lock:
            self._workers.add(thread)
            self._reading.add(request)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is not None:
                request.settimeout(self.limits.request_timeout_s)
                request = self.tls.wrap_socket(request, server_side=True)
                with self._lock:
                    self._reading.add(request)
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001, S110 - a broken client (TLS, reset): its connection is closed below
            pass
        finally:
            with self._lock:
                self._reading.discard(request)
                self._workers.discard(threading.current_thread())
            self.shutdown_request(request)
            self._slots.release()

    def _refuse_busy(self, request: socket.socket) -> None:
        detail = (
            "the server is stopping"
            if self.stopping.is_set()
            else f"more than {self.limits.max_concurrent} requests at once; retry later"
        )
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            if self.tls is None:  # over TLS a plain-text answer would be noise: just close
                request.sendall(problem_answer(429, "too_many_requests", detail, retry_after=1))
        self.shutdown_request(request)

    # -- the handlers tell which connections wait on the client ------------------------------------
    @contextlib.contextmanager
    def processing(self, connection: socket.socket) -> Iterator[None]:
        """While the application works on a request, stop() lets it finish (within the grace)."""
        with self._lock:
            self._reading.discard(connection)
        try:
            yield
        finally:
            with self._lock:
                if not self.stopping.is_set():
                    self._reading.add(connection)

    def stop(self) -> None:
        """Stop accepting, drop connections waiting on their clients, let requests in hand finish."""
        self.stopping.set()
        # shutdown() waits for the serving loop to say it has ended: with no loop running it waits forever
        # (a test was once seen stuck here). A loop that starts later ends on the closed socket.
        if self._serving.is_set():
            self.shutdown()
        self.server_close()
        with self._lock:
            reading, workers = list(self._reading), list(self._workers)
        for conn in reading:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + self.limits.shutdown_grace_s
        for thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))


class BoundedRequestHandler(BaseHTTPRequestHandler):
    """A handler that reads requests within the server's limits; subclasses call :meth:`read_body`."""

    server: BoundedHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.deadline = time.monotonic() + self.server.limits.request_timeout_s
        super().setup()
        self.connection.settimeout(self.server.limits.request_timeout_s)  # each wait for the client

    def handle_one_request(self) -> None:
        # Each request of a kept-alive connection gets its own deadline; headers that do not come in
        # time close the connection (http.server catches the socket timeout itself).
        self.deadline = time.monotonic() + self.server.limits.request_timeout_s
        super().handle_one_request()
        if self.server.stopping.is_set():
            self.close_connection = True

    def _timeout_detail(self) -> str:
        return f"the request did not arrive within {self.server.limits.request_timeout_s:g} s"

    def content_length(self) -> int:
        """The checked ``Content-Length`` of this request.

        Raises:
            RequestRefused: missing (411), not a non-negative decimal number (400), too large (413).
        """
        text = self.headers.get("Content-Length")
        if text is None:
            raise RequestRefused(411, "length_required", "send Content-Length")
        text = text.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise RequestRefused(400, "bad_content_length", "Content-Length must be a non-negative integer")
        length = int(text)
        if length > self.server.limits.max_body_bytes:
            raise RequestRefused(
                413,
                "too_large",
                f"a body of {length} bytes is over the limit of {self.server.limits.max_body_bytes}",
            )
        return length

    def read_body(self, length: int) -> bytes:
        """``length`` bytes of body, read before the request's deadline.

        Raises:
            RequestRefused: the body did not arrive in time (408), or the client went away (400).
        """
        chunks: list[bytes] = []
        left = length
        while left > 0:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise RequestRefused(408, "request_timeout", self._timeout_detail())
            self.connection.settimeout(remaining)
            try:
                chunk = self.rfile.read1(min(left, _CHUNK)) if hasattr(self.rfile, "read1") else b""
            except TimeoutError as exc:
                raise RequestRefused(408, "request_timeout", self._timeout_detail()) from exc
            except OSError as exc:
                raise RequestRefused(400, "incomplete", "the connection closed before the body") from exc
            if not chunk:
                raise RequestRefused(
                    400, "incomplete", f"the body ended {left} bytes short of Content-Length"
                )
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def send_json(
        self, status: int, answer: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, problem: RequestRefused) -> None:
        """Answer a refusal and close the connection (its body, if any, was not read)."""
        self.close_connection = True
        self.send_json(problem.status, {"error": problem.error, "detail": problem.detail})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib signature
        """Silenced: request lines may carry personal data; the servers log their own events."""
