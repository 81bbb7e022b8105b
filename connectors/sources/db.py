"""A department database as the SQL sources see it: consistent reads of an ordered log, and DDL.

Two dialects (``sqlite_db.SqliteDatabase``, ``postgres_db.PostgresDatabase``) differ in one essential
point, how to read a log table "in order" without losing rows:

- SQLite has one writer at a time, so AUTOINCREMENT ids become visible in increasing order: the position
  is the last id read.
- PostgreSQL assigns a BIGSERIAL id when a row is inserted, not when its transaction commits. A
  transaction holding id 7 can commit after one holding id 9; a reader that remembers "last id = 9"
  never sees 7 (the known failure of timestamp/incrementing polling). Every log row therefore records
  its transaction id (``txid xid8 DEFAULT pg_current_xact_id()``), and the position is a pair of
  PostgreSQL snapshots: the rows published are exactly those whose transaction is visible in the
  older one, plus those of the window between the two up to an id. Visibility follows commit order,
  so a late committer simply falls into a later window.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.core.errors import ConfigError

LogPos = dict[str, Any]
Row = tuple[Any, ...]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(value: str, what: str) -> str:
    """Accept a SQL identifier, optionally schema-qualified (``schema.table``); we quote it ourselves."""
    parts = value.split(".")
    if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
        raise ValueError(f'{what} "{value}" must be a plain SQL identifier (letters, digits, "_")')
    return value


@dataclass(frozen=True, slots=True)
class LogSpec:
    """Which log table to read and how.

    Attributes:
        table: identifier of the log table (unquoted; the dialect quotes it).
        columns: SQL select list; its first column must be the id.
        where: extra SQL condition with the dialect's placeholders, or "".
        params: parameters of ``where``.
    """

    table: str
    columns: str
    where: str = ""
    params: tuple[Any, ...] = ()


class Reader(ABC):
    """Queries inside one transaction of the source database."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run ``sql`` and return every row."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""


class Database(ABC):
    """One connection to a department database, used by one thread."""

    dialect: str
    ph: str
    """The parameter placeholder of the driver: ``?`` or ``%s``."""

    @property
    @abstractmethod
    def display(self) -> str:
        """Where the database is, without credentials (for logs and messages)."""

    @abstractmethod
    def connect(self) -> None:
        """Open the connection; raise SourceUnavailable when the database does not answer."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; never raises."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Reader]:
        """A read-only transaction that sees one consistent state of the whole database."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Reader]:
        """A read-write transaction, committed when the block ends without an exception."""

    # -- the transaction every read and write runs in, the same for both dialects --------------
    driver_errors: tuple[type[BaseException], ...] = ()
    """The driver's exceptions that mean "the database failed" (the connection is dropped and retried)."""

    @abstractmethod
    def _open_connection(self) -> Any:
        """The connection, opened if needed (raises SourceUnavailable)."""

    @abstractmethod
    def _reader(self, conn: Any) -> Reader:
        """A Reader over ``conn``."""

    @abstractmethod
    def _rollback(self, conn: Any) -> None:
        """Roll back an open transaction; never raises (the connection is closed next anyway)."""

    @abstractmethod
    def _unavailable(self, exc: BaseException) -> Exception:
        """The SourceUnavailable naming this database for a driver error."""

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Reader]:
        conn = self._open_connection()
        try:
            conn.execute(begin)
        except self.driver_errors as exc:
            self.close()
            raise self._unavailable(exc) from exc
        try:
            yield self._reader(conn)
            conn.execute("COMMIT")
        except self.driver_errors as exc:
            self._rollback(conn)
            self.close()
            raise self._unavailable(exc) from exc
        except BaseException:
            self._rollback(conn)
            raise

    @abstractmethod
    def quote(self, identifier: str) -> str:
        """Quote a (possibly schema-qualified) identifier."""

    @abstractmethod
    def log_start(self) -> LogPos:
        """The position before the first row any log will ever hold."""

    @abstractmethod
    def log_head(self, reader: Reader, spec: LogSpec) -> LogPos:
        """The position after every row visible to ``reader``."""

    @abstractmethod
    def log_read(
        self, reader: Reader, spec: LogSpec, pos: LogPos, limit: int
    ) -> tuple[list[Row], LogPos, bool]:
        """Read up to ``limit`` rows after ``pos`` in commit-safe order.

        Returns:
            (rows, the position after them, caught_up) where caught_up is True when the position now
            covers every row visible to ``reader`` (so a table read in the same transaction matches it).
        """

    @abstractmethod
    def published(self, spec: LogSpec, pos: LogPos) -> tuple[str, tuple[Any, ...]]:
        """SQL condition (and parameters) true for log rows certainly published at ``pos``."""

    @abstractmethod
    def table_columns(self, reader: Reader, table: str) -> list[str]:
        """Column names of ``table``, in order; empty if it does not exist."""

    @abstractmethod
    def ms_expr(self, column: str) -> str:
        """SQL expression giving ``column`` (a commit timestamp) as epoch milliseconds."""


def open_database(url: str, *, base_dir: Path, what: str) -> Database:
    """Make the Database for a connection string.

    Args:
        url: ``postgresql://...`` / ``postgres://...`` or ``host=... dbname=...`` (psycopg 3); else SQLite:
            ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's forms), ``sqlite:path`` or
            a plain file path. Relative paths are relative to ``base_dir``.
        base_dir: folder of the connector config file.
        what: names the source in errors.
    """
    if url.startswith(("postgresql://", "postgres://")) or _KEYWORD_DSN.match(url):
        from connectors.sources.postgres_db import PostgresDatabase

        return PostgresDatabase(url, what=what)
    path_text = url
    for prefix in ("sqlite:///", "sqlite:"):
        if url.startswith(prefix):
            path_text = url[len(prefix) :]
            break
    if not path_text or "://" in path_text:
        raise ConfigError(
            f'{what}: database "{redact(url)}" is neither a postgresql:// DSN nor a SQLite path'
        )
    path = Path(path_text)
    if not path.is_absolute():
        path = base_dir / path
    from connectors.sources.sqlite_db import SqliteDatabase

    return SqliteDatabase(path, what=what)


_KEYWORD_DSN = re.compile(r"^\s*(host|hostaddr|dbname|user|port|service)\s*=")


def redact(url: str) -> str:
    """A connection string without its password, for logs and messages."""
    url = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)
