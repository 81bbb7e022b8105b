"""PostgreSQL through psycopg 3, an optional dependency (``pip install exchange-hub[postgres]``)."""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.db.address import DatabaseAddress
from connectors.db.dialect import Dialect
from connectors.errors import MissingDependency


def import_psycopg(what: str) -> Any:
    """The psycopg module; the import guard of the ``postgres`` extra.

    Args:
        what: names who needs it (``source "hukou"``, ``the SQL sink``), for the message.

    Raises:
        MissingDependency: psycopg 3 is not installed; the message names the extra to install.
    """
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependency(
            f"{what} needs PostgreSQL support: pip install exchange-hub[postgres] ({exc})"
        ) from exc
    return psycopg


class PostgresDialect(Dialect):
    """A PostgreSQL database.

    Args:
        address: a ``postgresql`` address.
        what: names who opens it, for the message when psycopg is missing.

    Raises:
        MissingDependency: psycopg 3 is not installed.
    """

    name: ClassVar = "postgresql"
    placeholder: ClassVar = "%s"

    def __init__(self, address: DatabaseAddress, *, what: str) -> None:
        super().__init__(address)
        self.psycopg: Any = import_psycopg(what)

    @property
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (self.psycopg.Error,)

    def connect(self, *, autocommit: bool, connect_timeout: int) -> Any:
        """A new psycopg connection.

        Raises:
            psycopg.Error: the server does not answer or refuses the login.
        """
        return self.psycopg.connect(
            self.address.target, autocommit=autocommit, connect_timeout=connect_timeout
        )
