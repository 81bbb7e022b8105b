"""Connection strings of department databases: one grammar for sources and sinks, one redaction.

Accepted, wherever a connector names a database (a source's ``database``, a SQL sink's ``dsn``):

- PostgreSQL: ``postgresql://...`` or ``postgres://...`` URLs, or psycopg keyword strings
  (``host=... dbname=...``);
- SQLite: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's forms), ``sqlite:path``
  or a plain file path.

A relative SQLite path is relative to ``base_dir``: the folder of the connector config file, for sources
and sinks alike (the working directory when a source or sink is built in code without one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DialectName = Literal["sqlite", "postgresql"]

_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_SQLITE_PREFIXES = ("sqlite:///", "sqlite:")
_KEYWORD_DSN = re.compile(r"^\s*(host|hostaddr|dbname|user|port|service)\s*=")


@dataclass(frozen=True, slots=True)
class DatabaseAddress:
    """Where a database is: its dialect and what its driver connects to.

    Attributes:
        dialect: ``sqlite`` or ``postgresql``.
        target: the absolute file path (SQLite) or the DSN as written (PostgreSQL, may hold a password).
    """

    dialect: DialectName
    target: str

    @property
    def path(self) -> Path:
        """The SQLite file (only for ``dialect == "sqlite"``)."""
        return Path(self.target)

    @property
    def dsn(self) -> str:
        """The address as a connection string in its canonical form (``sqlite:////abs.db`` for SQLite)."""
        return f"sqlite:///{self.target}" if self.dialect == "sqlite" else self.target

    @property
    def display(self) -> str:
        """Where the database is, without credentials (for logs and messages)."""
        return f"sqlite:{self.target}" if self.dialect == "sqlite" else redact(self.target)


def parse_dsn(text: str, *, base_dir: Path | None = None) -> DatabaseAddress:
    """Read a connection string (see the module docstring for the grammar).

    Args:
        text: the connection string.
        base_dir: folder that relative SQLite paths are relative to (default: the working directory).

    Raises:
        ValueError: ``text`` is neither a PostgreSQL DSN nor a SQLite path (the message is redacted).
    """
    if text.startswith(_POSTGRES_PREFIXES) or _KEYWORD_DSN.match(text):
        return DatabaseAddress("postgresql", text)
    path_text = text
    for prefix in _SQLITE_PREFIXES:
        if text.startswith(prefix):
            path_text = text[len(prefix) :]
            break
    if not path_text or "://" in path_text:
        raise ValueError(f'database "{redact(text)}" is neither a postgresql:// DSN nor a SQLite path')
    path = Path(path_text)
    if not path.is_absolute():
        path = ((base_dir or Path.cwd()) / path).resolve()
    return DatabaseAddress("sqlite", str(path))


def redact(text: str) -> str:
    """A connection string without its password (URL or keyword form), for logs and messages."""
    text = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", text)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", text)
