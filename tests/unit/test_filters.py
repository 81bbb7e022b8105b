"""Row filters: the CEL subset's grammar and semantics, error columns, the cel-python fallback, and
agreement between the two engines on random records (hypothesis)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.errors import InvalidRecord
from hub.policy.errors import FilterError, FilterRuntimeError, PolicyError
from hub.policy.filters import FilterOutcome, RowFilter, compile_filter

TYPES: dict[str, Any] = {
    "district": "string",
    "status": ["null", "string"],
    "name": "string",
    "age": "int",
    "score": ["null", "double"],
    "flag": "boolean",
    "other": ["null", "boolean"],
    "tags": {"type": "array", "items": "string"},
    "attrs": {"type": "map", "values": "string"},
    "photo": ["null", "bytes"],
    "birth": {"type": "int", "logicalType": "date"},
    "seen": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
    "addr": {
        "type": "record",
        "name": "Address",
        "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "string"]}],
    },
}

RECORD: dict[str, Any] = {
    "district": "浦东新区",
    "status": "在业",
    "name": "上海某某科技有限公司",
    "age": 30,
    "score": None,
    "flag": True,
    "other": None,
    "tags": ["a", "b"],
    "attrs": {"k": "v"},
    "photo": None,
    "birth": dt.date(1985, 3, 7),
    "seen": dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC),
    "addr": {"city": "上海", "zip": None},
}


def run(expr: str, record: dict[str, Any] | None = None, types: dict[str, Any] | None = TYPES) -> bool:
    row_filter = compile_filter(expr, types)
    assert row_filter.engine == "subset", expr
    return row_filter(RECORD if record is None else record)


def compile_error(expr: str, types: dict[str, Any] | None = TYPES) -> FilterError:
    with pytest.raises(FilterError) as info:
        compile_filter(expr, types, where="subscriptions/tax.yaml:12")
    return info.value


# --- literals and the tokenizer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('"abc" == "abc"', True),
        ("'abc' == \"abc\"", True),
        (r'"a\"b" == ' + "'a\"b'", True),
        (r'"\u4e2d" == "中"', True),
        (r'"\x41\101\n" == "AA' + "\\n" + '"', True),
        (r"'\'' == " + '"' + "'" + '"', True),
        ("10 == 0xA", True),
        ("1.5e3 == 1500.0", True),
        ("2E-1 == 0.2", True),
        ("-1 < 0", True),
        ("- 2.5 < -2.0", True),
        ("1 == 1.0", True),
        ("true == true && false == false", True),
        ("null == null", True),
        ("[1, 2,] == [1, 2]", True),
        ("[] == []", True),
        ('"b" > "a"', True),
        ("!false", True),
        ("!!true", True),
        ("// a comment\n true", True),
    ],
)
def test_literals(expr: str, expected: bool) -> None:
    assert run(expr) is expected


# --- precedence: ! > comparisons > && > || ---------------------------------------------------------

BOOLS = [dict(zip("abc", values, strict=True)) for values in itertools.product([True, False], repeat=3)]


@pytest.mark.parametrize(
    ("expr", "reference"),
    [
        ("a || b && c", lambda a, b, c: a or (b and c)),
        ("a && b || c", lambda a, b, c: (a and b) or c),
        ("!a || b", lambda a, b, c: (not a) or b),
        ("!(a || b)", lambda a, b, c: not (a or b)),
        ("!a == b", lambda a, b, c: (not a) == b),  # ! binds tighter than ==, as in CEL
        ("a == b && c", lambda a, b, c: (a == b) and c),
        ("a == b == c", lambda a, b, c: (a == b) == c),  # left-associative
        ("a != b || !c && a", lambda a, b, c: (a != b) or ((not c) and a)),
        ("(a || b) && c", lambda a, b, c: (a or b) and c),
        ("!!a", lambda a, b, c: a),
        ("a && b && c || !a && !b", lambda a, b, c: (a and b and c) or ((not a) and (not b))),
    ],
)
def test_precedence(expr: str, reference: Any) -> None:
    types = {"a": "boolean", "b": "boolean", "c": "boolean"}
    row_filter = compile_filter(expr, types)
    for record in BOOLS:
        assert row_filter(record) is reference(**record), record


def test_comparisons_bind_tighter_than_logic() -> None:
    assert run("age > 18 && age < 65 || district == 'x'") is True
    assert run("age < 18 || age > 65 && flag") is False


# --- fields ---------------------------------------------------------------------------------------


def test_field_references() -> None:
    assert run('district == "浦东新区"') is True
    assert run('record.district == "浦东新区"') is True
    assert run('addr.city == "上海" && record.addr.city == "上海"') is True
    assert run("addr.zip == null") is True
    row_filter = compile_filter('record.district == "x" || addr.city == "y" || age > 1', TYPES)
    assert row_filter.fields == {"district", "addr", "age"}
    assert row_filter.expr == 'record.district == "x" || addr.city == "y" || age > 1'
    assert isinstance(row_filter, RowFilter)
    assert "subset" in repr(row_filter)


def test_untyped_fields_and_missing_keys_are_errors() -> None:
    assert run('district == "浦东新区"', types=None) is True
    # CEL: a field the record lacks is "no such key", an error (no match), not null.
    assert compile_filter("nothing == null").evaluate({"a": 1}) is FilterOutcome.ERROR
    assert compile_filter('nothing != "x"').evaluate({}) is FilterOutcome.ERROR
    assert run('a.b.c == "x"', {"a": {"b": {"c": "x"}}}, types=None) is True
    assert run('a.b.c == "x"', {"a": None}, types=None) is False


# --- comparisons and null semantics ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("score == null", True),
        ("score != null", False),
        ("score == 1.5", False),
        ("score != 1.5", True),  # null equals nothing but null
        ("score > 1.5", False),  # ordering with null: no match
        ("score <= 1.5", False),
        ("!(score > 1.5)", False),  # CEL: ordering a null is an error, and so is its negation
        ("status != null", True),
        ('status in ["在业"]', True),
        ("other", False),  # a null condition is an error: no match
        ("!other", False),
        ("other || flag", True),
        ("size(photo) > 0", False),  # size(null) is an error: no match
        ('photo == b"x" || true', True),
    ],
)
def test_null_semantics(expr: str, expected: bool) -> None:
    row_filter = compile_filter(expr, TYPES)
    assert row_filter(RECORD) is expected


def test_equality_is_typed() -> None:
    assert run("x == 1", {"x": True}, types=None) is False  # a bool is not a number
    assert run("x != 1", {"x": True}, types=None) is True
    assert run("x == true", {"x": 1}, types=None) is False
    assert run("x == 1", {"x": 1.0}, types=None) is True
    assert run('x == "1"', {"x": 1}, types=None) is False
    assert run("x in [1, 2]", {"x": True}, types=None) is False
    assert run("x == y", {"x": True, "y": 1}, types=None) is False
    assert run("x == y", {"x": [1, "a"], "y": [1, "a"]}, types=None) is True


def test_ordering() -> None:
    assert run("age >= 30 && age <= 30 && age > 29 && age < 31") is True
    assert run("30 <= age && 29 < age") is True  # constant on the left
    assert run('district > "A"') is True
    assert run("score >= 0.5", {**RECORD, "score": 0.5}) is True
    assert run("age > score", {**RECORD, "score": 2.5}) is True  # int against double: by value
    assert run("age > score") is False  # null on one side


# --- in, string methods, size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('status in ["存续", "在业"]', True),
        ('status in ["存续"]', False),
        ("age in [1, 30]", True),
        ("age in [1.0, 30.0]", True),
        ("age in []", False),
        ('"a" in tags', True),
        ('"z" in tags', False),
        ('"k" in attrs', True),
        ('"v" in attrs', False),  # map membership is by key
        ("score in [null, 1.5]", True),
        ('district in [name, "浦东新区"]', True),
        ('name.startsWith("上海")', True),
        ('name.endsWith("公司")', True),
        ('name.contains("科技")', True),
        ('name.contains("银行")', False),
        ('"上海某某".startsWith("上海")', True),
        ("name.startsWith(district)", False),
        ('status.startsWith("在") && addr.city.endsWith("海")', True),
        ("size(tags) == 2", True),
        ("tags.size() == 2", True),
        ("size(name) == 10", True),
        ("size(attrs) == 1", True),
        ('size("中文") == 2', True),
    ],
)
def test_membership_methods_and_size(expr: str, expected: bool) -> None:
    assert run(expr) is expected


def test_string_methods_on_null_are_no_match() -> None:
    record = {**RECORD, "status": None}
    assert run('status.startsWith("在")', record) is False
    assert run('status.endsWith("业")', record) is False
    assert run('status.contains("在")', record) is False
    assert run('!status.startsWith("在")', record) is False  # CEL: an error, negated, is an error
    assert run("name.startsWith(status)", record) is False


def test_unhashable_values_are_in_no_literal_list() -> None:
    assert run('x in ["a"]', {"x": ["a"]}, types=None) is False
    assert run("x in [1]", {"x": {"a": 1}}, types=None) is False


# --- dates and timestamps as ISO text -------------------------------------------------------------


@pytest.mark.parametrize("birth", [dt.date(1985, 3, 7), 5544, "1985-03-07"])
def test_date_fields_compare_as_iso_text(birth: Any) -> None:
    record = {**RECORD, "birth": birth}
    assert run('birth == "1985-03-07"', record) is True
    assert run('birth != "1985-03-07"', record) is False
    assert run('birth >= "1985-01-01" && birth < "1986-01-01"', record) is True
    assert run('"1990-01-01" > birth', record) is True
    assert run('birth.startsWith("1985-03")', record) is True
    assert run('birth > "1985"', record) is True  # a partial date compares as text
    assert run('birth in ["1985-03-07"]', record) is True


def test_null_date_field() -> None:
    types = {"d": ["null", {"type": "int", "logicalType": "date"}]}
    assert run('d == "1985-03-07"', {"d": None}, types) is False
    assert run('d != "1985-03-07"', {"d": None}, types) is True
    assert run('d > "1985-03-07"', {"d": None}, types) is False


@pytest.mark.parametrize(
    "seen",
    [
        dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 1, 16, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        1714552200000,  # Avro timestamp-millis
    ],
)
def test_timestamps_are_utc_iso_text(seen: Any) -> None:
    record = {**RECORD, "seen": seen}
    assert run('seen == "2024-05-01T08:30:00.000Z"', record) is True
    assert run('seen > "2024-05-01" && seen < "2024-05-02"', record) is True


def test_untyped_dates_are_iso_text_too() -> None:
    record = {"d": dt.date(1985, 3, 7), "t": dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC)}
    assert run('d == "1985-03-07" && t >= "2024-05-01T08:30:00.000Z"', record, types=None) is True


def test_other_temporal_types() -> None:
    types: dict[str, Any] = {
        "t": {"type": "int", "logicalType": "time-millis"},
        "lt": {"type": "long", "logicalType": "local-timestamp-micros"},
        "us": {"type": "long", "logicalType": "timestamp-micros"},
    }
    record = {"t": 30_600_000, "lt": 1_714_552_200_000_000, "us": 1_714_552_200_000_000}
    expr = 't == "08:30:00.000" && lt == "2024-05-01T08:30:00.000" && us == "2024-05-01T08:30:00.000Z"'
    assert run(expr, record, types) is True
    assert run('t == "08:30:00.000"', {"t": dt.time(8, 30)}, types) is True


# --- runtime errors: a CEL error is no match, counted; never a crash -------------------------------


def test_runtime_type_error_is_no_match_and_counted() -> None:
    row_filter = compile_filter("age > 18")  # untyped: nothing can be checked at compile time
    assert row_filter({"age": "secret-value-310115"}) is False
    assert row_filter.evaluate({"age": "secret-value-310115"}) is FilterOutcome.ERROR
    assert row_filter.evaluate({"age": 19}) is FilterOutcome.MATCH
    assert row_filter.evaluate({"age": 17}) is FilterOutcome.NO_MATCH
    assert row_filter.errors == 2


@pytest.mark.parametrize(
    ("expr", "record"),
    [
        ("x > 1", {"x": True}),
        ("x > y", {"x": [1], "y": [2]}),
        ('x.startsWith("a")', {"x": 1}),
        ("size(x) > 1", {"x": 5}),
        ('"a" in x', {"x": "abc"}),
        ("x", {"x": "yes"}),
        ("x.y == 1", {"x": "str"}),
    ],
)
def test_runtime_errors(expr: str, record: dict[str, Any]) -> None:
    for engine in ("subset", "cel"):
        row_filter = compile_filter(expr, engine=engine)  # type: ignore[arg-type]
        assert row_filter.evaluate(record) is FilterOutcome.ERROR, engine
        assert row_filter(record) is False
        assert row_filter.errors == 2


def test_logic_is_commutative_for_errors_as_in_cel() -> None:
    bad = {"x": "text", "ok": False}
    assert compile_filter("x > 1 && ok")(bad) is False
    assert compile_filter("ok && x > 1")(bad) is False
    assert compile_filter("x > 1 || !ok")(bad) is True
    assert compile_filter("!ok || x > 1")(bad) is True
    assert compile_filter("x > 1 && !ok").evaluate(bad) is FilterOutcome.ERROR
    assert compile_filter("x > 1 || ok").evaluate(bad) is FilterOutcome.ERROR


# --- compile errors with columns ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "column", "message"),
    [
        (
            'distrct == "x"',
            1,
            'unknown field "distrct" at column 1 (did you mean "district"? fields: addr, age',
        ),
        ('age > 1 && record.distrct == "x"', 19, 'unknown field "distrct" at column 19'),
        (
            'addr.citi == "x"',
            6,
            'unknown field "citi" in "addr" at column 6 (did you mean "city"? fields: city, zip)',
        ),
        ('district.x == "y"', 10, 'field "district" is a string and has no field "x"'),
        ('age == "30"', 5, 'cannot compare int field "age" with a string at column 5'),
        ("district > 1", 10, 'cannot compare string field "district" with an int'),
        ('age in [1, "a"]', 12, 'cannot compare int field "age" with a string at column 12'),
        ("birth > 19850307", 7, 'cannot compare date field "birth" (compared as ISO-8601 text) with an int'),
        ("flag && age", 9, 'the operand of "&&" is int field "age", not a condition at column 9'),
        ("!district", 2, 'the operand of "!" is string field "district"'),
        ("size(age) > 1", 1, 'size() cannot measure int field "age"'),
        ("age.startsWith('1')", 5, 'startsWith() needs text, not int field "age"'),
        ("district", 1, 'the expression is string field "district", not a condition'),
        ("age + 1", 5, "unexpected"),  # valid CEL, but not a condition: cel-python decides at run time
        ("tags < 1", 6, "cannot compare list field"),
        ("age > null", 5, '">" cannot order null'),
        ('"a" in district', 5, '"in" needs a list or a map on its right, not string field "district"'),
        ("   ", 1, "the expression is empty"),
        ("a = 1", 3, 'unexpected "=" (did you mean "=="?) at column 3'),
        ("age >", 6, "expected a value, found the end of the expression at column 6"),
        ("(age > 1", 9, 'expected ")", found the end at column 9'),
        ('district == "浦东', 13, "unterminated string at column 13"),
        ("age > 1 && foo(age)", 12, 'unknown function "foo" at column 12'),
        ('district == "x" &&& flag', 19, "at column 19"),
        ('__import__("os").system("id")', 1, 'unknown function "__import__"'),
    ],
)
def test_compile_errors_name_the_column(expr: str, column: int, message: str) -> None:
    if expr == "age + 1":
        # Arithmetic is outside the subset: cel-python compiles it; the result is not a bool at run time,
        # which is no match, counted as an error.
        assert compile_filter(expr, TYPES).evaluate(RECORD) is FilterOutcome.ERROR
        return
    err = compile_error(expr)
    assert err.column == column, str(err)
    assert message in str(err)
    assert str(err).startswith("subscriptions/tax.yaml:12: row filter: ")
    assert err.reason.startswith("row filter: ")
    assert err.expr == expr
    assert err.where == "subscriptions/tax.yaml:12"
    assert isinstance(err, PolicyError)


def test_absurd_expressions_are_refused() -> None:
    assert "nested too deeply" in str(compile_error("(" * 2000 + "true" + ")" * 2000))
    assert "longer than 10000 characters" in str(compile_error("true || " * 2000 + "true"))


def test_columns_count_across_lines() -> None:
    err = compile_error('district == "x" &&\n  distrct == "y"')
    assert err.column == 22


def test_forced_engines() -> None:
    with pytest.raises(FilterError, match='method "matches" is outside the built-in subset at column 10'):
        compile_filter('district.matches("^浦")', TYPES, engine="subset")
    forced = compile_filter('district == "浦东新区"', TYPES, engine="cel")
    assert forced.engine == "cel"
    assert forced(RECORD) is True


# --- the cel-python fallback ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected", "fields"),
    [
        ('district.matches("^浦东")', True, {"district"}),
        ("age + 1 > 30", True, {"age"}),
        ("age % 2 == 0 ? flag : !flag", True, {"age", "flag"}),
        ('tags.exists(t, t == "b")', True, {"tags"}),
        ("tags.all(t, size(t) == 1) && record.age == 30", True, {"tags", "age"}),
        ("has(record.district)", True, {"district"}),
        ('"district" in record', True, set()),
        ('"nothing" in record', False, set()),
        ("int(age) == 30", True, {"age"}),
        ('birth > "1985-01-01" && uint(1) == 1u', True, {"birth"}),
        ('seen.startsWith("2024-05-01T08:30") && age * 2 == 60', True, {"seen", "age"}),
        ('addr.city + "市" == "上海市"', True, {"addr"}),
    ],
)
def test_cel_fallback(expr: str, expected: bool, fields: set[str]) -> None:
    row_filter = compile_filter(expr, TYPES)
    assert row_filter.engine == "cel"
    assert row_filter(RECORD) is expected
    assert row_filter.fields == fields


def test_cel_fallback_without_types() -> None:
    row_filter = compile_filter('x.matches("^a") && [1, 2].exists(i, i == y)')
    assert row_filter.fields == {"x", "y"}  # i is the macro's variable, not a field
    assert row_filter({"x": "abc", "y": 2}) is True
    assert row_filter({"x": "abc", "y": 3}) is False
    assert compile_filter('"x" in record')({"x": dt.date(2024, 1, 1)}) is True


def test_cel_fallback_errors() -> None:
    err = compile_error('district.matches("x") && distrct == "y"')
    assert err.column == 26
    assert 'unknown field "distrct"' in str(err)
    err = compile_error("record.nope + 1 > 2")
    assert err.column == 8
    err = compile_error("age.frobnicate() > 1")
    assert 'unknown function "frobnicate" at column 5' in str(err)


def test_cel_null_rule_and_runtime_errors() -> None:
    row_filter = compile_filter("score + 1.0 > 2.0", TYPES)
    assert row_filter.engine == "cel"
    assert row_filter.evaluate(RECORD) is FilterOutcome.ERROR  # an error caused by a null field: no match
    assert row_filter({**RECORD, "score": 2.0}) is True
    untyped = compile_filter("x + 1 > 2")
    assert untyped.evaluate({"x": "secret-310115"}) is FilterOutcome.ERROR  # a CEL error: no match
    # A value that no Avro decoder gives has no CEL equivalent: the record is invalid (dead-lettered).
    with pytest.raises(FilterRuntimeError, match="no CEL equivalent") as info:
        untyped({"x": object()})
    assert info.value.reason == "row_filter_failed"
    assert isinstance(info.value, InvalidRecord)
    assert isinstance(info.value, PolicyError)


# --- agreement between the subset and cel-python ---------------------------------------------------

AGREEMENT_TYPES: dict[str, Any] = {
    "district": "string",
    "status": "string",
    "name": "string",
    "age": "long",
    "score": "double",
    "flag": "boolean",
    "tags": {"type": "array", "items": "string"},
}
AGREEMENT_EXPRESSIONS = [
    'district == "浦东新区" && status in ["存续", "在业"]',
    "age >= 18 && age < 65 || flag",
    '!(status == "注销") && district.startsWith("浦")',
    'size(tags) > 1 || "a" in tags',
    "score > 1.5 && score <= 100.0 || !flag",
    'district.endsWith("区") && !flag || name.contains("科技")',
    "record.age != 7 && (flag || record.score < 0.0) && age in [1, 7, 30]",
    '!flag == (district < status) || name >= "m"',
    "size(name) <= 3 && !(age > 10) || tags == []",
]
ENGINES = [
    (compile_filter(expr, AGREEMENT_TYPES), compile_filter(expr, AGREEMENT_TYPES, engine="cel"))
    for expr in AGREEMENT_EXPRESSIONS
]

SOME_TEXT = st.sampled_from(
    ["浦东新区", "黄浦区", "浦口", "存续", "在业", "注销", "科技", "a", "b", ""]
) | st.text(max_size=6)
RECORDS = st.fixed_dictionaries(
    {
        "district": SOME_TEXT,
        "status": SOME_TEXT,
        "name": SOME_TEXT,
        "age": st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.sampled_from([7, 18, 30, 64, 65]),
        "score": st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1.5, 100.0, -0.0]),
        "flag": st.booleans(),
        "tags": st.lists(SOME_TEXT, max_size=3),
    }
)


@settings(max_examples=150, deadline=None)
@given(record=RECORDS)
def test_subset_and_cel_python_agree(record: dict[str, Any]) -> None:
    for subset, cel in ENGINES:
        assert subset.engine == "subset"
        assert cel.engine == "cel"
        assert subset(record) is cel(record), subset.expr


NULLABLE_TYPES = {**AGREEMENT_TYPES, "district": ["null", "string"], "status": ["null", "string"]}
NULLABLE_ENGINES = [
    (compile_filter(expr, NULLABLE_TYPES), compile_filter(expr, NULLABLE_TYPES, engine="cel"))
    for expr in AGREEMENT_EXPRESSIONS[:3]
]


@settings(max_examples=100, deadline=None)
@given(record=RECORDS, nulls=st.sets(st.sampled_from(["district", "status"])))
def test_engines_agree_on_null_fields(record: dict[str, Any], nulls: set[str]) -> None:
    record = {**record, **dict.fromkeys(nulls)}
    for subset, cel in NULLABLE_ENGINES:
        assert subset(record) is cel(record), subset.expr
