"""The cel-python engine, for valid CEL outside the subset (arithmetic, ``?:``, macros, ``matches``).

cel-python's interpreter is used, never its transpiler (which would ``exec`` generated Python).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hub.policy.errors import FilterRuntimeError
from hub.policy.filters.cel_operators import spec_functions
from hub.policy.filters.checker import ANY, choices
from hub.policy.filters.lexer import literal_range_error
from hub.policy.filters.row_filter import Getter, Record, RowFilter
from hub.policy.filters.values import path_getter, plain

if TYPE_CHECKING:
    from hub.policy.filters.compiler import Context
    from hub.policy.filters.lexer import Unsupported

_CEL_MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "map", "filter", "reduce", "min"})
_CEL_TYPE_NAMES = frozenset(
    {
        "bool",
        "bytes",
        "double",
        "duration",
        "int",
        "list",
        "map",
        "null_type",
        "string",
        "timestamp",
        "type",
        "uint",
        "google",
    }
)


def compile_cel(ctx: Context, unsupported: Unsupported | None) -> RowFilter:  # noqa: PLR0912, PLR0915 - one pipeline
    """Compile ``ctx.expr`` for cel-python's interpreter; ``unsupported`` is why the subset refused it."""
    try:
        import celpy
        from celpy import celtypes
        from celpy.celparser import CELParseError
        from celpy.evaluation import CELEvalError, base_functions
    except ImportError as exc:  # pragma: no cover - cel-python is a runtime dependency
        raise ctx.error(
            "the expression is outside the built-in subset and cel-python is not installed "
            "(pip install cel-python)",
            unsupported.column if unsupported else 1,
        ) from exc
    expr = ctx.expr
    env = celpy.Environment()
    try:
        ast = env.compile(expr)
    except CELParseError as exc:
        column = _offset(expr, exc.line, exc.column)
        # Both parsers failed: the one that read further saw more of the intent and is more accurate.
        if unsupported is not None and unsupported.column >= column:
            raise ctx.error(unsupported.message, unsupported.column) from exc
        found = f'"{expr[column - 1]}"' if column <= len(expr) else "the end of the expression"
        raise ctx.error(f"syntax error: unexpected {found}", column) from exc
    for token in ast.scan_values(lambda v: getattr(v, "type", None) in ("INT_LIT", "UINT_LIT")):
        _check_int_literal(ctx, expr, token)
    names = _cel_names(ast, expr)
    known_functions = {name for name in base_functions if name[:1].isalpha()} | _CEL_MACROS
    for name, column in sorted(names.functions, key=lambda item: item[1]):
        if name not in known_functions:
            raise ctx.error(f'unknown function "{name}"', column)
    bare: dict[str, Getter] = {}
    members: dict[str, Getter] = {}
    whole_record = False
    for name, column, via_record in names.fields:
        in_schema = ctx.types is not None and name in ctx.types
        if not via_record and not in_schema:
            if name == "record":
                whole_record = True
                continue
            if name in names.bound or name in _CEL_TYPE_NAMES:
                continue
        info = None
        if ctx.types is not None:
            info = ctx.types.get(name)
            if info is None:
                raise ctx.error(f'unknown field "{name}"', column, choices(name, ctx.types))
        ctx.fields.add(name)
        getter = path_getter(
            name, (), info.temporal if info else None, generic=info is None or info.type == ANY
        )
        (members if via_record else bare)[name] = getter
    every_field: dict[str, Getter] = {}
    if whole_record and ctx.types is not None:
        every_field = {
            name: path_getter(name, (), info.temporal, generic=info.type == ANY)
            for name, info in ctx.types.items()
        }
    program = env.program(ast, functions=spec_functions(celtypes, CELEvalError))
    bool_type, eval_error = celtypes.BoolType, CELEvalError
    to_cel = _cel_converter(celtypes)
    only = next(iter(ctx.fields)) if len(ctx.fields) == 1 else None

    def present(getters: dict[str, Getter], r: Record) -> dict[str, Any]:
        # A field the record lacks is left unbound: CEL's "no such key" / "undeclared reference" error.
        return {name: g(r) for name, g in getters.items() if name in r}

    def evaluate(r: Record) -> bool:
        try:
            activation: dict[str, Any] = {name: to_cel(v) for name, v in present(bare, r).items()}
            if every_field:
                activation["record"] = to_cel(present(every_field, r))
            elif whole_record:
                activation["record"] = to_cel({k: plain(v) for k, v in r.items()})
            elif members:
                activation["record"] = to_cel(present(members, r))
        except _NoCelValue as exc:
            raise FilterRuntimeError(
                f"row filter {expr!r} cannot be evaluated on this record: {exc}", expr=expr, field=only
            ) from None
        result: Any
        try:
            result = program.evaluate(activation)
        except eval_error as exc:
            result = exc
        except Exception as exc:  # cel-python's own failure must not stop the hub: dead-letter the record
            raise FilterRuntimeError(
                f"row filter {expr!r} cannot be evaluated on this record: "
                f"CEL evaluation failed ({type(exc).__name__})",
                expr=expr,
                field=only,
            ) from exc
        if isinstance(result, bool_type):
            return bool(result)
        if isinstance(result, eval_error):
            raise TypeError("CEL evaluation error")  # no match, counted by RowFilter
        raise TypeError(f"the expression gave a {type(result).__name__}, not true or false")

    return RowFilter(expr, frozenset(ctx.fields), "cel", evaluate)


def _check_int_literal(ctx: Context, text: str, token: Any) -> None:
    """CEL ints are 64-bit: a literal beyond that is a compile error (cel-python only fails at run time)."""
    literal = str(token)
    start = token.start_pos + (1 if literal.startswith("-") else 0)
    digits = literal.lstrip("-").rstrip("uU")
    unsigned = token.type == "UINT_LIT"
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits)
    end = start + len(digits)
    problem = literal_range_error(text, start, end, value, unsigned=unsigned)
    if problem is not None:
        raise ctx.error(problem, start + 1)


class _NoCelValue(Exception):  # noqa: N818 - internal signal, turned into FilterRuntimeError
    """A record value with no CEL equivalent: the record is invalid, not the expression's error."""


def _offset(text: str, line: int | None, column: int | None) -> int:
    """celpy reports (line, column); FilterError.column counts characters in the whole expression."""
    if line is None or column is None:
        return 1
    lines = text.split("\n")
    return sum(len(part) + 1 for part in lines[: line - 1]) + column


@dataclass
class _CelNames:
    fields: list[tuple[str, int, bool]] = field(default_factory=list)  # name, column, via "record."
    functions: list[tuple[str, int]] = field(default_factory=list)
    bound: set[str] = field(default_factory=set)  # macro variables, e.g. x in list.exists(x, x > 1)


def _cel_names(ast: Any, text: str) -> _CelNames:
    """Fields, functions and macro variables named in a cel-python (lark) syntax tree."""
    names = _CelNames()
    record_bases: set[int] = set()
    for tree in ast.iter_subtrees_topdown():
        if tree.data == "member_dot":
            base = _ident_of_member(tree.children[0])
            if base is not None and str(base) == "record":
                record_bases.add(id(base))
                token = tree.children[1]
                names.fields.append((str(token), _offset(text, token.line, token.column), True))
        elif tree.data == "member_dot_arg":
            token = tree.children[1]
            names.functions.append((str(token), _offset(text, token.line, token.column)))
            if str(token) in _CEL_MACROS and len(tree.children) > 2:
                variable = _first_ident(tree.children[2])
                if variable is not None:
                    names.bound.add(str(variable))
        elif tree.data == "ident_arg":
            token = tree.children[0]
            names.functions.append((str(token), _offset(text, token.line, token.column)))
    for tree in ast.iter_subtrees_topdown():
        if tree.data == "ident":
            token = tree.children[0]
            if id(token) in record_bases:
                continue
            names.fields.append((str(token), _offset(text, token.line, token.column), False))
    return names


def _ident_of_member(tree: Any) -> Any:
    """The identifier token if ``tree`` is ``member -> primary -> ident`` (a bare name), else None."""
    node = tree
    for expected in ("member", "primary", "ident"):
        if getattr(node, "data", None) != expected:
            return None
        if expected == "ident":
            return node.children[0]
        node = node.children[0]
    return None  # pragma: no cover - the loop returns


def _first_ident(tree: Any) -> Any:
    for sub in tree.iter_subtrees_topdown():
        if sub.data == "ident":
            return sub.children[0]
    return None


def _cel_converter(celtypes: Any) -> Callable[[Any], Any]:
    """A function turning a decoded Avro value into cel-python's value types."""
    string, integer, double = celtypes.StringType, celtypes.IntType, celtypes.DoubleType
    boolean, raw, list_, map_ = celtypes.BoolType, celtypes.BytesType, celtypes.ListType, celtypes.MapType

    def to_cel(v: Any) -> Any:  # noqa: PLR0911 - one return per value type
        cls = v.__class__
        if v is None:
            return None
        if cls is str:
            return string(v)
        if cls is bool:
            return boolean(v)
        if cls is int:
            return integer(v)
        if cls is float:
            return double(v)
        if isinstance(v, bytes):
            return raw(v)
        if isinstance(v, list | tuple):
            return list_([to_cel(x) for x in v])
        if isinstance(v, dict):
            return map_({string(k): to_cel(x) for k, x in v.items()})
        if isinstance(v, Decimal):
            return double(float(v))
        if isinstance(v, datetime | date | time):
            return string(plain(v))
        if isinstance(v, str):
            return string(v)
        if isinstance(v, int):
            return integer(v)
        raise _NoCelValue(f"a {cls.__name__} value has no CEL equivalent")

    return to_cel
