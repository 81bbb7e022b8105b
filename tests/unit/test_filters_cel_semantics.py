"""Row filters follow CEL on null, missing fields and type mismatches (issue 13 point 3).

An evaluation error is "no match" and is counted on the filter; ``evaluate`` tells it apart from a plain
no match. Both engines (the subset and cel-python) give the same answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.policy.errors import FilterError
from hub.policy.filters import FilterOutcome, compile_filter

TYPES: dict[str, Any] = {
    "age": ["null", "long"],
    "flag": ["null", "boolean"],
    "x": ["null", "long"],
    "name": ["null", "string"],
    "ok": "boolean",
}
NULLS: dict[str, Any] = {"age": None, "flag": None, "x": None, "name": None, "ok": False}

ERROR, MATCH, NO_MATCH = FilterOutcome.ERROR, FilterOutcome.MATCH, FilterOutcome.NO_MATCH


@pytest.mark.parametrize("engine", ["subset", "cel"])
@pytest.mark.parametrize("expr", ["!(age < 18)", "!flag", "(x < 1) == false", '!name.startsWith("310")'])
def test_negating_an_error_on_a_null_field_is_no_match(expr: str, engine: Any) -> None:
    row_filter = compile_filter(expr, TYPES, engine=engine)
    assert row_filter(NULLS) is False
    assert row_filter.evaluate(NULLS) is ERROR
    assert row_filter.errors == 2


@pytest.mark.parametrize("engine", ["subset", "cel"])
@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("age == null", MATCH),
        ("age != null", NO_MATCH),
        ("age != 18", MATCH),  # heterogeneous equality: null equals nothing but null
        ("age == 18", NO_MATCH),
        ("age < 18", ERROR),
        ("flag", ERROR),  # null is not a condition
        ("flag == true", NO_MATCH),
        ("ok && age < 18", NO_MATCH),  # false && error = false
        ("age < 18 && ok", NO_MATCH),  # error && false = false (commutative)
        ("!ok || age < 18", MATCH),  # true || error = true
        ("age < 18 || !ok", MATCH),
        ("age < 18 || ok", ERROR),  # error || false = error
        ("!ok && age < 18", ERROR),  # true && error = error
        ("(age < 18) != true", ERROR),  # == and != propagate errors
        ("size(name) > 0", ERROR),  # size(null) is no overload
        ('name in ["a"]', NO_MATCH),
        ('name.contains("a") || true', MATCH),
    ],
)
def test_null_follows_cel(expr: str, expected: FilterOutcome, engine: Any) -> None:
    assert compile_filter(expr, TYPES, engine=engine).evaluate(NULLS) is expected


@pytest.mark.parametrize("engine", ["subset", "cel"])
@pytest.mark.parametrize(
    ("expr", "record", "expected"),
    [
        ("missing == null", {"a": 1}, ERROR),  # a field the record lacks is an error, not null
        ('!(missing == "x")', {}, ERROR),
        ("a.b == 1", {"a": {}}, ERROR),  # no such key
        ("a.b == 1", {"a": None}, ERROR),
        ("a > 1", {"a": "text"}, ERROR),  # no such overload
        ("a > 1", {"a": True}, ERROR),  # a bool is not a number
        ("a == 1", {"a": "1"}, NO_MATCH),  # equality across types is false, not an error
        ("a != 1", {"a": True}, MATCH),
        ("a == 1", {"a": 1.0}, MATCH),
        ("a < 2", {"a": 1.5}, MATCH),  # int against double by value
        ("!a", {"a": "yes"}, ERROR),
        ("a", {"a": "yes"}, ERROR),  # not a condition
        ("a && false", {"a": "yes"}, NO_MATCH),
        ("a && true", {"a": "yes"}, ERROR),
        ('"a" in a', {"a": "abc"}, ERROR),  # "in" needs a list or a map
        ("1 in a", {"a": {"k": 1}}, NO_MATCH),
        ("true in a", {"a": {"k": 1}}, NO_MATCH),  # a key type, of another type than the keys
        ("b in a", {"a": {"k": 1}, "b": None}, ERROR),  # null, bytes, lists, maps are no map keys
        ("[1] in a", {"a": {"k": 1}}, ERROR),
        ("b in a", {"a": {"k": 1}, "b": b"k"}, ERROR),
        ("b in a", {"a": [None], "b": None}, MATCH),  # a list is searched by equality
        ("a in [1, 2]", {"a": None}, NO_MATCH),
        ('a.startsWith("x")', {"a": 1}, ERROR),
        ("size(a) == 1", {"a": 5}, ERROR),
    ],
)
def test_missing_fields_and_type_mismatches_follow_cel(
    expr: str, record: dict[str, Any], expected: FilterOutcome, engine: Any
) -> None:
    assert compile_filter(expr, engine=engine).evaluate(record) is expected


@pytest.mark.parametrize(
    ("expr", "column"),
    [
        ("x == 9223372036854775808", 6),
        ("x > 0x8000000000000000", 5),
        ("x < -9223372036854775809", 6),
        ("x + 1 > 99999999999999999999", 9),  # outside the subset: checked before cel-python runs
        ("x == 18446744073709551616u", 6),
    ],
)
def test_integer_literals_are_range_checked(expr: str, column: int) -> None:
    with pytest.raises(FilterError, match="out of range") as info:
        compile_filter(expr, where="s.yaml:3")
    assert info.value.column == column
    literal = expr[column - 1 :].split(maxsplit=1)[0].rstrip("u")
    assert literal in str(info.value)


def test_int64_bounds_are_literals() -> None:
    row_filter = compile_filter(
        "x > -9223372036854775808 && x <= 9223372036854775807 && x != -0x8000000000000000"
    )
    assert row_filter.engine == "subset"
    assert row_filter({"x": 0}) is True
