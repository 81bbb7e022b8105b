"""The compiled row filter, the object a plan holds and calls once per record."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Literal

Record = Mapping[str, Any]
Getter = Callable[[Record], Any]
Engine = Literal["subset", "cel"]

RUNTIME_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)
"""What a closure raises for a CEL error ("no such overload", "no such key"): the record does not match."""


class FilterOutcome(enum.Enum):
    """What a row filter made of one record. Only ``MATCH`` delivers it."""

    MATCH = "match"
    NO_MATCH = "no_match"
    ERROR = "error"
    """The expression evaluated to a CEL error (a null or missing field, a type mismatch): no match."""


class RowFilter:
    """A compiled row filter. Call it on a decoded record: ``keep = row_filter(record)``.

    Evaluation follows CEL: a null or missing field or a value of the wrong type makes the operation on it
    an error, which ``!`` and ``==`` pass on and ``&&``/``||`` absorb as CEL does (``false && error`` is
    false, ``true || error`` is true). A record on which the whole expression is an error, or is not a
    bool, does not match, and ``errors`` counts it.

    Attributes:
        expr: the expression as written.
        fields: top-level field names the expression reads.
        engine: ``"subset"`` (closures compiled here) or ``"cel"`` (cel-python's interpreter).
        errors: records on which the expression was an error (counted by ``__call__`` and ``evaluate``).
    """

    __slots__ = ("_fn", "engine", "errors", "expr", "fields")

    def __init__(
        self, expr: str, fields: frozenset[str], engine: Engine, fn: Callable[[Record], bool]
    ) -> None:
        self.expr = expr
        self.fields = fields
        self.engine: Engine = engine
        self.errors = 0
        self._fn = fn

    def __call__(self, record: Record) -> bool:
        """Whether ``record`` passes the filter; an evaluation error is no match (and counted).

        Raises:
            FilterRuntimeError: only when the record holds a value that has no CEL equivalent or
                cel-python itself fails (an ``InvalidRecord``: the engine dead-letters it).
        """
        try:
            return self._fn(record)
        except RUNTIME_ERRORS:
            self.errors += 1
            return False

    def evaluate(self, record: Record) -> FilterOutcome:
        """Like ``__call__``, but tells an evaluation error apart from a plain no match.

        Raises:
            FilterRuntimeError: as for ``__call__``.
        """
        try:
            return FilterOutcome.MATCH if self._fn(record) else FilterOutcome.NO_MATCH
        except RUNTIME_ERRORS:
            self.errors += 1
            return FilterOutcome.ERROR

    def __repr__(self) -> str:
        return f"RowFilter({self.expr!r}, engine={self.engine!r})"
