"""The apply layer of the SQL sink on top of ``connectors.db``: SQLite (stdlib), PostgreSQL (psycopg 3).

Each ``ApplyConnection`` hides what differs: connecting, transactions, column types per kind (see
``sql_types``), value converters, and which driver errors are transient (retry the batch) and which
blame one row (dead-letter that row, apply the rest). The connection string, its relative-path rule,
redaction, the parameter marker and identifier quoting come from ``connectors.db``, the same as for
the sources.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from connectors.db import DatabaseAddress, Dialect, DialectName, check_identifier, parse_dsn, quote_identifier
from connectors.db.postgres import PostgresDialect
from connectors.db.sqlite import SqliteDialect
from connectors.sinks.errors import SinkConfigError
from connectors.sinks.json_format import json_default
from connectors.sinks.sql_types import Kind

Converter = Callable[[Any], Any]
ErrorClass = Literal["transient", "row"]

_SQLITE_CONSTRAINT = re.compile(r"^(\w+ constraint failed): ([\w.]+)")


def _nullable(convert: Converter) -> Converter:
    def run(value: Any) -> Any:
        return None if value is None else convert(value)

    return run


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.time) else value


_json_text = partial(json.dumps, default=json_default, ensure_ascii=False, separators=(",", ":"))


class ApplyConnection(ABC):
    """One database connection of a SQL sink, opened lazily, reopened after a transient failure.

    Args:
        dialect: the engine and address (``connectors.db``).
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.param = dialect.placeholder
        """The parameter marker of the driver."""
        self.where = dialect.display
        """Where the database is, for messages (never contains a password)."""

    # -- connection and transactions -------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the connection if it is not open."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; the next statement reopens it."""

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction: committed when it returns, rolled back when it raises."""
        self.connect()
        self._begin()
        try:
            yield
        except BaseException:
            try:
                self._rollback()
            except Exception:  # noqa: BLE001 - the connection may be gone; the original error matters
                self.close()
            raise
        self._commit()

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query; return all rows."""

    # -- dialect ------------------------------------------------------------------------------------
    @abstractmethod
    def table_columns(self, table: str) -> set[str] | None:
        """Column names of ``table`` (lowercased), or None when it does not exist."""

    @abstractmethod
    def column_type(self, kind: Kind) -> str:
        """The column type for values of ``kind``."""

    @abstractmethod
    def converter(self, kind: Kind) -> Converter | None:
        """How a decoded value of ``kind`` is passed as a parameter (None: as it is)."""

    @abstractmethod
    def now(self) -> Any:
        """The applied-at value to store (a timestamp column value)."""

    bigint: str = "BIGINT"
    timestamp: str = "TIMESTAMPTZ"

    @abstractmethod
    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition ``column IN values`` and its parameters."""

    @abstractmethod
    def add_column(self, table: str, column: str, column_type: str) -> None:
        """Add a column, tolerating that another process added it first."""

    def lock_ddl(self) -> None:  # noqa: B027 - a hook: SQLite's BEGIN IMMEDIATE already serialises
        """Inside a transaction: serialise schema changes with other sinks on the same database."""

    # -- errors -------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        """Every exception type a statement of this driver raises."""

    @abstractmethod
    def classify(self, exc: BaseException) -> ErrorClass:
        """``row`` when the error blames the data of a row, else ``transient``."""

    @abstractmethod
    def describe(self, exc: BaseException) -> str:
        """A message for ``exc`` that names the error, column or constraint, never a row's values."""


class SqliteApplyConnection(ApplyConnection):
    """SQLite through the stdlib ``sqlite3`` (needs SQLite >= 3.24 for upserts)."""

    dialect: SqliteDialect
    bigint = "INTEGER"
    timestamp = "TEXT"

    _TYPES: ClassVar[dict[Kind, str]] = {
        "int": "INTEGER",
        "long": "INTEGER",
        "boolean": "INTEGER",
        "float": "REAL",
        "double": "REAL",
        "bytes": "BLOB",
        "fixed": "BLOB",
    }
    _CONVERTERS: ClassVar[dict[Kind, Converter]] = {
        "uuid": str,
        "date": _iso,
        "time": _iso,
        "timestamp": _iso,
        "local_timestamp": _iso,
        "decimal": str,
        "json": _json_text,
    }

    def __init__(self, address: DatabaseAddress) -> None:
        super().__init__(SqliteDialect(address))
        self.path: Path = address.path
        self._conn: sqlite3.Connection | None = None

    def connect(self) -> None:
        if self._conn is not None:
            return
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so the write lock is taken before
        # the first read of a batch and two writers never deadlock on a lock upgrade.
        conn = self.dialect.connect(timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode can lose the last commits on power loss, but never tears one: rows and
        # offsets stay together, so a replay from the stored offsets repairs it.
        conn.execute("PRAGMA synchronous=NORMAL")
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def _c(self) -> sqlite3.Connection:
        self.connect()
        assert self._conn is not None
        return self._conn

    def _begin(self) -> None:
        self._c.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._c.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._c.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._c.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._c.execute(sql, params).fetchall())

    def table_columns(self, table: str) -> set[str] | None:
        rows = self.query(self.dialect.table_info_sql(check_identifier(table)))
        return {str(row[1]).lower() for row in rows} or None

    def column_type(self, kind: Kind) -> str:
        return self._TYPES.get(kind, "TEXT")

    def converter(self, kind: Kind) -> Converter | None:
        convert = self._CONVERTERS.get(kind)
        return None if convert is None else _nullable(convert)

    def now(self) -> Any:
        return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def add_column(self, table: str, column: str, column_type: str) -> None:
        try:
            self.execute(
                f"ALTER TABLE {quote_identifier(table)} ADD COLUMN {quote_identifier(column)} {column_type}"
            )
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc).lower():
                raise

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error, OverflowError)

    def classify(self, exc: BaseException) -> ErrorClass:
        if isinstance(
            exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.ProgrammingError | OverflowError
        ):
            return "row"
        return "transient"

    def describe(self, exc: BaseException) -> str:
        text = str(exc)
        constraint = _SQLITE_CONSTRAINT.match(text)
        if constraint:
            return f"{type(exc).__name__}: {constraint.group(1)} on {constraint.group(2)}"
        if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
            return f"{type(exc).__name__}: {text}"  # locked, I/O, missing table: no row values
        return type(exc).__name__


class PostgresApplyConnection(ApplyConnection):
    """PostgreSQL through psycopg 3 (``pip install exchange-hub[postgres]``).

    Raises:
        MissingDependency: psycopg 3 is not installed.
    """

    dialect: PostgresDialect

    _TYPES: ClassVar[dict[Kind, str]] = {
        "int": "INTEGER",
        "long": "BIGINT",
        "boolean": "BOOLEAN",
        "float": "REAL",
        "double": "DOUBLE PRECISION",
        "bytes": "BYTEA",
        "fixed": "BYTEA",
        "date": "DATE",
        "time": "TIME",
        "timestamp": "TIMESTAMPTZ",
        "local_timestamp": "TIMESTAMP",
        "decimal": "NUMERIC",
        "json": "JSONB",
    }

    def __init__(self, address: DatabaseAddress) -> None:
        super().__init__(PostgresDialect(address, what="the SQL sink"))
        from psycopg.types.json import Jsonb

        self._psycopg: Any = self.dialect.psycopg
        self._jsonb: Any = Jsonb
        self._conn: Any = None

    def connect(self) -> None:
        if self._conn is None:
            self._conn = self.dialect.connect(autocommit=False, connect_timeout=10)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the cause
                return

    def _begin(self) -> None:
        return  # psycopg opens the transaction at the first statement

    def _commit(self) -> None:
        self._conn.commit()

    def _rollback(self) -> None:
        if self._conn is not None:
            self._conn.rollback()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.connect()
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return int(cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.connect()
            with self._conn.cursor() as cur:
                cur.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.connect()
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def table_columns(self, table: str) -> set[str] | None:
        schema, name = table.split(".", 1) if "." in table else (None, table)
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = COALESCE(%s, current_schema()) AND table_name = %s",
            (schema, name),
        )
        return {str(row[0]).lower() for row in rows} or None

    def column_type(self, kind: Kind) -> str:
        return self._TYPES.get(kind, "TEXT")

    def converter(self, kind: Kind) -> Converter | None:
        if kind == "uuid":
            return _nullable(str)
        if kind == "json":
            jsonb = self._jsonb
            return _nullable(lambda value: jsonb(value, dumps=_json_text))
        return None

    def now(self) -> Any:
        return dt.datetime.now(dt.UTC)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def add_column(self, table: str, column: str, column_type: str) -> None:
        table_sql, column_sql = quote_identifier(table), quote_identifier(column)
        self.execute(f"ALTER TABLE {table_sql} ADD COLUMN IF NOT EXISTS {column_sql} {column_type}")

    def lock_ddl(self) -> None:
        # CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin in PostgreSQL (it fails on
        # the pg_type unique index); a transaction-scoped advisory lock makes the sinks take turns.
        self.execute("SELECT pg_advisory_xact_lock(hashtext('xhub_sink_ddl'))")

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)

    def classify(self, exc: BaseException) -> ErrorClass:
        if isinstance(exc, self._psycopg.DataError | self._psycopg.IntegrityError):
            return "row"
        return "transient"

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            return f"{type(exc).__name__}: {str(exc).strip()}"  # connection trouble: host and port only
        diag = getattr(exc, "diag", None)
        parts = [type(exc).__name__]
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate:
            parts.append(f"SQLSTATE {sqlstate}")
        for label, attr in (
            ("table", "table_name"),
            ("column", "column_name"),
            ("constraint", "constraint_name"),
        ):
            value = getattr(diag, attr, None) if diag is not None else None
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts)


_CONNECTIONS: dict[DialectName, type[SqliteApplyConnection] | type[PostgresApplyConnection]] = {
    "sqlite": SqliteApplyConnection,
    "postgresql": PostgresApplyConnection,
}


def open_apply_connection(dsn: str, *, base_dir: Path | None = None) -> ApplyConnection:
    """The ``ApplyConnection`` for a connection string (not connected yet).

    Args:
        dsn: a connection string in the grammar of ``connectors.db.address``.
        base_dir: folder that relative SQLite paths are relative to: the connector config file's (the
            connector config loader makes sink DSNs absolute with it); default the working directory.

    Raises:
        SinkConfigError: the DSN is neither a PostgreSQL DSN nor a SQLite path.
        MissingDependency: PostgreSQL without psycopg installed.
    """
    try:
        address = parse_dsn(dsn, base_dir=base_dir)
    except ValueError as exc:
        raise SinkConfigError(f"SQL sink: {exc}") from exc
    return _CONNECTIONS[address.dialect](address)


def chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``values`` in slices of at most ``size`` (SQLite limits the parameters of one statement)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
