"""The cel-python engine, for valid CEL outside the subset (arithmetic, ``?:``, macros, ``matches``).

cel-python's interpreter is used, never its transpiler (which would ``exec`` generated Python).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hub.policy.filters.checker import ANY, choices
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


def compile_cel(ctx: Context, unsupported: Unsupported | None) -> RowFilter:  # noqa: PLR0915 - one pipeline
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
    program = env.program(ast)
    bool_type, eval_error = celtypes.BoolType, CELEvalError
    to_cel = _cel_converter(celtypes)
    referenced = (*bare.values(), *members.values())

    def evaluate(r: Record) -> bool:
        activation: dict[str, Any] = {name: to_cel(g(r)) for name, g in bare.items()}
        if every_field:
            activation["record"] = to_cel({name: g(r) for name, g in every_field.items()})
        elif whole_record:
            activation["record"] = to_cel({k: plain(v) for k, v in r.items()})
        elif members:
            activation["record"] = to_cel({name: g(r) for name, g in members.items()})
        result: Any
        try:
            result = program.evaluate(activation)
        except eval_error as exc:
            result = exc
        except Exception as exc:  # cel-python's own failure must not stop the hub: dead-letter the record
            raise TypeError(f"CEL evaluation failed ({type(exc).__name__})") from exc
        if isinstance(result, bool_type):
            return bool(result)
        if isinstance(result, eval_error):
            if any(g(r) is None for g in referenced):
                return False  # the null rule: an error caused by a missing value is no match
            raise TypeError(f"CEL evaluation error ({type(result).__name__})") from None
        raise TypeError(f"the expression gave a {type(result).__name__}, not true or false")

    return RowFilter(expr, frozenset(ctx.fields), "cel", evaluate)


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
        raise TypeError(f"a {cls.__name__} value has no CEL equivalent")

    return to_cel
