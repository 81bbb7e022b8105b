"""HTTP push: a local endpoint where a department system POSTs JSON records, answered synchronously.

    POST /records/{resource}[?op=c|u|d|r]      Content-Type: application/json
    body: one JSON object, or a JSON array of objects (op d: objects holding at least the key)

Every record is validated against the resource schema; the valid ones are published, and the invalid
ones dead-lettered with their original bytes, in one Kafka transaction BEFORE the answer:

    202 {"accepted": n}                                   all published
    422 {"accepted": n, "rejected": [{index, reason, field, detail}]}   some or all invalid
    400 body not UTF-8 or not JSON        413 body or record too large       415 not application/json
    404 resource not served here          503 Kafka unavailable (Retry-After; nothing was published)

A client that gets no answer may retry: the records are keyed, topics compacted, sinks ignore an older
seq, so a repeat is harmless. The default op is u (upsert). The position is a counter: seq of the last
record published, so seq stays monotonic across restarts. The server listens on 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field

from connectors.errors import SourceUnavailable
from connectors.sources.base import Batch, Captured, PublishResult, Rejection, Source, SourceConfigBase
from hub.core.envelope import now_ms
from hub.core.errors import FatalError, InvalidRecord, RetriableError
from hub.core.log import get_logger

_OPS = frozenset("cudr")
TRUNCATED_ORIGINAL_BYTES = 64 * 1024
"""How much of a request refused for its size is kept as the dead letter's original bytes."""


class HttpPushSourceConfig(SourceConfigBase):
    """A local HTTP endpoint taking JSON records."""

    type: Literal["http_push"] = "http_push"
    resources: list[str] = Field(min_length=1, description="catalog codes accepted at /records/{code}")
    host: str = Field(default="127.0.0.1", description="listen address; keep it local")
    port: int = Field(default=8791, ge=0, le=65535, description="0 picks a free port (tests)")
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    def resource_codes(self) -> list[str]:
        return list(self.resources)


class HttpPushSource(Source):
    """Serves POST /records/{resource}; publishes synchronously through the runtime."""

    kind = "http_push"
    config: HttpPushSourceConfig

    def __init__(self, config: HttpPushSourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._publish_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.ready = threading.Event()
        self.port: int | None = None
        self.log = get_logger("source", source=config.name, kind=self.kind)

    def run(self) -> None:
        source = self

        class Handler(_PushRequestHandler):
            owner = source

        with self._publish_lock:
            self.context.committed_position()  # Kafka reachable and our zombie fenced before we accept
        try:
            server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        except OSError as exc:
            raise SourceUnavailable(
                f'source "{self.name}": cannot listen on {self.config.host}:{self.config.port}: {exc}',
                retry_after=5.0,
            ) from exc
        # Finish requests in hand on stop: their records are being published.
        server.daemon_threads = False
        server.block_on_close = True
        self._server = server
        self.port = int(server.server_address[1])
        self.ready.set()
        self.log.info("http_push_listening", host=self.config.host, port=self.port)
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        serving.start()
        try:
            self._stopping.wait()
        finally:
            server.shutdown()
            server.server_close()
            self.ready.clear()
            self._server = None

    # --- request handling (called from the handler threads) -------------------------------------

    def handle(self, resource: str, op: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Validate and publish one request's records; return the HTTP status and JSON answer."""
        received = now_ms()
        origin = f"POST /records/{resource}"
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime != "application/json":
            problem = InvalidRecord(
                "unsupported_media_type",
                f'{origin}: Content-Type is "{mime[:64]}", expected application/json',
                original=body,
            )
            return self._publish_refused(
                resource, origin, received, problem, HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            )
        items = self._split(body)
        changes = [
            self._captured(resource, op, item, received, f"{origin}#{i}") for i, item in enumerate(items)
        ]
        return self._publish(changes)

    def refuse_oversize(self, resource: str, length: int, head: bytes) -> tuple[int, dict[str, Any]]:
        """A request larger than ``max_request_bytes``: dead-letter its beginning, answer 413."""
        origin = f"POST /records/{resource}"
        problem = InvalidRecord(
            "oversize",
            f"{origin}: request of {length} bytes is more than the limit of {self.config.max_request_bytes} "
            f"(original truncated to its first {len(head)} bytes)",
            original=head,
        )
        return self._publish_refused(resource, origin, now_ms(), problem, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)

    def _publish_refused(
        self, resource: str, origin: str, received: int, problem: InvalidRecord, status: HTTPStatus
    ) -> tuple[int, dict[str, Any]]:
        captured = Captured(resource, "u", 0, received, origin, rejected=problem)
        code, answer = self._publish([captured])
        return (int(status), answer) if code == HTTPStatus.UNPROCESSABLE_ENTITY else (code, answer)

    @staticmethod
    def _split(body: bytes) -> list[bytes]:
        """One raw body, or the elements of a JSON array re-serialized one by one (their own originals)."""
        if body.lstrip()[:1] != b"[":
            return [body]
        try:
            decoded = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return [body]  # the validator says what is wrong with it, with the original bytes
        if not isinstance(decoded, list):
            return [body]
        return [json.dumps(item, ensure_ascii=False).encode("utf-8", "surrogatepass") for item in decoded]

    def _captured(self, resource: str, op: str, raw: bytes, received: int, origin: str) -> Captured:
        if op != "d":
            return Captured(resource, op, 0, received, origin, raw)  # type: ignore[arg-type]
        key_field = self.specs[resource].key_field
        try:
            decoded = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            decoded = None
        key = decoded.get(key_field) if isinstance(decoded, dict) else None
        if key is None or key == "" or isinstance(key, dict | list | bool):
            problem = InvalidRecord(
                "missing_key",
                f'{origin}: a delete needs the business key "{key_field}"',
                field=key_field,
                original=raw,
            )
            return Captured(resource, "d", 0, received, origin, rejected=problem)
        return Captured(resource, "d", 0, received, origin, key=str(key))

    def _publish(self, changes: list[Captured]) -> tuple[int, dict[str, Any]]:
        with self._publish_lock:
            try:
                context = self.context
                last = context.committed_position()
                seq = int(last or 0)
                for change in changes:
                    seq += 1
                    change.seq = seq
                result = context.publish(Batch(changes, seq))
            except RetriableError as exc:
                self.log.warning("http_push_unavailable", error=type(exc).__name__)
                return int(HTTPStatus.SERVICE_UNAVAILABLE), {
                    "error": "unavailable",
                    "detail": "Kafka is unavailable; nothing was published, retry later",
                    "retry_after": max(1, int(exc.retry_after)),
                }
            except FatalError:
                self.log.exception("http_push_failed")
                return int(HTTPStatus.SERVICE_UNAVAILABLE), {
                    "error": "stopped",
                    "detail": "this sidecar stopped",
                }
        return _answer(result)


def _answer(result: PublishResult) -> tuple[int, dict[str, Any]]:
    if not result.rejected:
        return int(HTTPStatus.ACCEPTED), {"accepted": result.published}
    reasons = {r.reason for r in result.rejected}
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    if result.published == 0 and reasons == {"oversize"}:
        status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    elif result.published == 0 and reasons <= {"invalid_utf8", "not_json"}:
        status = HTTPStatus.BAD_REQUEST
    return int(status), {"accepted": result.published, "rejected": [_rejection(r) for r in result.rejected]}


def _rejection(r: Rejection) -> dict[str, Any]:
    return {"index": r.index, "reason": r.reason, "field": r.field, "detail": r.detail}


class _PushRequestHandler(BaseHTTPRequestHandler):
    owner: HttpPushSource
    protocol_version = "HTTP/1.1"
    server_version = "xhub-http-push"

    def do_POST(self) -> None:
        source = self.owner
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) != 2 or segments[0] != "records":
            self._reply(404, {"error": "not_found", "detail": "POST /records/{resource}"}, drain=True)
            return
        resource = segments[1]
        if resource not in source.specs:
            served = ", ".join(source.specs)
            self._reply(
                404, {"error": "unknown_resource", "detail": f"resources served here: {served}"}, drain=True
            )
            return
        op = (parse_qs(parts.query).get("op") or ["u"])[0]
        if op not in _OPS:
            self._reply(
                400, {"error": "bad_op", "field": "op", "detail": "op must be one of c, u, d, r"}, drain=True
            )
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._reply(411, {"error": "length_required", "detail": "send Content-Length"})
            self.close_connection = True
            return
        length = int(length_text)
        if length > source.config.max_request_bytes:
            head = self.rfile.read(min(length, TRUNCATED_ORIGINAL_BYTES))
            status, answer = source.refuse_oversize(resource, length, head)
            self._reply(status, answer)
            self.close_connection = True  # the rest of the body is not read
            return
        body = self.rfile.read(length)
        status, answer = source.handle(resource, op, self.headers.get("Content-Type", ""), body)
        self._reply(status, answer)

    def _reply(self, status: int, answer: dict[str, Any], *, drain: bool = False) -> None:
        if drain:
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= self.owner.config.max_request_bytes:
                self.rfile.read(int(length))
            else:
                self.close_connection = True
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", str(answer.get("retry_after", 5)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib signature
        """Silenced: request lines may carry personal data in query strings; we log our own events."""
