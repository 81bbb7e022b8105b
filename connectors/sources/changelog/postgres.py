"""PostgreSQL through psycopg 3 (``pip install exchange-hub[postgres]``), read in commit order.

A log position is ``{"snap": S, "next": N, "after": id}``, S and N being ``pg_snapshot`` texts
(``xmin:xmax:xip,...``) taken by this reader earlier, S before N:

- every log row whose transaction is visible in S is published;
- of the rows whose transaction became visible between S and N (the window), those with id <= after are
  published; the rest come next, by id.

A transaction that took id 7 but commits after the one that took id 9 is invisible in the snapshot in
which 9 first appears, so it lands in a later window and is published then: no row is skipped, whatever
the commit order. Within a window, ids give per-key order, because a change to a row can only follow
the commit of the change before it (row lock), and takes its id after that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from connectors.db import DatabaseAddress
from connectors.db.postgres import PostgresDialect
from connectors.errors import SourceUnavailable
from connectors.sources.changelog.base import ChangeLogConnection, LogPos, LogSpec, Reader, Row

FIRST_SNAPSHOT = "3:3:"
"""A snapshot in which no normal transaction (xid >= 3) is visible: "before everything"."""


class _PgReader(Reader):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.execute(sql, tuple(params), prepare=True)
        return [tuple(r) for r in cur.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self._conn.execute(sql, tuple(params))
        return int(cur.rowcount)


class PostgresChangeLogConnection(ChangeLogConnection):
    """A PostgreSQL database; reads run in REPEATABLE READ READ ONLY transactions.

    Raises:
        MissingDependency: psycopg 3 is not installed.
    """

    dialect: PostgresDialect

    def __init__(self, address: DatabaseAddress, *, what: str, connect_timeout_s: int = 10) -> None:
        super().__init__(PostgresDialect(address, what=what), what=what)
        self.connect_timeout_s = connect_timeout_s
        self._conn: Any = None

    def connect(self) -> None:
        if self._conn is not None:
            return
        try:
            conn = self.dialect.connect(autocommit=True, connect_timeout=self.connect_timeout_s)
        except self.driver_errors as exc:
            raise SourceUnavailable(
                f"{self.what}: PostgreSQL at {self.display} does not answer: {exc}"
            ) from exc
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not raise
                conn.close()

    @contextmanager
    def read(self) -> Iterator[Reader]:
        # REPEATABLE READ: one snapshot for the whole block, so pg_current_snapshot(), the log and the
        # captured table agree with each other.
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as reader:
            yield reader

    @contextmanager
    def write(self) -> Iterator[Reader]:
        with self._transaction("BEGIN") as reader:
            yield reader

    def _open_connection(self) -> Any:
        if self._conn is None:
            self.connect()
        return self._conn

    def _reader(self, conn: Any) -> Reader:
        return _PgReader(conn)

    def _unavailable(self, exc: BaseException) -> Exception:
        return SourceUnavailable(f"{self.what}: PostgreSQL at {self.display}: {exc}")

    def _rollback(self, conn: Any) -> None:
        with contextlib.suppress(Exception):  # the connection is closed next; the transaction dies with it
            conn.execute("ROLLBACK")

    def log_start(self) -> LogPos:
        return {"snap": FIRST_SNAPSHOT, "next": FIRST_SNAPSHOT, "after": 0}

    def log_head(self, reader: Reader, spec: LogSpec) -> LogPos:
        current = str(reader.rows("SELECT pg_current_snapshot()::text")[0][0])
        return {"snap": current, "next": current, "after": 0}

    def log_read(
        self, reader: Reader, spec: LogSpec, pos: LogPos, limit: int
    ) -> tuple[list[Row], LogPos, bool]:
        current = str(reader.rows("SELECT pg_current_snapshot()::text")[0][0])
        where = f"{spec.where} AND " if spec.where else ""
        window_sql = (
            f"SELECT {spec.columns} FROM {self.quote(spec.table)} WHERE {where}"  # noqa: S608 - identifiers are checked and quoted
            "txid >= pg_snapshot_xmin(%s::pg_snapshot) AND txid < pg_snapshot_xmax(%s::pg_snapshot) "
            "AND NOT pg_visible_in_snapshot(txid, %s::pg_snapshot) "
            "AND pg_visible_in_snapshot(txid, %s::pg_snapshot) "
            "AND id > %s ORDER BY id LIMIT %s"
        )
        snap, nxt, after = str(pos["snap"]), str(pos["next"]), int(pos["after"])
        rows: list[Row] = []
        while True:
            got = reader.rows(window_sql, (*spec.params, snap, nxt, snap, nxt, after, limit - len(rows)))
            rows.extend(got)
            if len(rows) >= limit:
                return rows, {"snap": snap, "next": nxt, "after": int(got[-1][0])}, False
            if nxt == current:
                # Window exhausted and it ends at the state this reader sees: caught up.
                return rows, {"snap": current, "next": current, "after": 0}, True
            snap, nxt, after = nxt, current, 0

    def published(self, spec: LogSpec, pos: LogPos) -> tuple[str, tuple[Any, ...]]:
        return "txid < pg_snapshot_xmin(%s::pg_snapshot)", (str(pos["snap"]),)

    def backlog(self, reader: Reader, spec: LogSpec, pos: LogPos, commit_ms: str) -> tuple[int, int | None]:
        # Not published = invisible in "snap", and not within the window up to "after" (see the module
        # docstring); every such row has txid >= xmin(snap), which bounds the scan on the txid index.
        where = f"{spec.where} AND " if spec.where else ""
        found = reader.rows(
            f"SELECT count(*), min({commit_ms}) FROM {self.quote(spec.table)} WHERE {where}"  # noqa: S608 - identifiers are checked and quoted
            "txid >= pg_snapshot_xmin(%s::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, %s::pg_snapshot) "
            "AND NOT (pg_visible_in_snapshot(txid, %s::pg_snapshot) AND id <= %s)",
            (*spec.params, str(pos["snap"]), str(pos["snap"]), str(pos["next"]), int(pos["after"])),
        )
        count, oldest = found[0]
        return int(count or 0), None if oldest is None else int(oldest)

    def table_columns(self, reader: Reader, table: str) -> list[str]:
        schema, name = table.split(".", 1) if "." in table else (None, table)
        rows = reader.rows(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND (n.nspname = %s OR (%s::text IS NULL AND pg_table_is_visible(c.oid))) "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (name, schema, schema),
        )
        return [str(r[0]) for r in rows]

    def ms_expr(self, column: str) -> str:
        return f"(extract(epoch from {column}) * 1000)::bigint"
