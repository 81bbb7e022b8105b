"""The compiled row filter, the object a plan holds and calls once per record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from hub.policy.errors import FilterRuntimeError

Record = Mapping[str, Any]
Getter = Callable[[Record], Any]
Engine = Literal["subset", "cel"]

RUNTIME_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)


class RowFilter:
    """A compiled row filter. Call it on a decoded record: ``keep = row_filter(record)``.

    Attributes:
        expr: the expression as written.
        fields: top-level field names the expression reads.
        engine: ``"subset"`` (closures compiled here) or ``"cel"`` (cel-python's interpreter).
    """

    __slots__ = ("_fn", "engine", "expr", "fields")

    def __init__(
        self, expr: str, fields: frozenset[str], engine: Engine, fn: Callable[[Record], bool]
    ) -> None:
        self.expr = expr
        self.fields = fields
        self.engine: Engine = engine
        self._fn = fn

    def __call__(self, record: Record) -> bool:
        """Whether ``record`` passes the filter.

        Raises:
            FilterRuntimeError: the filter cannot be evaluated on this record (an ``InvalidRecord``: the
                engine dead-letters it). Its message names types and fields, never values.
        """
        try:
            return self._fn(record)
        except RUNTIME_ERRORS as exc:
            detail = str(exc) if isinstance(exc, TypeError | AttributeError) else type(exc).__name__
            only = next(iter(self.fields)) if len(self.fields) == 1 else None
            raise FilterRuntimeError(
                f"row filter {self.expr!r} cannot be evaluated on this record: {detail}",
                expr=self.expr,
                field=only,
            ) from exc

    def __repr__(self) -> str:
        return f"RowFilter({self.expr!r}, engine={self.engine!r})"
