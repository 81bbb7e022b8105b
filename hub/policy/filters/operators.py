"""Runtime helpers of the subset: the closures for logic, equality, ordering, ``in``, methods, ``size``.

Specialised per constant type where a filter is hot (``field == "literal"``); see
tests/bench/filter_cost.py for what each costs per record.

CEL semantics: a closure returns a bool or raises one of ``RUNTIME_ERRORS`` for a CEL error. Equality
is heterogeneous (values of different types are unequal, never an error; ``null`` equals only
``null``; numbers compare by value, an int against a double as a double); ordering, ``!``, ``in``,
methods and ``size`` on a null or on a value of the wrong type are errors, and so is looking up in a
map a value that cannot be a map key (null, bytes, a list or a map).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from hub.policy.filters.checker import Compiled
from hub.policy.filters.row_filter import RUNTIME_ERRORS, Getter, Record
from hub.policy.filters.values import iso


def strict_bool(get: Getter) -> Callable[[Record], bool]:
    """A value used as a condition: a bool; anything else (null too) is a CEL error."""

    def condition(r: Record) -> bool:
        v = get(r)
        if v is True or v is False:
            return v
        raise TypeError(f"a condition must be true or false, not a {type(v).__name__}")

    return condition


def and_(left: Callable[[Record], bool], right: Callable[[Record], bool]) -> Callable[[Record], bool]:
    """``left && right``; operands are conditions (a bool or a raised error)."""

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
    """``left || right``; operands are conditions (a bool or a raised error)."""

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


_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})
_ORDERABLE = frozenset({str, int, float, bool, bytes})


def _as_number(v: Any) -> int | float | None:
    """``v`` as a CEL number (int or double; a decimal is a double), or None; a bool is not a number."""
    cls = v.__class__
    if cls is int or cls is float:
        return v  # type: ignore[no-any-return]
    if cls is Decimal:
        return float(v)
    return None


def cel_eq(a: Any, b: Any) -> bool:
    """CEL's heterogeneous equality: never an error; different kinds are unequal; numbers by value."""
    cls = a.__class__
    if cls is b.__class__ and cls in _SCALARS:
        return bool(a == b)
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return float(x) == float(y) if x.__class__ is not y.__class__ else x == y
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(cel_eq, a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and cel_eq(v, b[k]) for k, v in a.items())
    if cls is b.__class__ and cls not in _SCALARS:
        return bool(a == b)  # other values of one type (e.g. decoded dates) compare as Python does
    return False


def cel_order(compare: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    """``compare(a, b)`` for CEL's ordering: numbers by value, else both of one orderable type."""
    cls = a.__class__
    if cls is b.__class__ and cls in _ORDERABLE:
        return compare(a, b)
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        raise TypeError(f"cannot order a {type(a).__name__} against a {type(b).__name__}")
    if x.__class__ is not y.__class__:
        return compare(float(x), float(y))  # as CEL: an int against a double compares as a double
    return compare(x, y)


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
            same = c.__class__

            def number_eq(r: Record) -> bool:
                v = get(r)
                return v == c if v.__class__ is same else cel_eq(v, c)

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
        same = c.__class__

        def literal_order(r: Record) -> bool:
            v = get(r)
            return compare(v, c) if v.__class__ is same else cel_order(compare, v, c)

        return literal_order
    other = right.get
    return lambda r: cel_order(compare, get(r), other(r))


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
    equality = op in ("==", "!=")

    def date_compare(r: Record) -> bool:
        v = raw(r)
        if v.__class__ is date:
            return bool(compare(v, day))
        v = iso(v, "date")
        if equality:
            return cel_eq(v, text) is (op == "==")
        return cel_order(compare, v, text)

    return date_compare


def membership(left: Compiled, right: Compiled) -> Callable[[Record], bool]:
    """``left in right``: a list by equality, a map by key."""
    get = left.get
    if right.const:
        items: Sequence[Any] = right.value
        if all(item.__class__ is str for item in items):
            strings = frozenset(items)

            def in_strings(r: Record) -> bool:
                v = get(r)
                return v.__class__ is str and v in strings  # anything else equals no string

            return in_strings
        if all(item.__class__ in (int, float) for item in items):
            ints = frozenset(item for item in items if item.__class__ is int)
            doubles = frozenset(float(item) for item in items if item.__class__ is float)
            as_doubles = frozenset(float(item) for item in items)

            def in_numbers(r: Record) -> bool:
                v = get(r)
                if v.__class__ is int:
                    return v in ints or float(v) in doubles
                number = _as_number(v)
                return number is not None and float(number) in as_doubles

            return in_numbers
        fixed = tuple(items)
        return lambda r: _in(get(r), fixed)
    container = right.get
    return lambda r: _in(get(r), container(r))


_KEY_TYPES = (str, bool, int, float, Decimal)
"""What may be looked up in a map: CEL's key types (string, bool, int; a double by numeric value)."""


def _in(v: Any, container: Any) -> bool:
    if isinstance(container, list | tuple):
        return any(cel_eq(v, item) for item in container)
    if isinstance(container, Mapping):
        if v.__class__ is str:
            return v in container
        if not isinstance(v, _KEY_TYPES):
            # CEL map keys are int, uint, bool or string (langdef "Aggregate Values"): a null, bytes, list
            # or map is no key, and looking it up is "no matching overload", as cel-cpp has it.
            raise TypeError(f'"in" cannot look up a {type(v).__name__} in a map')
        return any(cel_eq(v, key) for key in container)
    raise TypeError(f'"in" needs a list or a map, not a {type(container).__name__}')


def size_of(v: Any) -> int:
    """CEL ``size()`` of a value: text (in code points), bytes, a list or a map; else an error."""
    if isinstance(v, str | bytes | list | tuple | Mapping):
        return len(v)
    raise TypeError(f"size() cannot measure a {type(v).__name__}")


def string_method(name: str, target: Compiled, arg: Compiled) -> Callable[[Record], bool]:
    """``target.<name>(arg)`` for ``startsWith``, ``endsWith`` and ``contains``: text only, else an error."""
    method: Callable[[str, str], bool] = {
        "startsWith": str.startswith,
        "endsWith": str.endswith,
        "contains": str.__contains__,
    }[name]
    get = target.get
    if arg.const and arg.value.__class__ is str:
        c = arg.value

        def with_constant(r: Record) -> bool:
            v = get(r)
            if v.__class__ is str:
                return method(v, c)
            raise TypeError(f"{name}() needs text, not a {type(v).__name__}")

        return with_constant
    other = arg.get

    def with_value(r: Record) -> bool:
        v, w = get(r), other(r)
        if isinstance(v, str) and isinstance(w, str):
            return method(v, w)
        raise TypeError(f"{name}() needs text, not a {type(v).__name__} and a {type(w).__name__}")

    return with_value
