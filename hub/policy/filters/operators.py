"""Runtime helpers of the subset: the closures for logic, equality, ordering, ``in``, methods, ``size``.

Specialised per constant type where a filter is hot (``field == "literal"``); see
tests/bench/filter_cost.py for what each costs per record.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from hub.policy.filters.checker import Compiled
from hub.policy.filters.row_filter import RUNTIME_ERRORS, Getter, Record
from hub.policy.filters.values import iso


def strict_bool(get: Getter) -> Callable[[Record], bool]:
    """A value used as a condition: a bool, or null (no match); anything else is a type error."""

    def condition(r: Record) -> bool:
        v = get(r)
        if v is True or v is False:
            return v
        if v is None:
            return False
        raise TypeError(f"a condition must be true or false, not a {type(v).__name__}")

    return condition


def and_(left: Callable[[Record], bool], right: Callable[[Record], bool]) -> Callable[[Record], bool]:
    """``left && right``."""

    def both(r: Record) -> bool:
        try:
            if not left(r):
                return False
        except RUNTIME_ERRORS:
            # CEL: <error> && false is false; only an error that decides the outcome propagates.
            if not right(r):
                return False
            raise
        return right(r)

    return both


def or_(left: Callable[[Record], bool], right: Callable[[Record], bool]) -> Callable[[Record], bool]:
    """``left || right``."""

    def either(r: Record) -> bool:
        try:
            if left(r):
                return True
        except RUNTIME_ERRORS:
            if right(r):
                return True
            raise
        return right(r)

    return either


def cel_eq(a: Any, b: Any) -> bool:
    """CEL equality of two values: typed for booleans, by value for numbers."""
    if a.__class__ is bool or b.__class__ is bool:
        return a.__class__ is b.__class__ and a == b
    return bool(a == b)


def equality(  # noqa: PLR0911 - one specialised closure per constant type
    left: Compiled, right: Compiled, *, negate: bool
) -> Callable[[Record], bool]:
    """``left == right`` (or ``!=`` when ``negate``), specialised when one side is a literal."""
    if left.const and not right.const:
        left, right = right, left
    get = left.get
    if right.const and left.raw is not None and (day := _iso_day(right.value)) is not None:
        return _date_comparison("!=" if negate else "==", left.raw, day, right.value)
    if right.const:
        c = right.value
        # Specialised per constant type: these are the hot filters (field == "literal").
        if c is None:
            if negate:
                return lambda r: get(r) is not None
            return lambda r: get(r) is None
        if c.__class__ is bool:
            if negate:
                return lambda r: get(r) is not c
            return lambda r: get(r) is c
        if c.__class__ is str:
            if negate:
                return lambda r: get(r) != c
            return lambda r: get(r) == c
        if c.__class__ in (int, float):

            def number_eq(r: Record) -> bool:
                v = get(r)
                return v == c and v.__class__ is not bool

            if negate:
                return lambda r: not number_eq(r)
            return number_eq
    other = right.get
    if negate:
        return lambda r: not cel_eq(get(r), other(r))
    return lambda r: cel_eq(get(r), other(r))


_ORDER_OPS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SWAPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def ordering(op: str, left: Compiled, right: Compiled) -> Callable[[Record], bool]:
    """``left <op> right`` for ``< <= > >=``, specialised when one side is a literal."""
    if left.const and not right.const:
        left, right, op = right, left, _SWAPPED[op]
    compare = _ORDER_OPS[op]
    get = left.get
    if right.const and left.raw is not None and (day := _iso_day(right.value)) is not None:
        return _date_comparison(op, left.raw, day, right.value)
    if right.const and right.value.__class__ in (int, float, str):
        c = right.value
        if c.__class__ is str:

            def text_order(r: Record) -> bool:
                v = get(r)
                return False if v is None else compare(v, c)

            return text_order

        def number_order(r: Record) -> bool:
            v = get(r)
            if v is None:
                return False
            if v.__class__ is bool:
                raise TypeError(f'"{op}" cannot order a bool against a number')
            return compare(v, c)

        return number_order
    other = right.get

    def generic_order(r: Record) -> bool:
        a, b = get(r), other(r)
        if a is None or b is None:
            return False
        if (a.__class__ is bool) is not (b.__class__ is bool) or isinstance(a, list | dict):
            raise TypeError(f'"{op}" cannot order a {type(a).__name__} against a {type(b).__name__}')
        return compare(a, b)

    return generic_order


def _iso_day(value: Any) -> date | None:
    """The date of a full ISO date constant ("2001-01-01"), else None."""
    if value.__class__ is not str or len(value) != 10 or value[4] != "-" or value[7] != "-":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _date_comparison(op: str, raw: Getter, day: date, text: str) -> Callable[[Record], bool]:
    """A date field against a full ISO date: a ``date`` compares as is, with no ISO text per record.

    Same result as comparing the ISO text, which is what the field means in an expression.
    """
    compare = {**_ORDER_OPS, "==": operator.eq, "!=": operator.ne}[op]

    def date_compare(r: Record) -> bool:
        v = raw(r)
        if v.__class__ is date:
            return bool(compare(v, day))
        v = iso(v, "date")
        if v is None:
            return op == "!="
        return bool(compare(v, text))

    return date_compare


def membership(left: Compiled, right: Compiled) -> Callable[[Record], bool]:
    """``left in right``: a list by equality, a map by key."""
    get = left.get
    if right.const:
        items: Sequence[Any] = right.value
        if all(item.__class__ is str for item in items):
            strings = frozenset(items)

            def in_strings(r: Record) -> bool:
                try:
                    return get(r) in strings
                except TypeError:  # an unhashable value (a list) is in no list of strings
                    return False

            return in_strings
        if all(item.__class__ in (int, float) for item in items):
            numbers = frozenset(items)

            def in_numbers(r: Record) -> bool:
                v = get(r)
                try:
                    return v in numbers and v.__class__ is not bool
                except TypeError:
                    return False

            return in_numbers
        fixed = tuple(items)
        return lambda r: _in(get(r), fixed)
    container = right.get
    return lambda r: _in(get(r), container(r))


def _in(v: Any, container: Any) -> bool:
    if container is None or (v is None and not isinstance(container, list | tuple)):
        return False
    if isinstance(container, list | tuple):
        return any(cel_eq(v, item) for item in container)
    if isinstance(container, dict):
        try:
            return v in container
        except TypeError:
            return False
    raise TypeError(f'"in" needs a list or a map, not a {type(container).__name__}')


def size_of(v: Any) -> int | None:
    """CEL ``size()`` of a value."""
    if v is None:
        return None
    if isinstance(v, str | bytes | list | tuple | dict):
        return len(v)
    raise TypeError(f"size() cannot measure a {type(v).__name__}")


def string_method(name: str, target: Compiled, arg: Compiled) -> Callable[[Record], bool]:
    """``target.<name>(arg)`` for ``startsWith``, ``endsWith`` and ``contains``."""
    method: Callable[[str, str], bool] = {
        "startsWith": str.startswith,
        "endsWith": str.endswith,
        "contains": str.__contains__,
    }[name]
    get = target.get
    if arg.const:
        c = arg.value
        if c is None:
            return lambda _r: False

        def with_constant(r: Record) -> bool:
            v = get(r)
            if v.__class__ is str:
                return method(v, c)
            if v is None:
                return False
            raise TypeError(f"{name}() needs text, not a {type(v).__name__}")

        return with_constant
    other = arg.get

    def with_value(r: Record) -> bool:
        v, w = get(r), other(r)
        if v is None or w is None:
            return False
        if isinstance(v, str) and isinstance(w, str):
            return method(v, w)
        raise TypeError(f"{name}() needs text, not a {type(v).__name__} and a {type(w).__name__}")

    return with_value
