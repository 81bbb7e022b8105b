"""What every dialect module provides: its name, parameter marker, quoting and driver errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from connectors.db.address import DatabaseAddress, DialectName
from connectors.db.identifiers import quote_name


class Dialect(ABC):
    """One database engine as the connectors use it; the source and sink layers build on it.

    Args:
        address: the parsed connection string (its ``dialect`` matches the subclass).
    """

    name: ClassVar[DialectName]
    placeholder: ClassVar[str]
    """The parameter marker of the driver: ``?`` or ``%s``."""

    def __init__(self, address: DatabaseAddress) -> None:
        if address.dialect != self.name:
            raise ValueError(f"{type(self).__name__} cannot open a {address.dialect} database")
        self.address = address

    @property
    def display(self) -> str:
        """Where the database is, without credentials."""
        return self.address.display

    @property
    @abstractmethod
    def driver_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's exception classes (every failure of a statement is one of these)."""

    def quote(self, name: str) -> str:
        """Quote a (possibly schema-qualified) name; both engines take SQL's double quotes."""
        return quote_name(name)
