"""Differential test: the subset engine against a reference CEL implementation on random input.

Hypothesis generates expressions of the subset's whole grammar (literals, fields bare, via ``record.``
and nested, ``== != < <= > >=``, ``in``, ``! && ||``, ``startsWith``/``endsWith``/``contains``,
``size``) and records whose fields are missing, null, or of any type (so every operator meets nulls and
type mismatches); every expression is checked on several records, three ways: match, no match, error.

The reference is cel-python's interpreter (its own parser, evaluator, error values, field selection and
method dispatch), with its function table given the CEL-spec operators of
``hub.policy.filters.cel_operators`` where cel-python 0.5 departs from the spec; that module names each
spec case (heterogeneous equality ``eq_mixed_types``, ``not_eq_dyn_int_null``; cross-type ordering
``lt_dyn_int_double``; ``in`` across number types; ``size(null)``; logic ``no_overload``). Those cases
are therefore checked against the spec, not against cel-python. Not generated, because cel-python does
not parse them as CEL does or the subset does not have them: NaN (no literal; ``NaN == NaN`` is false in
both), bytes and uint literals, dates (tests/unit/test_filters.py covers them).

The suite checks at least 10,000 expressions (see ``test_enough_expressions_were_checked``).
"""

from __future__ import annotations

import json
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.policy.errors import FilterError
from hub.policy.filters import FilterOutcome, compile_filter
from hub.policy.filters.cel_operators import spec_functions

EXPRESSIONS_PER_EXAMPLE = 50
RECORDS_PER_EXAMPLE = 3
EXAMPLES = 245
CHECKED = {"expressions": 0, "evaluations": 0, "errors": 0, "matches": 0, "refused": 0}

FIELDS = ("a", "b", "c", "d")
ENV = celpy.Environment()
SPEC = spec_functions(celtypes, CELEvalError)
MISSING = object()

# --- records ----------------------------------------------------------------------------------------

TEXT = st.sampled_from(["", "a", "ab", "b", "310", "3101", "浦东", "浦东新区", 'q"t', "A"])
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SMALL_INT = st.integers(min_value=-3, max_value=3)
DOUBLE = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.5, 1.0, -0.0, 2.0**53])
SCALAR = st.one_of(
    st.none(), st.booleans(), SMALL_INT, INT64, DOUBLE, TEXT, st.sampled_from([b"", b"a", b"310"])
)
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3),
    st.dictionaries(TEXT, SCALAR, max_size=3),
)
FIELD_VALUE = st.one_of(st.just(MISSING), VALUE)
NESTED = st.one_of(st.just(MISSING), st.none(), SCALAR, st.dictionaries(st.sampled_from(["k", "j"]), VALUE))


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = {name: draw(FIELD_VALUE) for name in FIELDS}
    record["m"] = draw(NESTED)
    return {k: v for k, v in record.items() if v is not MISSING}


# --- expressions ------------------------------------------------------------------------------------


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False) if "'" in text or text == "" else f"'{text}'"


def _double(value: float) -> str:
    text = repr(value)
    return text if ("." in text or "e" in text) else text + ".0"


INT_LITERAL = st.one_of(SMALL_INT, INT64).map(str) | st.sampled_from(
    ["0x1F", "-0x10", "-9223372036854775808"]
)
LITERAL = st.one_of(
    INT_LITERAL,
    DOUBLE.map(_double),
    TEXT.map(_string),
    st.sampled_from(["true", "false", "null"]),
)
LIST_LITERAL = st.lists(LITERAL, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
FIELD = st.sampled_from([*FIELDS, "record.a", "record.d", "m.k", "m.j", "record.m.k"])
VALUE_EXPR = st.one_of(FIELD, FIELD, LITERAL, LIST_LITERAL)
RELATION = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
METHOD = st.sampled_from(["startsWith", "endsWith", "contains"])


def _conditions(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        inner.map(lambda e: f"!({e})"),
        inner.map(lambda e: f"({e})"),
        st.tuples(inner, st.sampled_from(["==", "!="]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
    )


ATOM = st.one_of(
    st.tuples(VALUE_EXPR, RELATION, VALUE_EXPR).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.tuples(VALUE_EXPR, st.one_of(LIST_LITERAL, FIELD)).map(lambda t: f"{t[0]} in {t[1]}"),
    st.tuples(FIELD, METHOD, st.one_of(TEXT.map(_string), FIELD)).map(lambda t: f"{t[0]}.{t[1]}({t[2]})"),
    st.tuples(st.one_of(FIELD, TEXT.map(_string)), RELATION, SMALL_INT).map(
        lambda t: f"size({t[0]}) {t[1]} {t[2]}"
    ),
    st.tuples(FIELD, RELATION, SMALL_INT).map(lambda t: f"{t[0]}.size() {t[1]} {t[2]}"),
    FIELD,
    FIELD.map(lambda f: f"!{f}"),
    st.sampled_from(["true", "false"]),
)
CONDITION = st.recursive(ATOM, _conditions, max_leaves=4)


# --- the reference ------------------------------------------------------------------------------------


def _to_cel(v: Any) -> Any:  # noqa: PLR0911 - one return per value type
    if v is None:
        return None
    if isinstance(v, bool):
        return celtypes.BoolType(v)
    if isinstance(v, int):
        return celtypes.IntType(v)
    if isinstance(v, float):
        return celtypes.DoubleType(v)
    if isinstance(v, str):
        return celtypes.StringType(v)
    if isinstance(v, bytes):
        return celtypes.BytesType(v)
    if isinstance(v, list):
        return celtypes.ListType([_to_cel(x) for x in v])
    return celtypes.MapType({celtypes.StringType(k): _to_cel(x) for k, x in v.items()})


def _reference(program: Any, record: dict[str, Any]) -> FilterOutcome:
    activation = {name: _to_cel(v) for name, v in record.items()}
    activation["record"] = _to_cel(record)
    try:
        result = program.evaluate(activation)
    except CELEvalError:
        return FilterOutcome.ERROR
    if isinstance(result, celtypes.BoolType):
        return FilterOutcome.MATCH if result else FilterOutcome.NO_MATCH
    return FilterOutcome.ERROR  # an error value, or not a bool: no match


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    expressions=st.lists(CONDITION, min_size=EXPRESSIONS_PER_EXAMPLE, max_size=EXPRESSIONS_PER_EXAMPLE),
    rows=st.lists(records(), min_size=RECORDS_PER_EXAMPLE, max_size=RECORDS_PER_EXAMPLE),
)
def test_subset_agrees_with_reference_cel(expressions: list[str], rows: list[dict[str, Any]]) -> None:
    for expr in expressions:
        try:
            fast = compile_filter(expr)
        except FilterError:
            # Refused statically (e.g. 1.5 == "a", [1] > 2: literals of types no CEL overload takes), as
            # CEL's type checker refuses them; not an evaluation to compare.
            CHECKED["refused"] += 1
            continue
        assert fast.engine == "subset", expr
        program = ENV.program(ENV.compile(expr), functions=SPEC)
        for record in rows:
            got, want = fast.evaluate(record), _reference(program, record)
            assert got is want, f"{expr!r} on {record!r}: subset {got.name}, CEL {want.name}"
            CHECKED["evaluations"] += 1
            CHECKED["errors"] += want is FilterOutcome.ERROR
            CHECKED["matches"] += want is FilterOutcome.MATCH
        CHECKED["expressions"] += 1


def test_enough_expressions_were_checked() -> None:
    """Runs after the test above (pytest keeps file order); hypothesis may stop early only on failure."""
    print(CHECKED)
    assert CHECKED["expressions"] >= 10_000, CHECKED
    # Each outcome is well represented, so the comparison is not vacuous.
    assert CHECKED["errors"] > CHECKED["evaluations"] // 10, CHECKED
    assert CHECKED["matches"] > CHECKED["evaluations"] // 10, CHECKED
