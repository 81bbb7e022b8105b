"""The change-log layer of the SQL sources on top of ``connectors.db``: commit-safe reads of a log table.

``open_change_log`` picks the dialect's connection class from an explicit mapping; the dialect modules
import ``base``, never the reverse.
"""

from __future__ import annotations

from pathlib import Path

from connectors.db import DialectName, parse_dsn
from connectors.sources.changelog.base import ChangeLogConnection, LogPos, LogSpec, Reader, Row
from connectors.sources.changelog.postgres import PostgresChangeLogConnection
from connectors.sources.changelog.sqlite import SqliteChangeLogConnection
from hub.core.errors import ConfigError

_CONNECTIONS: dict[DialectName, type[SqliteChangeLogConnection] | type[PostgresChangeLogConnection]] = {
    "sqlite": SqliteChangeLogConnection,
    "postgresql": PostgresChangeLogConnection,
}


def open_change_log(text: str, *, base_dir: Path, what: str) -> ChangeLogConnection:
    """The (not yet connected) change-log connection for a connection string.

    Args:
        text: a connection string in the grammar of ``connectors.db.address`` (relative SQLite paths are
            relative to ``base_dir``).
        base_dir: folder of the connector config file.
        what: names the source in errors.

    Raises:
        ConfigError: the string is neither a PostgreSQL DSN nor a SQLite path.
        MissingDependency: a PostgreSQL database without psycopg installed.
    """
    try:
        address = parse_dsn(text, base_dir=base_dir)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    return _CONNECTIONS[address.dialect](address, what=what)


__all__ = [
    "ChangeLogConnection",
    "LogPos",
    "LogSpec",
    "PostgresChangeLogConnection",
    "Reader",
    "Row",
    "SqliteChangeLogConnection",
    "open_change_log",
]
