"""SQLite through the standard library's sqlite3: one writer at a time, so ids commit in order."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connectors.db import DatabaseAddress
from connectors.db.sqlite import SqliteDialect
from connectors.errors import SourceUnavailable
from connectors.sources.changelog.base import ChangeLogConnection, LogPos, LogSpec, Reader, Row


def _text(raw: bytes) -> str:
    # Text that is not UTF-8 must survive reading: it is dead-lettered with its original bytes
    # (``invalid_utf8``), so decode losslessly and let the validator judge it.
    return raw.decode("utf-8", "surrogateescape")


class _SqliteReader(Reader):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount


class SqliteChangeLogConnection(ChangeLogConnection):
    """A SQLite database file. The position in a log is ``{"id": last id read}``."""

    dialect: SqliteDialect

    def __init__(self, address: DatabaseAddress, *, what: str, busy_timeout_s: float = 10.0) -> None:
        super().__init__(SqliteDialect(address), what=what)
        self.path: Path = address.path
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    def connect(self) -> None:
        if self._conn is not None:
            return
        if not self.path.exists():
            raise SourceUnavailable(
                f"{self.what}: SQLite database {self.path} does not exist", retry_after=5.0
            )
        try:
            conn = self.dialect.connect(timeout=self.busy_timeout_s)
        except sqlite3.Error as exc:
            raise SourceUnavailable(f"{self.what}: cannot open SQLite database {self.path}: {exc}") from exc
        conn.text_factory = _text
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # a broken connection: nothing left to release
                conn.close()

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.connect()
        assert self._conn is not None
        return self._conn

    def _reader(self, conn: Any) -> Reader:
        return _SqliteReader(conn)

    def _unavailable(self, exc: BaseException) -> Exception:
        return SourceUnavailable(f"{self.what}: SQLite database {self.path}: {exc}")

    @contextmanager
    def read(self) -> Iterator[Reader]:
        # A deferred transaction: every SELECT in it sees the same database state (shared lock in
        # rollback-journal mode, a read snapshot in WAL mode).
        with self._transaction("BEGIN") as reader:
            yield reader

    @contextmanager
    def write(self) -> Iterator[Reader]:
        with self._transaction("BEGIN IMMEDIATE") as reader:
            yield reader

    def _rollback(self, conn: Any) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is closed next; the transaction dies with it

    def log_start(self) -> LogPos:
        return {"id": 0}

    def log_head(self, reader: Reader, spec: LogSpec) -> LogPos:
        found = reader.rows(f"SELECT max(id) FROM {self.quote(spec.table)}")  # noqa: S608 - identifiers are checked and quoted
        return {"id": int(found[0][0] or 0)}

    def log_read(
        self, reader: Reader, spec: LogSpec, pos: LogPos, limit: int
    ) -> tuple[list[Row], LogPos, bool]:
        where = f"{spec.where} AND " if spec.where else ""
        rows = reader.rows(
            f"SELECT {spec.columns} FROM {self.quote(spec.table)} WHERE {where}id > ? ORDER BY id LIMIT ?",  # noqa: S608 - identifiers are checked and quoted
            (*spec.params, int(pos["id"]), limit),
        )
        new = {"id": int(rows[-1][0])} if rows else {"id": int(pos["id"])}
        return rows, new, len(rows) < limit

    def published(self, spec: LogSpec, pos: LogPos) -> tuple[str, tuple[Any, ...]]:
        return "id <= ?", (int(pos["id"]),)

    def backlog(self, reader: Reader, spec: LogSpec, pos: LogPos, commit_ms: str) -> tuple[int, int | None]:
        where = f"{spec.where} AND " if spec.where else ""
        found = reader.rows(
            f"SELECT count(*), min({commit_ms}) FROM {self.quote(spec.table)} WHERE {where}id > ?",  # noqa: S608 - identifiers are checked and quoted
            (*spec.params, int(pos["id"])),
        )
        count, oldest = found[0]
        return int(count or 0), None if oldest is None else int(oldest)

    def table_columns(self, reader: Reader, table: str) -> list[str]:
        return [str(r[1]) for r in reader.rows(self.dialect.table_info_sql(table))]

    def ms_expr(self, column: str) -> str:
        return column  # stored as epoch milliseconds already
