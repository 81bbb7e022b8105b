"""SQLite through the standard library's ``sqlite3``."""

from __future__ import annotations

import sqlite3
from typing import ClassVar

from connectors.db.dialect import Dialect
from connectors.db.identifiers import quote_name


class SqliteDialect(Dialect):
    """A SQLite database file."""

    name: ClassVar = "sqlite"
    placeholder: ClassVar = "?"

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def connect(self, *, timeout: float, check_same_thread: bool = True) -> sqlite3.Connection:
        """Open the file in autocommit mode (``isolation_level=None``): the callers issue BEGIN themselves.

        Args:
            timeout: how long a statement waits for another writer's lock, in seconds.
            check_same_thread: sqlite3's guard against use from another thread.

        Raises:
            sqlite3.Error: the file cannot be opened.
        """
        return sqlite3.connect(
            self.address.path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread
        )

    @staticmethod
    def table_info_sql(table: str) -> str:
        """The PRAGMA listing the columns of ``table`` (optionally ``schema.table``); column 1 is the name."""
        if "." in table:
            schema, name = table.split(".", 1)
            return f"PRAGMA {quote_name(schema)}.table_info({quote_name(name)})"
        return f"PRAGMA table_info({quote_name(table)})"

    @staticmethod
    def now_ms_sql() -> str:
        """SQL giving the current time in epoch milliseconds (used in triggers and defaults)."""
        return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
