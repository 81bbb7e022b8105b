"""A client of the Confluent Schema Registry REST API (Confluent SR, Karapace, Apicurio, the built-in one).

Standard library only (urllib). Schemas by id are immutable, so they are cached forever; registrations and
lookups are cached per (subject, schema text). Nothing here is meant to be called per record: use
``AvroSerde``, which caches parsed schemas.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections import Counter
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from hub.core.registry.errors import (
    ConfigNotFound,
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    InvalidVersion,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from hub.core.registry.schema import AvroSchema, canonical_text

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

_ERRORS: dict[int, type[RegistryError]] = {
    40401: SubjectNotFound,
    40402: VersionNotFound,
    40403: SchemaNotFound,
    40408: ConfigNotFound,
    42201: InvalidSchema,
    42202: InvalidVersion,
    42203: InvalidCompatibilityLevel,
}


class RegisteredSchema(NamedTuple):
    """A subject version as the registry returns it.

    ``schema`` is parsed JSON, typed ``Any`` like ``json.loads``: a dict for records, enums and fixed, a
    str for a primitive (``"string"``), a list for a union.
    """

    id: int
    version: int
    schema: Any


class RegistryClient:
    """Talks to a schema registry at ``url``.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8081``.
        timeout: seconds per HTTP request.
        tls: the party's mutual-TLS context for an ``https`` registry that asks for client certificates;
            default: the identity of the process's environment (``XHUB_KAFKA_SSL_*``, the one it uses
            on Kafka), if any.

    Raises (from every method):
        RegistryUnavailable: the registry did not answer or answered 5xx (names the URL).
        SchemaNotFound: 404 (``SubjectNotFound`` / ``VersionNotFound`` when the registry says which).
        IncompatibleSchema: 409; ``.messages`` name the fields.
        InvalidSchema, InvalidVersion, InvalidCompatibilityLevel: 422.
    """

    def __init__(self, url: str, timeout: float = 10, *, tls: ssl.SSLContext | None = None) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise RegistryError(f"schema registry URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self.timeout = timeout
        if tls is None and scheme == "https":
            from hub.core.kafka_settings import KafkaSettings

            tls = KafkaSettings().tls()
        self.tls = tls
        self._schemas: dict[int, Any] = {}
        self._texts: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}
        # (method, outcome) -> count; outcome is ok | error | unavailable. Read by the hub's /metrics.
        self.request_counts: Counter[tuple[str, str]] = Counter()

    # --- HTTP ---------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, str] | None = None
    ) -> Any:
        target = path + ("?" + urlencode(query) if query else "")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) in __init__
            self.url + target,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Accept": f"{CONTENT_TYPE}, application/json", "Content-Type": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - as above
                request, timeout=self.timeout, context=self.tls
            ) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            self.request_counts[(method, "error")] += 1
            raise self._error(exc, method, path) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            self.request_counts[(method, "unavailable")] += 1
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailable(
                f"schema registry at {self.url} did not answer {method} {path}: {reason}"
            ) from exc
        self.request_counts[(method, "ok")] += 1
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            raise RegistryError(
                f"schema registry at {self.url} answered {method} {path} with non-JSON"
            ) from exc

    def _error(self, exc: urllib.error.HTTPError, method: str, path: str) -> Exception:
        try:
            data = json.loads(exc.read() or b"{}")
        except (json.JSONDecodeError, OSError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        code = data.get("error_code", exc.code)
        message = data.get("message") or exc.reason
        text = f"schema registry at {self.url}: {method} {path}: {message} (error {code})"
        if exc.code == 409:
            messages = data.get("messages")
            return IncompatibleSchema(text, messages if isinstance(messages, list) else [str(message)])
        if code in _ERRORS:
            return _ERRORS[code](text)
        if exc.code == 404:
            return SchemaNotFound(text)
        if exc.code >= 500:
            return RegistryUnavailable(text)
        return RegistryError(text)

    @staticmethod
    def _subject(subject: str) -> str:
        return quote(subject, safe="")

    def _remember(self, schema_id: int, text: str) -> Any:
        schema = json.loads(text)
        self._texts[schema_id] = text
        self._schemas[schema_id] = schema
        return schema

    # --- the API ------------------------------------------------------------------------------

    def register(self, subject: str, schema: AvroSchema) -> int:
        """Register ``schema`` under ``subject`` and return its id (the existing id if already there)."""
        text = canonical_text(schema)
        cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        answer = self._request("POST", f"/subjects/{self._subject(subject)}/versions", {"schema": text})
        schema_id = int(answer["id"])
        self._ids[(subject, text)] = schema_id
        if schema_id not in self._texts:
            self._remember(schema_id, text)
        return schema_id

    def get_schema(self, schema_id: int) -> Any:
        """The schema (parsed JSON, see ``RegisteredSchema``) with ``schema_id``; cached forever.

        Ids are immutable, so the cache never goes stale. The returned object is the cached one: do not
        mutate it.
        """
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        answer = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        return self._remember(schema_id, answer["schema"])

    def get_schema_text(self, schema_id: int) -> str:
        """The schema text with ``schema_id``, as the registry returns it (cached forever)."""
        if schema_id not in self._texts:
            self.get_schema(schema_id)
        return self._texts[schema_id]

    def get_version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        """One version of ``subject`` (a number or ``"latest"``) as (id, version, schema)."""
        answer = self._request("GET", f"/subjects/{self._subject(subject)}/versions/{version}")
        schema_id = int(answer["id"])
        schema = self._schemas.get(schema_id) or self._remember(schema_id, answer["schema"])
        return RegisteredSchema(schema_id, int(answer["version"]), schema)

    def get_latest(self, subject: str) -> RegisteredSchema:
        """The latest version of ``subject`` as (id, version, schema)."""
        return self.get_version(subject, "latest")

    def versions(self, subject: str) -> list[int]:
        """The version numbers of ``subject``."""
        return [int(v) for v in self._request("GET", f"/subjects/{self._subject(subject)}/versions")]

    def lookup(self, subject: str, schema: AvroSchema) -> int | None:
        """The id of ``schema`` if it is registered under ``subject``, else None."""
        text = canonical_text(schema)
        cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        try:
            answer = self._request("POST", f"/subjects/{self._subject(subject)}", {"schema": text})
        except SchemaNotFound:
            return None
        schema_id = int(answer["id"])
        self._ids[(subject, text)] = schema_id
        return schema_id

    def test_compatibility(
        self, subject: str, schema: AvroSchema, version: int | str = "latest"
    ) -> list[str]:
        """Problems registering ``schema`` under ``subject`` would have against ``version``; empty if none."""
        answer = self._request(
            "POST",
            f"/compatibility/subjects/{self._subject(subject)}/versions/{version}",
            {"schema": canonical_text(schema)},
            {"verbose": "true"},
        )
        if answer.get("is_compatible"):
            return []
        return [str(m) for m in answer.get("messages") or ["incompatible (the registry gave no detail)"]]

    def get_config(self, subject: str | None = None) -> str:
        """The compatibility level in force globally, or for ``subject`` (its own, else the global one)."""
        if subject is None:
            answer = self._request("GET", "/config")
        else:
            answer = self._request(
                "GET", f"/config/{self._subject(subject)}", query={"defaultToGlobal": "true"}
            )
        return str(answer["compatibilityLevel"])

    def set_config(self, level: str, subject: str | None = None) -> str:
        """Set the compatibility level globally, or for ``subject``; return the level now in force."""
        path = "/config" if subject is None else f"/config/{self._subject(subject)}"
        answer = self._request("PUT", path, {"compatibility": level.upper()})
        return str(answer["compatibility"])

    def subjects(self) -> list[str]:
        """All subjects."""
        return [str(s) for s in self._request("GET", "/subjects")]
