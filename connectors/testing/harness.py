"""Harnesses: how the shared suite drives one kind of connector against its real system.

A harness knows how to prepare the department side (a table, an outbox, an HTTP client) and how to
write changes there; the suite (``connectors.testing.suite``) runs the same checks against every one.

Extension point for sinks: a sink harness derives from ``ConnectorHarness`` too, with ``sink_config``
and readers of the department table or file it writes (``applied_rows``), and a ``SinkSuite`` beside
``SourceSuite`` checks c/u/d/r application, seq ordering and exactly-once over restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import urllib.error
import urllib.request
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from connectors.runtime.sidecar import Sidecar
from connectors.sources.http_push import HttpPushSource
from connectors.testing.records import (
    CORPUS,
    INVALID_UTF8_NAME,
    MAX_RECORD_BYTES,
    RESOURCE,
    bad_record,
    record,
)
from connectors.testing.runtime import wait_for

COLUMNS = ("id_number", "name", "gender", "birth_date", "score", "employer_code", "note")


class ConnectorHarness(ABC):
    """What every harness has: a work folder, an optional PostgreSQL database, set-up and clean-up."""

    kind: ClassVar[str]
    needs_postgres: ClassVar[bool] = False

    def __init__(self, workdir: Path, *, pg_dsn: str | None = None) -> None:
        self.workdir = workdir
        self.pg_dsn = pg_dsn

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Create the department side (tables ...) before ``xhub connector install`` runs."""

    def attach(self, sidecar: Sidecar) -> None:  # noqa: B027 - optional hook
        """Called once the sidecar runs (e.g. to learn the port it listens on)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class SourceHarness(ConnectorHarness):
    """Drives a source: writes inserts, updates, deletes and bad records where the source captures them."""

    supports_snapshot: ClassVar[bool] = False
    corpus: ClassVar[frozenset[str]] = frozenset(CORPUS)
    """The bad-record cases this department system can even hold (PostgreSQL types refuse some)."""

    @abstractmethod
    def source_config(self, name: str) -> dict[str, Any]:
        """The source's item in the connector config."""

    @abstractmethod
    def insert(self, rec: dict[str, Any]) -> None:
        """Create a record (expected as op=c)."""

    @abstractmethod
    def update(self, rec: dict[str, Any]) -> None:
        """Change a record, same key (expected as op=u)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete a record (expected as op=d)."""

    @abstractmethod
    def write_bad(self, case: str, n: int) -> None:
        """Write the bad record of corpus ``case``."""


# --- SQL department databases ------------------------------------------------------------------


class _DeptDb:
    """The department's own connection (the application's side), autocommit."""

    def __init__(self, sqlite_path: Path | None, pg_dsn: str | None) -> None:
        self.sqlite_path = sqlite_path
        self.pg_dsn = pg_dsn
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        if pg_dsn:
            import psycopg

            self._pg = psycopg.connect(pg_dsn, autocommit=True)
        else:
            assert sqlite_path is not None
            self._sqlite = sqlite3.connect(
                sqlite_path, timeout=30, isolation_level=None, check_same_thread=False
            )

    @property
    def url(self) -> str:
        return self.pg_dsn if self.pg_dsn else f"sqlite:///{self.sqlite_path}"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self._pg is not None:
            self._pg.execute(sql.replace("?", "%s"), params)
        else:
            assert self._sqlite is not None
            self._sqlite.execute(sql, params)

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()


def _values(rec: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(rec.get(c) for c in COLUMNS)


class SqlTriggerHarness(SourceHarness):
    """A department table captured by triggers (SQLite file, or PostgreSQL when ``needs_postgres``)."""

    kind = "sql_trigger"
    supports_snapshot = True

    def __init__(self, workdir: Path, *, pg_dsn: str | None = None) -> None:
        super().__init__(workdir, pg_dsn=pg_dsn)
        self.db = _DeptDb(None if pg_dsn else workdir / "dept.db", pg_dsn)

    def prepare(self) -> None:
        if self.pg_dsn:
            # Typed columns, a surrogate id and an extra column the schema does not have.
            self.db.execute(
                "CREATE TABLE enrolee (id BIGSERIAL PRIMARY KEY, id_number TEXT UNIQUE, name TEXT, "
                "gender TEXT, birth_date DATE, score INTEGER, employer_code TEXT, note TEXT, "
                "internal_flag TEXT)"
            )
        else:
            self.db.execute(
                "CREATE TABLE enrolee (id_number TEXT PRIMARY KEY, name TEXT, gender TEXT, birth_date TEXT, "
                "score INTEGER, employer_code TEXT, note TEXT, internal_flag TEXT)"
            )

    def source_config(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "sql_trigger",
            "resource": RESOURCE,
            "database": self.db.url,
            "table": "enrolee",
            "poll_interval_ms": 50,
            "max_record_bytes": MAX_RECORD_BYTES,
            "batch_size": 200,
        }

    def insert(self, rec: dict[str, Any]) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        self.db.execute(
            f"INSERT INTO enrolee ({', '.join(COLUMNS)}, internal_flag) VALUES ({marks}, 'x')",  # noqa: S608 - fixed test SQL
            _values(rec),
        )

    def update(self, rec: dict[str, Any]) -> None:
        sets = ", ".join(f"{c} = ?" for c in COLUMNS[1:])
        self.db.execute(
            f"UPDATE enrolee SET {sets} WHERE id_number = ?",  # noqa: S608 - fixed test SQL
            (*_values(rec)[1:], rec["id_number"]),
        )

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM enrolee WHERE id_number = ?", (key,))

    def write_bad(self, case: str, n: int) -> None:
        rec = bad_record(case, n)
        if case == "invalid_utf8":
            marks = ", ".join("CAST(? AS TEXT)" if c == "name" else "?" for c in COLUMNS)
            values = tuple(INVALID_UTF8_NAME if c == "name" else rec[c] for c in COLUMNS)
            self.db.execute(f"INSERT INTO enrolee ({', '.join(COLUMNS)}) VALUES ({marks})", values)  # noqa: S608 - fixed test SQL
            return
        self.insert(rec)

    def close(self) -> None:
        self.db.close()


class PostgresTriggerHarness(SqlTriggerHarness):
    """Trigger capture on real PostgreSQL (typed columns hold neither text in an int nor bad UTF-8)."""

    needs_postgres = True
    corpus = frozenset(CORPUS) - {"wrong_type", "invalid_utf8"}


class PgLogicalHarness(PostgresTriggerHarness):
    """The same PostgreSQL table captured by logical decoding (needs a server with wal_level=logical).

    Its slot name is unique per test (slots are per server, not per database); ``close`` drops slot and
    publication, as ``xhub connector uninstall`` does, so the test database can be dropped.
    """

    kind = "pg_logical"

    def __init__(self, workdir: Path, *, pg_dsn: str | None = None) -> None:
        super().__init__(workdir, pg_dsn=pg_dsn)
        self.slot = f"xhub_t{uuid.uuid4().hex[:12]}"

    def source_config(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "pg_logical",
            "resource": RESOURCE,
            "database": self.db.url,
            "table": "enrolee",
            "slot": self.slot,
            "poll_interval_ms": 50,
            "max_record_bytes": MAX_RECORD_BYTES,
            "batch_size": 200,
        }

    def close(self) -> None:
        try:
            self.db.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE slot_name = ? AND active_pid IS NOT NULL",
                (self.slot,),
            )
            wait_for(lambda: _slot_inactive(self.db, self.slot), timeout_s=10)
            self.db.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ?",
                (self.slot,),
            )
        finally:
            super().close()


def _slot_inactive(db: _DeptDb, slot: str) -> bool:
    assert db._pg is not None
    row = db._pg.execute(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return row is None or row[0] is None


class OutboxHarness(SourceHarness):
    """An outbox table written as the application would (SQLite, or PostgreSQL when ``needs_postgres``)."""

    kind = "outbox"

    def __init__(self, workdir: Path, *, pg_dsn: str | None = None) -> None:
        super().__init__(workdir, pg_dsn=pg_dsn)
        if not pg_dsn:
            # The application's database exists before the sidecar is installed.
            sqlite3.connect(workdir / "dept.db").close()
        self.db = _DeptDb(None if pg_dsn else workdir / "dept.db", pg_dsn)

    def source_config(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "outbox",
            "resources": [RESOURCE],
            "database": self.db.url,
            "poll_interval_ms": 50,
            "max_record_bytes": MAX_RECORD_BYTES,
            "batch_size": 200,
        }

    def _write(self, op: str, key: str | None, payload: bytes | str | None) -> None:
        if isinstance(payload, bytes):
            self.db.execute(
                "INSERT INTO xhub_outbox (resource, op, key, payload_json) VALUES (?, ?, ?, CAST(? AS TEXT))",
                (RESOURCE, op, key, payload),
            )
        else:
            self.db.execute(
                "INSERT INTO xhub_outbox (resource, op, key, payload_json) VALUES (?, ?, ?, ?)",
                (RESOURCE, op, key, payload),
            )

    def insert(self, rec: dict[str, Any]) -> None:
        self._write("c", rec["id_number"], json.dumps(rec, ensure_ascii=False))

    def update(self, rec: dict[str, Any]) -> None:
        self._write("u", rec["id_number"], json.dumps(rec, ensure_ascii=False))

    def delete(self, key: str) -> None:
        self._write("d", key, None)

    def write_bad(self, case: str, n: int) -> None:
        rec = bad_record(case, n)
        if case == "invalid_utf8":
            text = json.dumps(rec, ensure_ascii=False).encode()
            self._write(
                "c",
                rec["id_number"],
                text.replace(
                    json.dumps(rec["name"], ensure_ascii=False).encode(), b'"' + INVALID_UTF8_NAME + b'"'
                ),
            )
            return
        self._write("c", rec["id_number"], json.dumps(rec, ensure_ascii=False))

    def close(self) -> None:
        self.db.close()


class PostgresOutboxHarness(OutboxHarness):
    """The outbox on a real PostgreSQL server (a text column cannot hold invalid UTF-8)."""

    needs_postgres = True
    corpus = frozenset(CORPUS) - {"invalid_utf8"}


class HttpPushHarness(SourceHarness):
    """Records POSTed to the sidecar's local endpoint with its token; every answer is kept for inspection."""

    kind = "http_push"
    token_secret = "push_token_suite"  # noqa: S105 - the secret's name; its value is made per run

    def __init__(self, workdir: Path, *, pg_dsn: str | None = None) -> None:
        super().__init__(workdir, pg_dsn=pg_dsn)
        self.url: str | None = None
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.token = secrets.token_urlsafe(24)
        # The sidecar of the suite runs in this process: it reads the secret from here.
        os.environ[f"XHUB_{self.token_secret.upper()}"] = self.token

    def source_config(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "http_push",
            "resources": [RESOURCE],
            "port": 0,
            "max_record_bytes": MAX_RECORD_BYTES,
            "token_secret": self.token_secret,
        }

    def attach(self, sidecar: Sidecar) -> None:
        source = next(s for s in sidecar.sources if isinstance(s, HttpPushSource))
        if not wait_for(source.ready.is_set, timeout_s=30):
            raise AssertionError("the HTTP push source did not start listening")
        self.url = f"http://127.0.0.1:{source.port}"

    def post(
        self, body: bytes, *, op: str = "u", content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        """POST raw bytes to /records/<resource>; return (status, answer)."""
        assert self.url is not None, "attach() first"
        request = urllib.request.Request(  # noqa: S310 - a local test URL
            f"{self.url}/records/{RESOURCE}?op={op}",
            data=body,
            method="POST",
            headers={"Content-Type": content_type, "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a local test URL
                answer = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            answer = (exc.code, json.loads(exc.read()))
        self.answers.append(answer)
        return answer

    def _post_ok(self, body: bytes, op: str) -> None:
        status, answer = self.post(body, op=op)
        if status != 202:
            raise AssertionError(f"POST op={op} answered {status}: {answer}")

    def insert(self, rec: dict[str, Any]) -> None:
        self._post_ok(json.dumps(rec, ensure_ascii=False).encode(), "c")

    def update(self, rec: dict[str, Any]) -> None:
        self._post_ok(json.dumps(rec, ensure_ascii=False).encode(), "u")

    def delete(self, key: str) -> None:
        self._post_ok(json.dumps({"id_number": key}).encode(), "d")

    def write_bad(self, case: str, n: int) -> None:
        rec = bad_record(case, n)
        body = json.dumps(rec, ensure_ascii=False).encode()
        if case == "invalid_utf8":
            body = body.replace(
                json.dumps(rec["name"], ensure_ascii=False).encode(), b'"' + INVALID_UTF8_NAME + b'"'
            )
        self.post(body, op="c")


def default_record(n: int) -> dict[str, Any]:
    """The n-th good record of a suite run."""
    return record(n)
