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

Who may push: a client presents the source's token (``Authorization: Bearer <token>``; the token is a
secret named by ``token_secret``, read from ``XHUB_<NAME>`` or the secrets directory) or a client
certificate signed by ``tls.client_ca_file`` (mutual TLS), else 401. A listen address beyond loopback
needs ``tls``. Limits (hub.core.bounded_http): ``max_concurrent_requests`` at once (one more: 429),
a request must arrive within ``request_timeout_s`` (408), a framing error is 400/411; stop() returns
within seconds whatever slow clients do.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import ssl
import threading
from http import HTTPStatus
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors.errors import SourceUnavailable
from connectors.sources.base import Batch, Captured, PublishResult, Rejection, Source, SourceConfigBase
from hub.config.credentials import named_secret
from hub.core.bounded_http import (
    BoundedHTTPServer,
    BoundedRequestHandler,
    HttpLimits,
    RequestRefused,
    is_loopback,
)
from hub.core.envelope import now_ms
from hub.core.errors import FatalError, InvalidRecord, RetriableError
from hub.core.log import get_logger

_OPS = frozenset("cudr")
TRUNCATED_ORIGINAL_BYTES = 64 * 1024
"""How much of a request refused for its size is kept as the dead letter's original bytes."""


class TlsFiles(BaseModel):
    """The server's certificate and key (PEM files); ``client_ca_file`` makes it mutual TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str
    key_file: str
    client_ca_file: str | None = Field(
        default=None, description="CA of the client certificates accepted (mutual TLS: no token needed)"
    )

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class HttpPushSourceConfig(SourceConfigBase):
    """A local HTTP endpoint taking JSON records."""

    type: Literal["http_push"] = "http_push"
    resources: list[str] = Field(min_length=1, description="catalog codes accepted at /records/{code}")
    host: str = Field(default="127.0.0.1", description="listen address; beyond loopback only with tls")
    port: int = Field(default=8791, ge=0, le=65535, description="0 picks a free port (tests)")
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    token_secret: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="name of the secret holding the push token: env XHUB_<NAME> or <secrets dir>/xhub_<name>",
    )
    tls: TlsFiles | None = Field(default=None, description="serve HTTPS (required beyond loopback)")
    allow_anonymous: bool = Field(
        default=False, description="accept requests without credentials (loopback only; tests, demos)"
    )
    max_concurrent_requests: int = Field(default=8, ge=1, le=256, description="one more is answered 429")
    request_timeout_s: float = Field(default=10.0, gt=0, le=300, description="a request must arrive within")

    @model_validator(mode="after")
    def _secure(self) -> Self:
        local = is_loopback(self.host)
        if not local and self.tls is None:
            raise ValueError(f'host "{self.host}" is beyond loopback: set tls (cert_file, key_file)')
        mutual = self.tls is not None and self.tls.client_ca_file is not None
        if not (self.token_secret or mutual or self.allow_anonymous):
            raise ValueError("set token_secret (a bearer token) or tls.client_ca_file (client certificates)")
        if self.allow_anonymous and not local:
            raise ValueError("allow_anonymous is only for a loopback host")
        return self

    def resource_codes(self) -> list[str]:
        return list(self.resources)

    def limits(self) -> HttpLimits:
        return HttpLimits(
            max_concurrent=self.max_concurrent_requests,
            max_body_bytes=self.max_request_bytes,
            request_timeout_s=self.request_timeout_s,
        )


class HttpPushSource(Source):
    """Serves POST /records/{resource}; publishes synchronously through the runtime."""

    kind = "http_push"
    config: HttpPushSourceConfig

    def __init__(self, config: HttpPushSourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._publish_lock = threading.Lock()
        self._server: BoundedHTTPServer | None = None
        self.token: SecretStr | None = None
        self.ready = threading.Event()
        self.port: int | None = None
        self.log = get_logger("source", source=config.name, kind=self.kind)

    def run(self) -> None:
        source = self

        class Handler(_PushRequestHandler):
            owner = source

        if self.config.token_secret:
            self.token = named_secret(self.config.token_secret)
            if self.token is None:
                name = self.config.token_secret
                raise FatalError(
                    f'source "{self.name}": token_secret "{name}" is not set '
                    f"(environment variable XHUB_{name.upper()} or the file xhub_{name} of XHUB_SECRETS_DIR)"
                )
        with self._publish_lock:
            self.context.committed_position()  # Kafka reachable and our zombie fenced before we accept
        try:
            tls = self.config.tls.context() if self.config.tls else None
            server = BoundedHTTPServer(
                (self.config.host, self.config.port), Handler, self.config.limits(), tls=tls
            )
        except OSError as exc:
            raise SourceUnavailable(
                f'source "{self.name}": cannot listen on {self.config.host}:{self.config.port}: {exc}',
                retry_after=5.0,
            ) from exc
        self._server = server
        self.port = int(server.server_address[1])
        self.ready.set()
        self.log.info("http_push_listening", host=self.config.host, port=self.port)
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        serving.start()
        try:
            self._stopping.wait()
        finally:
            server.stop()  # requests being published finish; clients still sending are cut off
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

    def authorized(self, authorization: str | None, client_certificate: bool) -> bool:
        """Whether a request may push: a verified client certificate, or the source's token."""
        if client_certificate or (self.token is None and self.config.allow_anonymous):
            return True
        if self.token is None or not authorization or not authorization.startswith("Bearer "):
            return False
        given = authorization.removeprefix("Bearer ").strip().encode()
        return hmac.compare_digest(given, self.token.get_secret_value().encode())

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


class _PushRequestHandler(BoundedRequestHandler):
    owner: HttpPushSource
    server_version = "xhub-http-push"

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        source = self.owner
        if not source.authorized(self.headers.get("Authorization"), self._client_certificate()):
            self.close_connection = True  # the body is not read
            self.send_json(
                401,
                {
                    "error": "unauthorized",
                    "detail": "present the source's bearer token or a client certificate",
                },
                headers={"WWW-Authenticate": 'Bearer realm="xhub-http-push"'},
            )
            return
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) != 2 or segments[0] != "records":
            self._reply(404, {"error": "not_found", "detail": "POST /records/{resource}"})
            return
        resource = segments[1]
        if resource not in source.specs:
            served = ", ".join(source.specs)
            self._reply(404, {"error": "unknown_resource", "detail": f"resources served here: {served}"})
            return
        op = (parse_qs(parts.query).get("op") or ["u"])[0]
        if op not in _OPS:
            self._reply(400, {"error": "bad_op", "field": "op", "detail": "op must be one of c, u, d, r"})
            return
        try:
            length = self.content_length()
            body = self.read_body(length)
        except RequestRefused as problem:
            if problem.status == 413:
                self._oversize(resource)
            else:
                self.refuse(problem)
            return
        with self.server.processing(self.connection):  # publishing: a stop lets it finish
            status, answer = source.handle(resource, op, self.headers.get("Content-Type", ""), body)
        self._reply(status, answer)

    def _client_certificate(self) -> bool:
        getpeercert = getattr(self.connection, "getpeercert", None)
        return bool(getpeercert and getpeercert())

    def _oversize(self, resource: str) -> None:
        """Dead-letter the head of a request over the limit (what arrives of it in time), answer 413."""
        length = int(self.headers.get("Content-Length", "0"))
        head = b""
        with contextlib.suppress(RequestRefused):  # the client sends no body: nothing to keep
            head = self.read_body(min(length, TRUNCATED_ORIGINAL_BYTES))
        self.close_connection = True  # the rest of the body is not read
        if not head:
            self.refuse(
                RequestRefused(
                    413, "too_large", f"over the limit of {self.owner.config.max_request_bytes} bytes"
                )
            )
            return
        with self.server.processing(self.connection):
            status, answer = self.owner.refuse_oversize(resource, length, head)
        self._reply(status, answer)

    def _reply(self, status: int, answer: dict[str, Any]) -> None:
        if status >= 400 and status != 422 and self.command == "POST" and "rejected" not in answer:
            self.close_connection = True  # the body was not read: the connection cannot be reused
        headers = {"Retry-After": str(answer.get("retry_after", 5))} if status == 503 else None
        self.send_json(status, answer, headers=headers)
