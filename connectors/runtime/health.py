"""The sidecar's local HTTP port: health, Prometheus metrics, and snapshots on request.

GET  /healthz               200 {"status": "ok", ...} while every source and sink runs, else 503; each
                            SQL source carries its ``backlog`` (rows not yet published, oldest commit)
GET  /metrics               Prometheus text format (the sidecar's own registry)
POST /snapshot[?source=N]   start a fresh snapshot (op=r of every row) of one or every source: 202
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from connectors.errors import SourceUnavailable
from connectors.runtime.metrics import SidecarMetrics

StatusFn = Callable[[], dict[str, Any]]
SnapshotFn = Callable[[str | None], list[str]]


class HealthServer:
    """Serves /healthz, /metrics and /snapshot on ``host:port`` (port 0: a free one) in a daemon thread.

    Args:
        status: returns {"healthy": bool, ...} for /healthz.
        snapshot: starts snapshots; given a source name or None (all); returns the names started;
            raises KeyError for an unknown source.
    """

    def __init__(
        self, host: str, port: int, *, metrics: SidecarMetrics, status: StatusFn, snapshot: SnapshotFn
    ) -> None:
        self.host = host
        self.requested_port = port
        self.metrics = metrics
        self.status = status
        self.snapshot = snapshot
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("health server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        owner = self

        class Handler(_HealthRequestHandler):
            server_owner = owner

        try:
            self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        except OSError as exc:
            raise SourceUnavailable(
                f"health port {self.host}:{self.requested_port} is not free: {exc}"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class _HealthRequestHandler(BaseHTTPRequestHandler):
    server_owner: HealthServer
    server_version = "xhub-sidecar"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        owner = self.server_owner
        if path == "/healthz":
            status = owner.status()
            self._send(200 if status.get("healthy") else 503, _json(status), "application/json")
        elif path == "/metrics":
            self._send(200, owner.metrics.render(), CONTENT_TYPE_LATEST)
        else:
            self._send(
                404,
                _json({"error": "not_found", "detail": "GET /healthz, GET /metrics, POST /snapshot"}),
                "application/json",
            )

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            self.rfile.read(min(int(length), 65536))
        if parts.path != "/snapshot":
            self._send(
                404,
                _json({"error": "not_found", "detail": "POST /snapshot[?source=NAME]"}),
                "application/json",
            )
            return
        names = parse_qs(parts.query).get("source")
        name = names[0] if names else None
        try:
            started = self.server_owner.snapshot(name)
        except KeyError:
            self._send(404, _json({"error": "unknown_source", "source": name}), "application/json")
            return
        self._send(202, _json({"snapshot_started": started}), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib signature
        """Silenced: scrapes every few seconds would drown the sidecar's own events."""


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
