"""The two databases the SQL sink writes to: SQLite (stdlib) and PostgreSQL (psycopg 3, optional).

Each ``Database`` hides what differs: connecting, transactions, the parameter marker, column types per
kind (see ``sql_types``), value converters, and which driver errors are transient (retry the batch) and
which blame one row (dead-letter that row, apply the rest).

DSNs: ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (SQLAlchemy's spelling) or
``postgresql://user:password@host:port/database`` (``postgres://`` too).
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
from typing import Any, ClassVar, Literal

from connectors.sinks.errors import MissingDependency, SinkConfigError
from connectors.sinks.json_format import json_default
from connectors.sinks.sql_types import IDENTIFIER, Kind

Converter = Callable[[Any], Any]
ErrorClass = Literal["transient", "row"]

_SQLITE_PREFIX = "sqlite:///"
_PG_PREFIXES = ("postgresql://", "postgres://")
_SQLITE_CONSTRAINT = re.compile(r"^(\w+ constraint failed): ([\w.]+)")


def quote(name: str) -> str:
    """Quote an identifier (optionally ``schema.table``) after checking it is a plain identifier.

    Raises:
        SinkConfigError: a part is not ``[A-Za-z_][A-Za-z0-9_]*`` of at most 63 characters.
    """
    parts = name.split(".")
    for part in parts:
        if not IDENTIFIER.match(part):
            raise SinkConfigError(
                f"SQL identifier {name!r}: {part!r} must be letters, digits and '_' (at most 63, not "
                "starting with a digit)"
            )
    return ".".join(f'"{part}"' for part in parts)


def _nullable(convert: Converter) -> Converter:
    def run(value: Any) -> Any:
        return None if value is None else convert(value)

    return run


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.time) else value


_json_text = partial(json.dumps, default=json_default, ensure_ascii=False, separators=(",", ":"))


class Database(ABC):
    """One database connection, opened lazily, reopened after a transient failure."""

    name: str
    param: str
    """The parameter marker of the driver."""

    def __init__(self, where: str) -> None:
        self.where = where
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


class SqliteDatabase(Database):
    """SQLite through the stdlib ``sqlite3`` (needs SQLite >= 3.24 for upserts)."""

    name = "sqlite"
    param = "?"
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

    def __init__(self, path: str) -> None:
        super().__init__(f"sqlite {path}")
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def connect(self) -> None:
        if self._conn is not None:
            return
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so the write lock is taken before
        # the first read of a batch and two writers never deadlock on a lock upgrade.
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
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
        if "." in table:
            schema, name = table.split(".", 1)
            rows = self.query(f"PRAGMA {quote(schema)}.table_info({quote(name)})")
        else:
            rows = self.query(f"PRAGMA table_info({quote(table)})")
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
            self.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column)} {column_type}")
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


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3 (``pip install exchange-hub[postgres]``)."""

    name = "postgresql"
    param = "%s"

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

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
            from psycopg.types.json import Jsonb
        except ImportError as exc:
            raise MissingDependency(
                "the SQL sink needs psycopg for PostgreSQL: pip install exchange-hub[postgres]"
            ) from exc
        super().__init__(f"postgresql {_without_password(dsn)}")
        self._psycopg: Any = psycopg
        self._jsonb: Any = Jsonb
        self._dsn = dsn
        self._conn: Any = None

    def connect(self) -> None:
        if self._conn is None:
            self._conn = self._psycopg.connect(self._dsn, autocommit=False, connect_timeout=10)

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
        self.execute(f"ALTER TABLE {quote(table)} ADD COLUMN IF NOT EXISTS {quote(column)} {column_type}")

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


def _without_password(dsn: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", dsn)


def open_database(dsn: str) -> Database:
    """The ``Database`` for a DSN (not connected yet).

    Raises:
        SinkConfigError: the DSN is neither ``sqlite:///...`` nor ``postgresql://...``.
        MissingDependency: PostgreSQL without psycopg installed.
    """
    if dsn.startswith(_SQLITE_PREFIX):
        path = dsn[len(_SQLITE_PREFIX) :]
        if not path:
            raise SinkConfigError(
                "sqlite DSN has no file path: write sqlite:///relative.db or sqlite:////abs.db"
            )
        return SqliteDatabase(path)
    if dsn.startswith(_PG_PREFIXES):
        return PostgresDatabase(dsn)
    raise SinkConfigError(
        f"SQL sink DSN must start with sqlite:/// or postgresql://, not {_without_password(dsn)[:20]!r}"
    )


def chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``values`` in slices of at most ``size`` (SQLite limits the parameters of one statement)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
