"""The built-in schema registry over HTTP, speaking the Confluent Schema Registry REST API.

``RegistryApi.handle(method, path, body)`` does all the work and knows nothing of sockets, so another HTTP
server (the hub's admin port) can delegate the registry's paths to it (``RegistryApi.owns(path)``).
``RegistryServer`` serves it on its own port with ``http.server``.

Endpoints: ``GET /schemas/ids/{id}`` (and ``/schema``, ``/subjects``, ``/versions`` below it),
``GET /schemas/types``, ``GET /subjects``, ``GET|POST /subjects/{s}/versions``,
``GET /subjects/{s}/versions/{v|latest}`` (and ``/schema``), ``POST /subjects/{s}`` (lookup),
``POST /compatibility/subjects/{s}/versions[/{v}]``, ``GET|PUT /config``, ``GET|PUT|DELETE /config/{s}``,
``GET /mode``. Errors use Confluent's bodies: ``{"error_code": 40401, "message": "..."}``.
"""

from __future__ import annotations

import json
import ssl
import threading
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

from hub.core.bounded_http import BoundedHTTPServer, BoundedRequestHandler, HttpLimits, RequestRefused
from hub.core.identity import principal_of_peercert
from hub.core.log import get_logger
from hub.core.registry.errors import (
    ConfigNotFound,
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    InvalidVersion,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
)
from hub.core.registry.schema import load
from hub.registry.authorization import SubjectAuthorizer
from hub.registry.operations import BaseSchemaStore

log = get_logger("registry.server")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
PATH_PREFIXES = ("/subjects", "/schemas", "/config", "/compatibility", "/mode")

JsonBody: TypeAlias = dict[str, Any] | list[Any]
Response: TypeAlias = tuple[int, JsonBody]

# A schema is a few KiB; a department's biggest resource schema stays far below 1 MiB.
REGISTRY_LIMITS = HttpLimits(max_concurrent=32, max_body_bytes=1024 * 1024, request_timeout_s=10.0)


class _HttpProblem(Exception):  # noqa: N818 - internal control flow, never leaves this module
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() == "true"


def _version(raw: str) -> int | None:
    """``latest`` (or -1) -> None; a positive integer -> itself."""
    if raw in ("latest", "-1"):
        return None
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if number < 1:
        raise InvalidVersion(f'version "{raw}" must be a positive integer or "latest"')
    return number


def _schema_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SchemaNotFound(f"schema id {raw!r} not found") from None


class RegistryApi:
    """The REST API over a schema store, independent of any HTTP server."""

    def __init__(self, store: BaseSchemaStore) -> None:
        self.store = store

    @staticmethod
    def owns(path: str) -> bool:
        """Whether ``path`` (with or without a query) is one of the registry's."""
        clean = urlsplit(path).path
        return any(clean == p or clean.startswith(p + "/") for p in PATH_PREFIXES)

    def handle(self, method: str, path: str, body: bytes | None) -> Response:
        """Answer one request.

        Args:
            method: the HTTP method, e.g. ``"GET"``.
            path: the request target, with its query string (``/subjects/x/versions?normalize=false``).
            body: the request body, if any.

        Returns:
            The HTTP status and the JSON body (a Confluent error body when the status is not 200).
        """
        try:
            return 200, self._route(method.upper(), path, body)
        except IncompatibleSchema as exc:
            return exc.status, {"error_code": exc.error_code, "message": str(exc), "messages": exc.messages}
        except RegistryError as exc:
            return exc.status, {"error_code": exc.error_code, "message": str(exc)}
        except RegistryUnavailable as exc:
            log.warning("registry_request_failed", method=method, error=str(exc))
            return 500, {"error_code": 50001, "message": f"error in the backend data store: {exc}"}
        except _HttpProblem as exc:
            return exc.status, {"error_code": exc.status, "message": str(exc)}
        except Exception as exc:  # every request gets a Confluent-shaped answer; the crash is logged here
            log.exception("registry_request_crashed", method=method, path=urlsplit(path).path)
            return 500, {"error_code": 50001, "message": f"internal error: {type(exc).__name__}"}

    # --- routing ------------------------------------------------------------------------------

    def _route(self, method: str, target: str, body: bytes | None) -> JsonBody:  # noqa: PLR0911, PLR0912
        split = urlsplit(target)
        query = parse_qs(split.query)
        # split before unquoting: a subject may contain an encoded '/'
        parts = [unquote(p) for p in split.path.strip("/").split("/")] if split.path.strip("/") else []
        head, n = (parts[0] if parts else ""), len(parts)

        if n == 0:
            return self._only(method, "GET", {})
        if head == "schemas":
            self._only(method, "GET", None)
            if parts == ["schemas", "types"]:
                return ["AVRO"]
            if n >= 3 and parts[1] == "ids":
                return self._schema_by_id(_schema_id(parts[2]), parts[3:])
        elif head == "subjects":
            if n == 1:
                return self._only(method, "GET", self.store.subjects())
            subject = parts[1]
            if n == 2:
                self._only(method, "POST", None)
                return self._lookup(subject, body)
            if n == 3 and parts[2] == "versions":
                if method == "POST":
                    return {"id": self.store.register(subject, self._schema_body(body)).id}
                return self._only(method, "GET", self.store.versions(subject))
            if n in (4, 5) and parts[2] == "versions" and (n == 4 or parts[4] == "schema"):
                self._only(method, "GET", None)
                found = self.store.get(subject, _version(parts[3]))
                return found.to_json() if n == 4 else load(found.schema)
        elif head == "compatibility":
            if n in (4, 5) and parts[1] == "subjects" and parts[3] == "versions":
                self._only(method, "POST", None)
                version: int | str | None = _version(parts[4]) if n == 5 else "all"
                messages = self.store.test_compatibility(parts[2], self._schema_body(body), version)
                return {"is_compatible": not messages, "messages": messages}
        elif head == "config" and n <= 2:
            return self._config(method, parts[1] if n == 2 else None, query, body)
        elif head == "mode" and n <= 2:
            return self._only(method, "GET", {"mode": "READWRITE"})
        raise _HttpProblem(404, f"HTTP 404 Not Found: {split.path}")

    @staticmethod
    def _only(method: str, allowed: str, result: JsonBody | None) -> JsonBody:
        if method != allowed:
            raise _HttpProblem(405, f"HTTP 405 Method Not Allowed: use {allowed}")
        return result if result is not None else {}

    # --- endpoints ----------------------------------------------------------------------------

    def _schema_by_id(self, schema_id: int, rest: list[str]) -> JsonBody:
        text = self.store.schema(schema_id)
        if not rest:
            return {"schema": text}
        if rest == ["schema"]:
            parsed = load(text)
            return parsed if isinstance(parsed, dict | list) else {"type": parsed}
        if rest == ["subjects"]:
            return sorted({sv.subject for sv in self.store.usages(schema_id)})
        if rest == ["versions"]:
            return [{"subject": sv.subject, "version": sv.version} for sv in self.store.usages(schema_id)]
        raise _HttpProblem(404, "HTTP 404 Not Found")

    def _lookup(self, subject: str, body: bytes | None) -> JsonBody:
        return self.store.lookup(subject, self._schema_body(body)).to_json()

    def _config(
        self, method: str, subject: str | None, query: dict[str, list[str]], body: bytes | None
    ) -> JsonBody:
        if method == "GET":
            level = self.store.get_level(subject)
            if level is None:
                if subject is not None and not _flag(query, "defaultToGlobal"):
                    raise ConfigNotFound(
                        f'subject "{subject}" does not have subject-level compatibility configured'
                    )
                level = self.store.effective_level(None)
            return {"compatibilityLevel": level}
        if method == "PUT":
            request = self._json(body)
            raw = request.get("compatibility", request.get("compatibilityLevel"))
            if not isinstance(raw, str):
                raise InvalidCompatibilityLevel('body must be {"compatibility": LEVEL}')
            return {"compatibility": self.store.set_level(raw, subject)}
        if method == "DELETE" and subject is not None:
            previous = self.store.delete_level(subject)
            return {"compatibilityLevel": previous or self.store.effective_level(None)}
        raise _HttpProblem(405, "HTTP 405 Method Not Allowed: use GET or PUT")

    @staticmethod
    def _json(body: bytes | None) -> dict[str, Any]:
        try:
            value = json.loads(body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise _HttpProblem(400, f"request body is not JSON: {type(exc).__name__}") from exc
        if not isinstance(value, dict):
            raise _HttpProblem(400, "request body must be a JSON object")
        return value

    def _schema_body(self, body: bytes | None) -> str:
        request = self._json(body)
        schema = request.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise InvalidSchema('request body has no "schema" string')
        schema_type = request.get("schemaType") or "AVRO"
        if schema_type != "AVRO":
            raise InvalidSchema(
                f'schema type "{schema_type}" is not supported; this registry holds AVRO only'
            )
        if request.get("references"):
            raise InvalidSchema("schema references are not supported")
        return schema


class RegistryServer:
    """The registry API on its own HTTP port, served from a background thread.

    The server does not own the store: start and stop the store yourself.

    Args:
        store: where the schemas live (``SchemaStore`` in production).
        host: interface to bind.
        port: TCP port; 0 picks a free one (see ``url``).
        limits: concurrent requests, body size, request deadline (hub.core.bounded_http).
        tls: serve HTTPS with this context (one requiring client certificates makes it mutual TLS).
        authorizer: who may write which subject, by the principal of the client certificate (needs a
            ``tls`` context that requires client certificates); None: every caller may do anything.
    """

    def __init__(
        self,
        store: BaseSchemaStore,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: HttpLimits = REGISTRY_LIMITS,
        tls: ssl.SSLContext | None = None,
        authorizer: SubjectAuthorizer | None = None,
    ) -> None:
        if authorizer is not None and (tls is None or tls.verify_mode != ssl.CERT_REQUIRED):
            raise ValueError("an authorizing registry needs a TLS context that requires client certificates")
        self.api = RegistryApi(store)
        self.authorizer = authorizer
        self.host = host
        self._port = port
        self.limits = limits
        self.tls = tls
        self._httpd: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8081``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def handle(self, method: str, path: str, body: bytes | None) -> Response:
        """Answer one request without HTTP (see ``RegistryApi.handle``)."""
        return self.api.handle(method, path, body)

    def start(self) -> None:
        """Bind and serve in a daemon thread."""
        if self._httpd is not None:
            return
        handler = type(
            "RegistryRequestHandler",
            (_RegistryRequestHandler,),
            {"api": self.api, "authorizer": self.authorizer},
        )
        self._httpd = BoundedHTTPServer((self.host, self._port), handler, self.limits, tls=self.tls)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long stop() waits for the loop to notice
            name=f"registry-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("registry_server_started", url=self.url)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        log.info("registry_server_stopped", port=httpd.server_address[1])


class _RegistryRequestHandler(BoundedRequestHandler):
    api: RegistryApi
    authorizer: SubjectAuthorizer | None

    def _serve(self) -> None:
        if self.authorizer is not None:
            getpeercert = getattr(self.connection, "getpeercert", None)
            principal = principal_of_peercert(getpeercert() if getpeercert else None)
            refusal = self.authorizer.refusal(principal, self.command, self.path)
            if refusal is not None:
                status, why = refusal
                self._send(status, {"error_code": status * 100 + 1, "message": why}, close=True)
                log.warning(
                    "registry_request_refused", principal=principal, method=self.command, status=status
                )
                return
        body: bytes | None = None
        try:
            # A body is read only once its length is checked (missing on a write: 411).
            if self.command in ("POST", "PUT") or "Content-Length" in self.headers:
                length = self.content_length()
                body = self.read_body(length) if length else None
        except RequestRefused as problem:
            self._send(problem.status, {"error_code": problem.status, "message": problem.detail}, close=True)
            return
        with self.server.processing(self.connection):
            status, payload = self.api.handle(self.command, self.path, body)
        self._send(status, payload)

    def _send(self, status: int, payload: JsonBody, *, close: bool = False) -> None:
        if close:
            self.close_connection = True
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's naming
