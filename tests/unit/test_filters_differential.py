"""Differential tests: the subset engine against independent CEL implementations on random input.

Hypothesis generates expressions of the subset's whole grammar (literals, fields bare, via ``record.``
and nested, ``== != < <= > >=``, ``in``, ``! && ||``, ``startsWith``/``endsWith``/``contains``,
``size``) and records whose fields are missing, null, or of any type (so every operator meets nulls and
type mismatches); every expression is checked on several records, three ways: match, no match, error.

The reference is cel-expr-python, Google's CEL C++ runtime (cel-cpp) behind a Python binding: an
implementation of the CEL spec written independently of this project. The record's fields are declared
as ``dyn`` variables (any field may be null, missing or of any type here) and ``record`` as
``map(string, dyn)``; the record is the activation, so a missing field is CEL's "no such key" /
"undeclared value" error. An error value (``Value.type() == Type.ERROR``) or a result that is not a bool
is no match; the subset must then report ``FilterOutcome.ERROR`` too, and a match or no match exactly
where CEL gives true or false. Expressions CEL's type checker refuses are compared two ways: when the
subset refuses them too (``1.5 == "a"``, ``[1] > 2``: no overload takes those literal types), both
refused; when the subset accepts them (only ``1 == 1.0``-like literal pairs of int and double, which the
spec evaluates as heterogeneous equality, comparisons.textproto ``eq_mixed_types`` with
``disable_check``), they are compared at run time, unchecked, as the conformance suite does. The subset
refuses what CEL's checker accepts only in the two cases of ``STRICTER``.

A smaller run (``CEL_PYTHON_EXPRESSIONS``) checks the subset against the cel engine of
``hub.policy.filters.cel`` -- cel-python with the CEL-spec operators of
``hub.policy.filters.cel_operators`` -- which still runs in production for expressions outside the
subset, so the two engines of ``compile_filter`` agree.

Not generated, because the subset does not have them: NaN (no literal), bytes and uint literals, dates
(tests/unit/test_filters.py covers them).

The suite checks at least 10,000 expressions against cel-cpp (see
``test_enough_expressions_were_checked``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import celpy
from cel_expr_python import cel
from celpy import celtypes
from celpy.evaluation import CELEvalError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hub.policy.errors import FilterError
from hub.policy.filters import FilterOutcome, RowFilter, compile_filter
from hub.policy.filters.cel_operators import spec_functions

EXPRESSIONS_PER_EXAMPLE = 50
RECORDS_PER_EXAMPLE = 3
EXAMPLES = 245
CEL_PYTHON_EXAMPLES = 25  # x 50 expressions: cel-python parses at ~7 ms an expression
CHECKED = {
    "expressions": 0,
    "evaluations": 0,
    "errors": 0,
    "matches": 0,
    "refused": 0,
    "stricter": 0,
    "unchecked": 0,
}
CHECKED_CEL_PYTHON = {"expressions": 0, "evaluations": 0}

FIELDS = ("a", "b", "c", "d")
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


# --- the references -----------------------------------------------------------------------------------

CEL_ENV = cel.NewEnv(
    variables={
        **dict.fromkeys((*FIELDS, "m"), cel.Type.DYN),
        "record": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
    }
)


def _cel_cpp(program: Any, record: dict[str, Any]) -> FilterOutcome:
    """What cel-cpp makes of ``record``: its error values and non-bool results are no match (ERROR)."""
    try:
        value = program.eval(data={**record, "record": record})
    except Exception:  # the binding's own failure: CEL reports errors as values, but be safe
        return FilterOutcome.ERROR
    if value.type() == cel.Type.BOOL:
        return FilterOutcome.MATCH if value.value() else FilterOutcome.NO_MATCH
    return FilterOutcome.ERROR


def _compile_both(expr: str) -> tuple[RowFilter | FilterError, Any, bool]:
    """The subset's filter (or why it refused), cel-cpp's program (None if refused), whether checked."""
    try:
        fast: RowFilter | FilterError = compile_filter(expr)
    except FilterError as exc:
        fast = exc
    try:
        return fast, CEL_ENV.compile(expr), True
    except RuntimeError:
        if isinstance(fast, FilterError):
            return fast, None, True
    # The subset accepts a literal pair CEL's checker refuses (1 == 1.0): compare the spec's run-time
    # semantics, unchecked, as the conformance suite does (comparisons.textproto eq_mixed_types).
    return fast, CEL_ENV.compile(expr, disable_check=True), False


# Where the subset's checker is stricter than CEL's, on purpose (a config mistake caught at validate):
# an element of a list literal that can never equal the left operand of "in" ('b' in [1, null, 2]: CEL
# types the literal list(dyn) and accepts it; its own checker refuses 'b' in [1, 2] and 'b' == 1), and
# ordering against null (CEL accepts dyn > null and errs on every record).
STRICTER = re.compile(r'row filter: (cannot compare .+ with .+|"[<>]=?" cannot order null) at column')


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # No shrinking: it takes minutes on 50 expressions, and the assertion message names the case.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    expressions=st.lists(CONDITION, min_size=EXPRESSIONS_PER_EXAMPLE, max_size=EXPRESSIONS_PER_EXAMPLE),
    rows=st.lists(records(), min_size=RECORDS_PER_EXAMPLE, max_size=RECORDS_PER_EXAMPLE),
)
def test_subset_agrees_with_cel_cpp(expressions: list[str], rows: list[dict[str, Any]]) -> None:
    for expr in expressions:
        fast, program, checked = _compile_both(expr)
        if isinstance(fast, FilterError):
            if program is not None:
                # A refusal is never a silent divergence: validate names the column. (CEL's outcome on
                # records is not compared: "false && null <= b" is a clean no-match there, since && absorbs
                # the error, and "true || null <= b" a match.)
                assert STRICTER.match(str(fast)), f"{expr!r}: the subset refuses what CEL accepts: {fast}"
                CHECKED["stricter"] += 1
            # Else refused statically by both (e.g. 1.5 == "a", [1] > 2: literal types no overload takes).
            CHECKED["refused"] += 1
            continue
        assert fast.engine == "subset", expr
        for record in rows:
            got, want = fast.evaluate(record), _cel_cpp(program, record)
            assert got is want, f"{expr!r} on {record!r}: subset {got.name}, CEL {want.name}"
            CHECKED["evaluations"] += 1
            CHECKED["errors"] += want is FilterOutcome.ERROR
            CHECKED["matches"] += want is FilterOutcome.MATCH
        CHECKED["expressions"] += 1
        CHECKED["unchecked"] += not checked


def test_enough_expressions_were_checked() -> None:
    """Runs after the test above (pytest keeps file order); hypothesis may stop early only on failure."""
    print(CHECKED)
    assert CHECKED["expressions"] >= 10_000, CHECKED
    # Each outcome is well represented, so the comparison is not vacuous.
    assert CHECKED["errors"] > CHECKED["evaluations"] // 10, CHECKED
    assert CHECKED["matches"] > CHECKED["evaluations"] // 10, CHECKED
    assert CHECKED["refused"] > 0, CHECKED


# --- the cel engine (cel-python), which runs expressions outside the subset ---------------------------

CEL_PYTHON_ENV = celpy.Environment()
SPEC = spec_functions(celtypes, CELEvalError)


@settings(
    max_examples=CEL_PYTHON_EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    expressions=st.lists(CONDITION, min_size=EXPRESSIONS_PER_EXAMPLE, max_size=EXPRESSIONS_PER_EXAMPLE),
    rows=st.lists(records(), min_size=RECORDS_PER_EXAMPLE, max_size=RECORDS_PER_EXAMPLE),
)
def test_subset_agrees_with_the_cel_engine(expressions: list[str], rows: list[dict[str, Any]]) -> None:
    for expr in expressions:
        try:
            fast = compile_filter(expr)
        except FilterError:
            continue
        slow = compile_filter(expr, engine="cel")
        assert slow.engine == "cel", expr
        for record in rows:
            got, want = fast.evaluate(record), slow.evaluate(record)
            assert got is want, f"{expr!r} on {record!r}: subset {got.name}, cel engine {want.name}"
            CHECKED_CEL_PYTHON["evaluations"] += 1
        CHECKED_CEL_PYTHON["expressions"] += 1


def test_enough_expressions_were_checked_on_the_cel_engine() -> None:
    print(CHECKED_CEL_PYTHON)
    assert CHECKED_CEL_PYTHON["expressions"] >= 1_000, CHECKED_CEL_PYTHON
