"""Errors of the policy package, grouped by what the caller should do.

- ``PolicyError``: a policy cannot be built (unknown mask kind, pseudonym without a secret). The config
  layer turns it into a ``ConfigError`` with the file and line of the offending entry.
- ``PlanError``: a subscription does not compile (masks that cannot apply to their fields, a filter that
  does not compile); carries every ``PlanProblem`` with its place in the subscription.
- ``FilterError``: a row filter does not compile; carries the 1-based ``column`` in the expression so the
  config layer can point at the exact character.
- ``FilterRuntimeError`` / ``MaskRuntimeError``: one record could not be filtered or masked. They are
  also ``InvalidRecord``, so the engine dead-letters the record and the stream goes on. Their messages
  name fields and types, never the personal values involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hub.core.errors import HubError, InvalidRecord


class PolicyError(HubError):
    """A sharing policy (masks, row filter) is invalid. Fix the subscription or the hub config."""


@dataclass(frozen=True)
class PlanProblem:
    """One reason a subscription does not compile.

    Attributes:
        path: where in the subscription, e.g. ``("masks", "debtor_type")`` or ``("filter",)``; the config
            layer turns it into a file and line.
        message: what is wrong, naming the field, e.g. ``'field "x": mask "phone" cannot apply to ...'``.
    """

    path: tuple[str, ...]
    message: str


class PlanError(PolicyError):
    """A subscription does not compile into a plan. ``problems`` lists every reason, not just the first."""

    def __init__(self, subscription: str, problems: Sequence[PlanProblem]) -> None:
        super().__init__(f'subscription "{subscription}": ' + "; ".join(p.message for p in problems))
        self.subscription = subscription
        self.problems = tuple(problems)


class FilterError(PolicyError):
    """A row filter expression does not compile.

    Attributes:
        reason: what is wrong, without the ``where`` prefix, e.g.
            ``'row filter: unknown field "distrct" at column 1 (fields: district, status)'``.
        column: 1-based position in the expression of the offending character.
        expr: the expression as written.
        where: free text naming the subscription or file, as passed to ``compile_filter``.
    """

    def __init__(self, reason: str, *, column: int, expr: str, where: str = "") -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.column = column
        self.expr = expr
        self.where = where


class FilterRuntimeError(PolicyError, InvalidRecord):
    """A row filter could not be evaluated on one record (e.g. a field of an unexpected type).

    The engine dead-letters the record with ``reason == "row_filter_failed"``; the stream goes on.
    """

    def __init__(self, detail: str, *, expr: str, field: str | None = None) -> None:
        InvalidRecord.__init__(self, "row_filter_failed", detail, field=field)
        self.expr = expr


class MaskRuntimeError(PolicyError, InvalidRecord):
    """A mask could not be applied to one value (e.g. a date mask on text that is not a date).

    The engine dead-letters the record with ``reason == "mask_failed"``; the stream goes on. ``field`` is
    unset here (a mask does not know which field it is applied to); the plan fills it in.
    """

    def __init__(self, detail: str, *, kind: str, field: str | None = None) -> None:
        InvalidRecord.__init__(self, "mask_failed", detail, field=field)
        self.kind = kind
