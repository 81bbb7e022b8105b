"""A department database as the SQL sources see it: consistent reads of an ordered log, and DDL.

``ChangeLogConnection`` builds on ``connectors.db`` (connection string, dialect, quoting). Its two
dialects (``sqlite.SqliteChangeLogConnection``, ``postgres.PostgresChangeLogConnection``) differ in one
essential point, how to read a log table "in order" without losing rows:

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

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from connectors.db import Dialect

LogPos = dict[str, Any]
Row = tuple[Any, ...]


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


class ChangeLogConnection(ABC):
    """One connection to a department database, used by one thread of a source.

    Args:
        dialect: the engine and address (``connectors.db``).
        what: names the source in errors.
    """

    def __init__(self, dialect: Dialect, *, what: str) -> None:
        self.dialect = dialect
        self.what = what
        self.ph = dialect.placeholder
        """The parameter placeholder of the driver: ``?`` or ``%s``."""
        self.driver_errors = dialect.driver_errors
        """The driver's exceptions that mean "the database failed" (the connection is dropped and retried)."""

    @property
    def display(self) -> str:
        """Where the database is, without credentials (for logs and messages)."""
        return self.dialect.display

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

    def quote(self, identifier: str) -> str:
        """Quote a (possibly schema-qualified) identifier."""
        return self.dialect.quote(identifier)

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
    def backlog(self, reader: Reader, spec: LogSpec, pos: LogPos, commit_ms: str) -> tuple[int, int | None]:
        """(rows visible to ``reader`` not yet published at ``pos``, the smallest ``commit_ms`` among them).

        ``commit_ms`` is an SQL expression of a row's commit time in epoch milliseconds (``ms_expr``). The
        count runs on the log's index (SQLite: the id; PostgreSQL: the transaction id), so a long log of
        published rows costs nothing. Used by the sidecar's backlog report (``xhub lag``).
        """

    @abstractmethod
    def table_columns(self, reader: Reader, table: str) -> list[str]:
        """Column names of ``table``, in order; empty if it does not exist."""

    @abstractmethod
    def ms_expr(self, column: str) -> str:
        """SQL expression giving ``column`` (a commit timestamp) as epoch milliseconds."""
