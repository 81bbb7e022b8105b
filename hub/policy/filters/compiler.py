"""Compilation of the subset's syntax tree to nested closures, type-checked on the way.

``compile_filter`` is the entry point: the subset when the expression fits it, else cel-python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.policy.errors import FilterError
from hub.policy.filters.cel import compile_cel
from hub.policy.filters.checker import (
    ANY,
    BOOL,
    BYTES,
    INT,
    LIST,
    MAP,
    ORDERED,
    STRING,
    Compiled,
    FieldInfo,
    article,
    choices,
    comparable,
    constant,
    field_info,
)
from hub.policy.filters.lexer import Unsupported
from hub.policy.filters.operators import (
    and_,
    equality,
    membership,
    or_,
    ordering,
    size_of,
    strict_bool,
    string_method,
)
from hub.policy.filters.parser import Binary, Call, FieldRef, ListLit, Lit, Node, Not, Parser
from hub.policy.filters.row_filter import RowFilter
from hub.policy.filters.values import path_getter

MAX_EXPRESSION_LENGTH = 10_000
"""A row filter longer than this is refused: it is config, and no real condition is that long."""


def compile_filter(
    expr: str,
    field_types: Mapping[str, Any] | None = None,
    *,
    where: str = "",
    engine: Literal["auto", "subset", "cel"] = "auto",
) -> RowFilter:
    """Compile a CEL row filter once; the result is called once per record.

    Args:
        expr: the CEL expression; it must evaluate to a boolean.
        field_types: Avro types of the resource's fields by name (the ``type`` of each schema field).
            When given, unknown fields and type mismatches are compile errors and field access is
            specialised by type; without it, any name is taken as a field.
        where: names the subscription or file for error messages, e.g. ``'subscription "tax-debtors"'``.
        engine: ``"auto"`` (the subset when the expression fits it, else cel-python); ``"subset"`` or
            ``"cel"`` force one, for tests and benchmarks (``"subset"`` fails on anything outside it).

    Raises:
        FilterError: the expression is not valid CEL, uses an unknown field or function, compares
            incompatible types, or is not a condition. ``column`` is 1-based in ``expr``.
    """
    types = None if field_types is None else {name: field_info(t) for name, t in field_types.items()}
    ctx = Context(expr, types, where)
    if not expr.strip():
        raise ctx.error("the expression is empty", 1)
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise ctx.error(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters", 1)
    try:
        if engine == "cel":
            return compile_cel(ctx, None)
        try:
            tree = Parser(expr).parse()
        except Unsupported as unsupported:
            if engine == "subset" or unsupported.final:
                raise ctx.error(unsupported.message, unsupported.column) from None
            return compile_cel(ctx, unsupported)
        compiled = ctx.condition(tree, None)
    except RecursionError:
        raise ctx.error("the expression is nested too deeply", 1) from None
    return RowFilter(expr, frozenset(ctx.fields), "subset", compiled.get)


@dataclass
class Context:
    """One compilation: the expression, the field types, and the fields read so far."""

    expr: str
    types: dict[str, FieldInfo] | None
    where: str
    fields: set[str] = field(default_factory=set)

    def error(self, message: str, column: int, detail: str = "") -> FilterError:
        return FilterError(
            f"row filter: {message} at column {column}{detail}",
            column=column,
            expr=self.expr,
            where=self.where,
        )

    def compile(self, node: Node) -> Compiled:  # noqa: PLR0911 - one return per node type
        match node:
            case Lit():
                return constant(node.value, node.type)
            case ListLit():
                items = [self.compile(item) for item in node.items]
                if all(item.const for item in items):
                    return constant([item.value for item in items], LIST)
                getters = tuple(item.get for item in items)
                return Compiled(LIST, lambda r: [g(r) for g in getters])
            case FieldRef():
                return self.field_ref(node)
            case Not():
                operand = self.condition(node.operand, "!")
                get = operand.get
                return Compiled(BOOL, lambda r: not get(r))
            case Binary(op="&&" | "||"):
                left = self.condition(node.left, node.op).get
                right = self.condition(node.right, node.op).get
                return Compiled(BOOL, and_(left, right) if node.op == "&&" else or_(left, right))
            case Binary(op="in"):
                return self.membership(node)
            case Binary():
                return self.comparison(node)
            case Call():
                return self.call(node)
        raise AssertionError(node)  # pragma: no cover - the match above is exhaustive

    def condition(self, node: Node, op: str | None) -> Compiled:
        """``node`` used as true/false: the whole expression (``op`` None) or an operand of ``op``."""
        compiled = self.compile(node)
        if compiled.type == BOOL and compiled.field is None:
            return compiled  # an operator's result: always a bool
        if compiled.type == BOOL:
            get = compiled.get
            return Compiled(BOOL, strict_bool(get))  # a boolean field may be null: a CEL error
        if compiled.type == ANY:
            return Compiled(BOOL, strict_bool(compiled.get))
        if op is None:
            raise self.error(
                f"the expression is {self.describe(compiled)}, not a condition (true or false)", 1
            )
        raise self.error(
            f'the operand of "{op}" is {self.describe(compiled)}, not a condition', column_of(node)
        )

    def field_ref(self, node: FieldRef) -> Compiled:
        top, rest = node.path[0], node.path[1:]
        self.fields.add(top)
        name = ".".join(node.path)
        if self.types is None:
            return Compiled(ANY, path_getter(top, rest, None, generic=True), field=name)
        info = self.types.get(top)
        if info is None:
            raise self.error(f'unknown field "{top}"', node.cols[0], choices(top, self.types))
        for depth, member in enumerate(rest, start=1):
            if info.type == ANY or (info.type == MAP and info.members is None):
                info = FieldInfo(ANY)
                break
            if info.members is None:
                parent = ".".join(node.path[:depth])
                raise self.error(
                    f'field "{parent}" is {article(info.type)} and has no field "{member}"', node.cols[depth]
                )
            if member not in info.members:
                parent = ".".join(node.path[:depth])
                raise self.error(
                    f'unknown field "{member}" in "{parent}"',
                    node.cols[depth],
                    choices(member, info.members),
                )
            info = field_info(info.members[member])
        getter = path_getter(top, rest, info.temporal, generic=info.type == ANY)
        raw = path_getter(top, rest, None, generic=False) if info.temporal == "date" else None
        return Compiled(info.type, getter, field=name, temporal=info.temporal, raw=raw)

    def describe(self, compiled: Compiled) -> str:
        if compiled.field is None:
            return article(compiled.type)
        if compiled.temporal:
            return f'{compiled.temporal} field "{compiled.field}" (compared as ISO-8601 text)'
        return f'{compiled.type} field "{compiled.field}"'

    def comparison(self, node: Binary) -> Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        op = node.op
        if not comparable(left.type, right.type):
            raise self.error(f"cannot compare {self.describe(left)} with {self.describe(right)}", node.col)
        if op in ("==", "!="):
            return Compiled(BOOL, equality(left, right, negate=op == "!="))
        for side in (left, right):
            if side.type not in ORDERED:
                raise self.error(f'"{op}" cannot order {self.describe(side)}', node.col)
        return Compiled(BOOL, ordering(op, left, right))

    def membership(self, node: Binary) -> Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        if right.type not in (LIST, MAP, ANY):
            raise self.error(f'"in" needs a list or a map on its right, not {self.describe(right)}', node.col)
        if isinstance(node.right, ListLit):
            for item_node in node.right.items:
                item = self.compile(item_node)
                if not comparable(left.type, item.type):
                    raise self.error(
                        f"cannot compare {self.describe(left)} with {self.describe(item)}",
                        column_of(item_node),
                    )
        return Compiled(BOOL, membership(left, right))

    def call(self, node: Call) -> Compiled:
        target = self.compile(node.target)
        if node.name == "size":
            if target.type not in (STRING, BYTES, LIST, MAP, ANY):
                raise self.error(f"size() cannot measure {self.describe(target)}", node.col)
            get = target.get
            return Compiled(INT, lambda r: size_of(get(r)))
        assert node.arg is not None  # the parser gives string methods exactly one argument
        arg = self.compile(node.arg)
        for part in (target, arg):
            if part.type not in (STRING, ANY):
                raise self.error(f"{node.name}() needs text, not {self.describe(part)}", node.col)
        return Compiled(BOOL, string_method(node.name, target, arg))


def column_of(node: Node) -> int:
    """The column a message about ``node`` points at: where the operand starts."""
    if isinstance(node, Binary):
        return column_of(node.left)
    if isinstance(node, Call) and node.name != "size":
        return column_of(node.target)
    return node.col
