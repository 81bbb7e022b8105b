"""Row filters: which records of a resource a subscription receives, written in CEL.

CEL (Common Expression Language) is what Confluent data contracts and Conduktor use for rules, so an
integrator's filter reads like theirs::

    district == "浦东新区" && status in ["存续", "在业"]
    record.credit_code.startsWith("9131") && !(record.status == "注销")

Fields are referenced by bare name (``district``) or as ``record.district``; ``record`` is the record
being filtered (Confluent writes ``message.x``; here it is ``record.x``). A field of an Avro record type
is reached with dots (``record.address.city``). Dates and timestamps (Avro logical types) are seen as
ISO-8601 text so they compare naturally with string literals: a ``date`` as ``"1985-03-07"``, a
``timestamp-*`` as ``"2024-05-01T08:30:00.000Z"`` (UTC, milliseconds), so
``registered_on >= "2024-01-01"`` works.

Two engines, chosen by ``compile_filter``:

- ``"subset"``: a CEL-compatible safe subset parsed here and compiled once into nested Python closures
  (never ``eval``/``exec``): literals (strings in single or double quotes with CEL escapes, int, double,
  bool, null, lists), field references, ``== != < <= > >=``, ``in`` (list or map membership), ``&& || !``,
  parentheses, ``s.startsWith(t)``, ``s.endsWith(t)``, ``s.contains(t)``, ``size(x)`` / ``x.size()``.
  Precedence as in CEL: ``!`` binds tightest, then comparisons and ``in``, then ``&&``, then ``||``.
  It costs a few hundred nanoseconds per record (see tests/bench/filter_cost.py).
- ``"cel"``: anything else that is valid CEL (arithmetic, ``?:``, ``matches``, ``has``, macros such as
  ``exists``) runs on cel-python's interpreter, compiled once per plan but about a thousand times slower
  (0.2-0.4 ms per record, measured): keep hot filters inside the subset. The interpreter is used, not
  cel-python's transpiler, which would ``exec`` generated Python.

Semantics (documented because they differ from a bare Python comparison or from strict CEL):

- Null: ``x == null`` is true only for null; a null equals nothing else, so ``x != "a"`` is true when
  ``x`` is null (CEL's heterogeneous equality). Ordering (``< <= > >=``), ``startsWith``/``endsWith``/
  ``contains`` and ``in`` with a null operand are **false** instead of an error, so a record with a
  missing value simply does not match; ``size(null)`` is null. A missing key reads as null. On the
  ``cel`` engine the same rule is approximated: an evaluation error on a record where a referenced field
  is null counts as no match.
- Equality is typed: ``true == 1`` is false; ``1 == 1.0`` is true (numbers compare by value).
- ``&&`` and ``||`` are commutative for errors as in CEL: ``false && <error>`` and ``<error> && false``
  are both false.
- Errors: an expression that does not compile raises ``FilterError`` with the 1-based ``column``; when
  Avro ``field_types`` are given, unknown fields and comparisons between incompatible types (a string
  field against a number) are compile errors too. A record the filter cannot be evaluated on (a value of
  an unexpected type) makes ``RowFilter.__call__`` raise ``FilterRuntimeError``, which is an
  ``InvalidRecord``: the engine dead-letters that record and goes on; the hub never crashes on one.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from hub.policy.errors import FilterError, FilterRuntimeError

MAX_EXPRESSION_LENGTH = 10_000
"""A row filter longer than this is refused: it is config, and no real condition is that long."""

Record = Mapping[str, Any]
Getter = Callable[[Record], Any]
Engine = Literal["subset", "cel"]

_RUNTIME_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)

# Static types, enough to catch mistakes in config files.
_BOOL, _INT, _DOUBLE, _STRING, _BYTES = "bool", "int", "double", "string", "bytes"
_NULL, _LIST, _MAP, _ANY = "null", "list", "map", "any"
_NUMERIC = frozenset({_INT, _DOUBLE})
_ORDERED = frozenset({_BOOL, _INT, _DOUBLE, _STRING, _BYTES, _ANY})

_EPOCH_DATE = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1)  # naive on purpose: Avro timestamps count from the UTC epoch
_MIDNIGHT = datetime(2000, 1, 1)  # only its time of day is used

_METHODS = frozenset({"startsWith", "endsWith", "contains", "size"})
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


class RowFilter:
    """A compiled row filter. Call it on a decoded record: ``keep = row_filter(record)``.

    Attributes:
        expr: the expression as written.
        fields: top-level field names the expression reads.
        engine: ``"subset"`` (closures compiled here) or ``"cel"`` (cel-python's interpreter).
    """

    __slots__ = ("_fn", "engine", "expr", "fields")

    def __init__(
        self, expr: str, fields: frozenset[str], engine: Engine, fn: Callable[[Record], bool]
    ) -> None:
        self.expr = expr
        self.fields = fields
        self.engine: Engine = engine
        self._fn = fn

    def __call__(self, record: Record) -> bool:
        """Whether ``record`` passes the filter.

        Raises:
            FilterRuntimeError: the filter cannot be evaluated on this record (an ``InvalidRecord``: the
                engine dead-letters it). Its message names types and fields, never values.
        """
        try:
            return self._fn(record)
        except _RUNTIME_ERRORS as exc:
            detail = str(exc) if isinstance(exc, TypeError | AttributeError) else type(exc).__name__
            only = next(iter(self.fields)) if len(self.fields) == 1 else None
            raise FilterRuntimeError(
                f"row filter {self.expr!r} cannot be evaluated on this record: {detail}",
                expr=self.expr,
                field=only,
            ) from exc

    def __repr__(self) -> str:
        return f"RowFilter({self.expr!r}, engine={self.engine!r})"


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
    types = None if field_types is None else {name: _field_info(t) for name, t in field_types.items()}
    ctx = _Context(expr, types, where)
    if not expr.strip():
        raise ctx.error("the expression is empty", 1)
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise ctx.error(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters", 1)
    try:
        if engine == "cel":
            return _compile_cel(ctx, None)
        try:
            tree = _Parser(expr).parse()
        except _Unsupported as unsupported:
            if engine == "subset":
                raise ctx.error(unsupported.message, unsupported.column) from None
            return _compile_cel(ctx, unsupported)
        compiled = ctx.condition(tree, None)
    except RecursionError:
        raise ctx.error("the expression is nested too deeply", 1) from None
    return RowFilter(expr, frozenset(ctx.fields), "subset", compiled.get)


# ---------------------------------------------------------------------------------------------------
# Field types


@dataclass(frozen=True)
class _FieldInfo:
    type: str
    temporal: str | None = None  # Avro logicalType of a date/time field, presented as ISO text
    members: Mapping[str, Any] | None = None  # Avro types of a record-typed field's fields


_PRIMITIVE_TYPES = {
    "null": _NULL,
    "boolean": _BOOL,
    "int": _INT,
    "long": _INT,
    "float": _DOUBLE,
    "double": _DOUBLE,
    "string": _STRING,
    "bytes": _BYTES,
    "enum": _STRING,
    "fixed": _BYTES,
    "array": _LIST,
    "map": _MAP,
}
_TEMPORAL = frozenset(
    {
        "date",
        "time-millis",
        "time-micros",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)


def _field_info(avro: Any) -> _FieldInfo:  # noqa: PLR0911 - one return per Avro type form
    if isinstance(avro, list):
        branches = [t for t in avro if t != "null"]
        if len(branches) == 1:
            return _field_info(branches[0])
        return _FieldInfo(_NULL if not branches else _ANY)
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical in _TEMPORAL:
            return _FieldInfo(_STRING, temporal=logical)
        if logical == "decimal":
            return _FieldInfo(_DOUBLE)
        kind = avro.get("type")
        if kind == "record":
            members = {f["name"]: f["type"] for f in avro.get("fields", ()) if isinstance(f, dict)}
            return _FieldInfo(_MAP, members=members)
        return _field_info(kind)
    if isinstance(avro, str):
        return _FieldInfo(_PRIMITIVE_TYPES.get(avro, _ANY))
    return _FieldInfo(_ANY)


# ---------------------------------------------------------------------------------------------------
# Tokens and syntax tree of the subset


class _Unsupported(Exception):  # noqa: N818 - control flow inside this module: "try cel-python instead"
    """The expression is outside the subset (or invalid); ``column`` is where the subset parser stopped."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["ident", "int", "double", "string", "op", "end"]
    value: Any
    col: int  # 1-based


_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", ".", "-")
_ESCAPES = {
    "\\": "\\",
    '"': '"',
    "'": "'",
    "`": "`",
    "?": "?",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch in " \t\r\n":
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if j < n and text[j] in "'\"" and word.lower() in ("r", "b", "rb", "br"):
                raise _Unsupported("a raw or bytes string is outside the built-in subset", col)
            tokens.append(_Token("ident", word, col))
            i = j
        elif ch.isdigit():
            i = _number(text, i, tokens)
        elif ch in "'\"":
            i = _string(text, i, tokens)
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(_Token("op", op, col))
                    i += len(op)
                    break
            else:
                hint = ' (did you mean "=="?)' if ch == "=" else ""
                raise _Unsupported(f'unexpected "{ch}"{hint}', col)
    tokens.append(_Token("end", None, n + 1))
    return tokens


def _number(text: str, i: int, tokens: list[_Token]) -> int:
    n, start = len(text), i
    if text.startswith(("0x", "0X"), i):
        j = i + 2
        while j < n and text[j] in "0123456789abcdefABCDEF":
            j += 1
        if j == i + 2:
            raise _Unsupported("hexadecimal number without digits", start + 1)
        value: int | float = int(text[i + 2 : j], 16)
        kind: Literal["int", "double"] = "int"
    else:
        j = i
        while j < n and text[j].isdigit():
            j += 1
        kind = "int"
        if j + 1 < n and text[j] == "." and text[j + 1].isdigit():
            kind, j = "double", j + 1
            while j < n and text[j].isdigit():
                j += 1
        if j < n and text[j] in "eE":
            k = j + 1
            if k < n and text[k] in "+-":
                k += 1
            if k < n and text[k].isdigit():
                kind, j = "double", k
                while j < n and text[j].isdigit():
                    j += 1
        value = float(text[i:j]) if kind == "double" else int(text[i:j])
    if j < n and (text[j].isalnum() or text[j] == "_"):
        raise _Unsupported(f'unexpected "{text[j]}" after a number', j + 1)  # e.g. the uint suffix 1u
    tokens.append(_Token(kind, value, start + 1))
    return j


def _string(text: str, i: int, tokens: list[_Token]) -> int:
    quote, n, start = text[i], len(text), i
    if text.startswith(quote * 3, i):
        raise _Unsupported("a triple-quoted string is outside the built-in subset", start + 1)
    out: list[str] = []
    j = i + 1
    while True:
        if j >= n or text[j] in "\r\n":
            raise _Unsupported("unterminated string", start + 1)
        ch = text[j]
        if ch == quote:
            tokens.append(_Token("string", "".join(out), start + 1))
            return j + 1
        if ch != "\\":
            out.append(ch)
            j += 1
            continue
        esc = text[j + 1] if j + 1 < n else ""
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            j += 2
        elif esc in _HEX_ESCAPES:
            digits = text[j + 2 : j + 2 + _HEX_ESCAPES[esc]]
            if len(digits) != _HEX_ESCAPES[esc] or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise _Unsupported(f"bad \\{esc} escape", j + 1)
            out.append(chr(int(digits, 16)))
            j += 2 + len(digits)
        elif esc in "0123" and esc:
            digits = text[j + 1 : j + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise _Unsupported("bad octal escape", j + 1)
            out.append(chr(int(digits, 8)))
            j += 4
        else:
            raise _Unsupported(f"unknown escape \\{esc}", j + 1)


@dataclass(frozen=True)
class _Lit:
    value: Any
    type: str
    col: int


@dataclass(frozen=True)
class _List:
    items: tuple[_Node, ...]
    col: int


@dataclass(frozen=True)
class _Field:
    path: tuple[str, ...]
    cols: tuple[int, ...]  # of each name in the path, for errors
    col: int


@dataclass(frozen=True)
class _Not:
    operand: _Node
    col: int


@dataclass(frozen=True)
class _Binary:
    op: str  # == != < <= > >= in && ||
    left: _Node
    right: _Node
    col: int  # of the operator


@dataclass(frozen=True)
class _Call:
    name: str  # startsWith endsWith contains size
    target: _Node
    arg: _Node | None
    col: int  # of the name


_Node = _Lit | _List | _Field | _Not | _Binary | _Call

_RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


class _Parser:
    """Recursive descent over CEL's grammar, restricted to the subset; anything else is ``_Unsupported``."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self) -> _Node:
        node = self.or_()
        tok = self.tokens[self.pos]
        if tok.kind != "end":
            raise _Unsupported(f'unexpected "{tok.value}"', tok.col)
        return node

    def peek(self, value: str) -> bool:
        tok = self.tokens[self.pos]
        return tok.kind in ("op", "ident") and tok.value == value

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, value: str) -> _Token:
        tok = self.take()
        if tok.kind != "op" or tok.value != value:
            got = "the end" if tok.kind == "end" else f'"{tok.value}"'
            raise _Unsupported(f'expected "{value}", found {got}', tok.col)
        return tok

    def or_(self) -> _Node:
        node = self.and_()
        while self.peek("||"):
            col = self.take().col
            node = _Binary("||", node, self.and_(), col)
        return node

    def and_(self) -> _Node:
        node = self.relation()
        while self.peek("&&"):
            col = self.take().col
            node = _Binary("&&", node, self.relation(), col)
        return node

    def relation(self) -> _Node:
        node = self.unary()
        while True:
            tok = self.tokens[self.pos]
            if (tok.kind == "op" and tok.value in _RELATIONS) or (tok.kind == "ident" and tok.value == "in"):
                self.pos += 1
                node = _Binary(tok.value, node, self.unary(), tok.col)
            else:
                return node

    def unary(self) -> _Node:
        tok = self.tokens[self.pos]
        if tok.kind == "op" and tok.value == "!":
            self.pos += 1
            nots = [tok.col]
            while self.peek("!"):
                nots.append(self.take().col)
            node = self.member()
            for col in reversed(nots):
                node = _Not(node, col)
            return node
        if tok.kind == "op" and tok.value == "-":
            number = self.tokens[self.pos + 1]
            if number.kind not in ("int", "double"):
                raise _Unsupported("negating anything but a number is outside the built-in subset", tok.col)
            self.pos += 2
            return self.member_of(_Lit(-number.value, number.kind, tok.col))
        return self.member()

    def member(self) -> _Node:
        return self.member_of(self.primary())

    def member_of(self, node: _Node) -> _Node:
        while True:
            tok = self.tokens[self.pos]
            if tok.kind == "op" and tok.value == "[":
                raise _Unsupported("indexing with [] is outside the built-in subset", tok.col)
            if not (tok.kind == "op" and tok.value == "."):
                return node
            self.pos += 1
            name = self.take()
            if name.kind != "ident":
                raise _Unsupported('expected a name after "."', name.col)
            if self.peek("("):
                if name.value not in _METHODS:
                    raise _Unsupported(f'method "{name.value}" is outside the built-in subset', name.col)
                args = self.arguments()
                if len(args) != (0 if name.value == "size" else 1):
                    raise _Unsupported(f'wrong number of arguments to "{name.value}"', name.col)
                node = _Call(name.value, node, args[0] if args else None, name.col)
            elif isinstance(node, _Field):
                node = _Field((*node.path, name.value), (*node.cols, name.col), node.col)
            else:
                raise _Unsupported(
                    f'selecting ".{name.value}" on a value is outside the built-in subset', name.col
                )

    def arguments(self) -> list[_Node]:
        self.expect("(")
        args: list[_Node] = []
        if not self.peek(")"):
            args.append(self.or_())
            while self.peek(","):
                self.pos += 1
                args.append(self.or_())
        self.expect(")")
        return args

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "string":
            return _Lit(tok.value, _STRING, tok.col)
        if tok.kind == "int":
            return _Lit(tok.value, _INT, tok.col)
        if tok.kind == "double":
            return _Lit(tok.value, _DOUBLE, tok.col)
        if tok.kind == "op" and tok.value == "(":
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.value == "[":
            items: list[_Node] = []
            while not self.peek("]"):
                items.append(self.or_())
                if not self.peek(","):
                    break
                self.pos += 1
            self.expect("]")
            return _List(tuple(items), tok.col)
        if tok.kind == "ident":
            return self.identifier(tok)
        found = "the end of the expression" if tok.kind == "end" else f'"{tok.value}"'
        raise _Unsupported(f"expected a value, found {found}", tok.col)

    def identifier(self, tok: _Token) -> _Node:
        name = tok.value
        if name in ("true", "false"):
            return _Lit(name == "true", _BOOL, tok.col)
        if name == "null":
            return _Lit(None, _NULL, tok.col)
        if name == "in":
            raise _Unsupported('expected a value, found "in"', tok.col)
        if self.peek("("):
            if name != "size":
                raise _Unsupported(f'function "{name}" is outside the built-in subset', tok.col)
            args = self.arguments()
            if len(args) != 1:
                raise _Unsupported("size() takes one argument", tok.col)
            return _Call("size", args[0], None, tok.col)
        if name == "record":
            if not self.peek("."):
                raise _Unsupported("the whole record as a value is outside the built-in subset", tok.col)
            self.pos += 1
            field_tok = self.take()
            if field_tok.kind != "ident":
                raise _Unsupported('expected a field name after "record."', field_tok.col)
            return _Field((field_tok.value,), (field_tok.col,), tok.col)
        return _Field((name,), (tok.col,), tok.col)


# ---------------------------------------------------------------------------------------------------
# Compilation of the subset to closures


@dataclass(frozen=True)
class _Compiled:
    type: str
    get: Getter
    const: bool = False
    value: Any = None
    field: str | None = None  # the dotted field name, for messages
    temporal: str | None = None
    raw: Getter | None = None  # a date field's value before its ISO-text view, for _date_comparison


@dataclass
class _Context:
    expr: str
    types: dict[str, _FieldInfo] | None
    where: str
    fields: set[str] = field(default_factory=set)

    def error(self, message: str, column: int, detail: str = "") -> FilterError:
        return FilterError(
            f"row filter: {message} at column {column}{detail}",
            column=column,
            expr=self.expr,
            where=self.where,
        )

    def compile(self, node: _Node) -> _Compiled:  # noqa: PLR0911 - one return per node type
        match node:
            case _Lit():
                return _constant(node.value, node.type)
            case _List():
                items = [self.compile(item) for item in node.items]
                if all(item.const for item in items):
                    return _constant([item.value for item in items], _LIST)
                getters = tuple(item.get for item in items)
                return _Compiled(_LIST, lambda r: [g(r) for g in getters])
            case _Field():
                return self.field_ref(node)
            case _Not():
                operand = self.condition(node.operand, "!")
                get = operand.get
                return _Compiled(_BOOL, lambda r: not get(r))
            case _Binary(op="&&" | "||"):
                left = self.condition(node.left, node.op).get
                right = self.condition(node.right, node.op).get
                return _Compiled(_BOOL, _and(left, right) if node.op == "&&" else _or(left, right))
            case _Binary(op="in"):
                return self.membership(node)
            case _Binary():
                return self.comparison(node)
            case _Call():
                return self.call(node)
        raise AssertionError(node)  # pragma: no cover - the match above is exhaustive

    def condition(self, node: _Node, op: str | None) -> _Compiled:
        """``node`` used as true/false: the whole expression (``op`` None) or an operand of ``op``."""
        compiled = self.compile(node)
        if compiled.type == _BOOL and compiled.field is None:
            return compiled  # an operator's result: always a bool
        if compiled.type == _BOOL:
            get = compiled.get
            return _Compiled(_BOOL, lambda r: get(r) is True)  # a boolean field may be null: no match
        if compiled.type == _ANY:
            return _Compiled(_BOOL, _strict_bool(compiled.get))
        if op is None:
            raise self.error(
                f"the expression is {self.describe(compiled)}, not a condition (true or false)", 1
            )
        raise self.error(f'the operand of "{op}" is {self.describe(compiled)}, not a condition', _col(node))

    def field_ref(self, node: _Field) -> _Compiled:
        top, rest = node.path[0], node.path[1:]
        self.fields.add(top)
        name = ".".join(node.path)
        if self.types is None:
            return _Compiled(_ANY, _path_getter(top, rest, None, generic=True), field=name)
        info = self.types.get(top)
        if info is None:
            raise self.error(f'unknown field "{top}"', node.cols[0], _choices(top, self.types))
        for depth, member in enumerate(rest, start=1):
            if info.type == _ANY or (info.type == _MAP and info.members is None):
                info = _FieldInfo(_ANY)
                break
            if info.members is None:
                parent = ".".join(node.path[:depth])
                raise self.error(
                    f'field "{parent}" is {_article(info.type)} and has no field "{member}"', node.cols[depth]
                )
            if member not in info.members:
                parent = ".".join(node.path[:depth])
                raise self.error(
                    f'unknown field "{member}" in "{parent}"',
                    node.cols[depth],
                    _choices(member, info.members),
                )
            info = _field_info(info.members[member])
        getter = _path_getter(top, rest, info.temporal, generic=info.type == _ANY)
        raw = _path_getter(top, rest, None, generic=False) if info.temporal == "date" else None
        return _Compiled(info.type, getter, field=name, temporal=info.temporal, raw=raw)

    def describe(self, compiled: _Compiled) -> str:
        if compiled.field is None:
            return _article(compiled.type)
        if compiled.temporal:
            return f'{compiled.temporal} field "{compiled.field}" (compared as ISO-8601 text)'
        return f'{compiled.type} field "{compiled.field}"'

    def comparison(self, node: _Binary) -> _Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        op = node.op
        if not _comparable(left.type, right.type):
            raise self.error(f"cannot compare {self.describe(left)} with {self.describe(right)}", node.col)
        if op in ("==", "!="):
            return _Compiled(_BOOL, _equality(left, right, negate=op == "!="))
        for side in (left, right):
            if side.type not in _ORDERED:
                raise self.error(f'"{op}" cannot order {self.describe(side)}', node.col)
        return _Compiled(_BOOL, _ordering(op, left, right))

    def membership(self, node: _Binary) -> _Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        if right.type not in (_LIST, _MAP, _ANY):
            raise self.error(f'"in" needs a list or a map on its right, not {self.describe(right)}', node.col)
        if isinstance(node.right, _List):
            for item_node in node.right.items:
                item = self.compile(item_node)
                if not _comparable(left.type, item.type):
                    raise self.error(
                        f"cannot compare {self.describe(left)} with {self.describe(item)}", _col(item_node)
                    )
        return _Compiled(_BOOL, _membership(left, right))

    def call(self, node: _Call) -> _Compiled:
        target = self.compile(node.target)
        if node.name == "size":
            if target.type not in (_STRING, _BYTES, _LIST, _MAP, _ANY):
                raise self.error(f"size() cannot measure {self.describe(target)}", node.col)
            get = target.get
            return _Compiled(_INT, lambda r: _size(get(r)))
        assert node.arg is not None  # the parser gives string methods exactly one argument
        arg = self.compile(node.arg)
        for part in (target, arg):
            if part.type not in (_STRING, _ANY):
                raise self.error(f"{node.name}() needs text, not {self.describe(part)}", node.col)
        return _Compiled(_BOOL, _string_method(node.name, target, arg))


def _col(node: _Node) -> int:
    if isinstance(node, _Binary):
        return _col(node.left)
    if isinstance(node, _Call) and node.name != "size":
        return _col(node.target)
    return node.col


def _article(type_: str) -> str:
    return {_ANY: "a value", _NULL: "null", _INT: "an int"}.get(type_, f"a {type_}")


def _choices(name: str, known: Mapping[str, Any]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f" ({hint}fields: {shown})"


def _comparable(a: str, b: str) -> bool:
    return a == b or _ANY in (a, b) or _NULL in (a, b) or (a in _NUMERIC and b in _NUMERIC)


def _constant(value: Any, type_: str) -> _Compiled:
    return _Compiled(type_, lambda _r: value, const=True, value=value)


def _strict_bool(get: Getter) -> Callable[[Record], bool]:
    """A value used as a condition: a bool, or null (no match); anything else is a type error."""

    def condition(r: Record) -> bool:
        v = get(r)
        if v is True or v is False:
            return v
        if v is None:
            return False
        raise TypeError(f"a condition must be true or false, not a {type(v).__name__}")

    return condition


def _and(left: Callable[[Record], bool], right: Callable[[Record], bool]) -> Callable[[Record], bool]:
    def both(r: Record) -> bool:
        try:
            if not left(r):
                return False
        except _RUNTIME_ERRORS:
            # CEL: <error> && false is false; only an error that decides the outcome propagates.
            if not right(r):
                return False
            raise
        return right(r)

    return both


def _or(left: Callable[[Record], bool], right: Callable[[Record], bool]) -> Callable[[Record], bool]:
    def either(r: Record) -> bool:
        try:
            if left(r):
                return True
        except _RUNTIME_ERRORS:
            if right(r):
                return True
            raise
        return right(r)

    return either


def _cel_eq(a: Any, b: Any) -> bool:
    if a.__class__ is bool or b.__class__ is bool:
        return a.__class__ is b.__class__ and a == b
    return bool(a == b)


def _equality(  # noqa: PLR0911 - one specialised closure per constant type
    left: _Compiled, right: _Compiled, *, negate: bool
) -> Callable[[Record], bool]:
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
        return lambda r: not _cel_eq(get(r), other(r))
    return lambda r: _cel_eq(get(r), other(r))


_ORDER_OPS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SWAPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _ordering(op: str, left: _Compiled, right: _Compiled) -> Callable[[Record], bool]:
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
        v = _iso(v, "date")
        if v is None:
            return op == "!="
        return bool(compare(v, text))

    return date_compare


def _membership(left: _Compiled, right: _Compiled) -> Callable[[Record], bool]:
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
        return any(_cel_eq(v, item) for item in container)
    if isinstance(container, dict):
        try:
            return v in container
        except TypeError:
            return False
    raise TypeError(f'"in" needs a list or a map, not a {type(container).__name__}')


def _size(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, str | bytes | list | tuple | dict):
        return len(v)
    raise TypeError(f"size() cannot measure a {type(v).__name__}")


def _string_method(name: str, target: _Compiled, arg: _Compiled) -> Callable[[Record], bool]:
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


# ---------------------------------------------------------------------------------------------------
# Field access and the ISO-text view of dates and times


def _path_getter(top: str, rest: tuple[str, ...], temporal: str | None, *, generic: bool) -> Getter:
    """Read a field; ``generic`` (type unknown) presents any date/time object as ISO text."""
    if rest:
        return _nested_getter(top, rest, temporal, generic=generic)
    if temporal is not None:
        return lambda r: _iso(r.get(top), temporal)
    if generic:
        return lambda r: _plain(r.get(top))
    return lambda r: r.get(top)


def _nested_getter(top: str, rest: tuple[str, ...], temporal: str | None, *, generic: bool) -> Getter:
    def get(r: Record) -> Any:
        v = r.get(top)
        for key in rest:
            if v is None:
                return None
            if not isinstance(v, Mapping):
                raise TypeError(f'a {type(v).__name__} has no field "{key}"')
            v = v.get(key)
        if temporal is not None:
            return _iso(v, temporal)
        return _plain(v) if generic else v

    return get


def _plain(v: Any) -> Any:
    """A value of unknown Avro type: date/time objects become ISO text, anything else is as is."""
    cls = v.__class__
    if cls is datetime:
        return _timestamp_text(v, local=v.tzinfo is None)
    if cls is date:
        return v.isoformat()
    if cls is time:
        return v.isoformat(timespec="milliseconds")
    return v


def _iso(v: Any, temporal: str) -> Any:  # noqa: PLR0911 - one return per date/time form
    """ISO-8601 text of a date/time value, whether decoded by fastavro or left as Avro's int."""
    cls = v.__class__
    if v is None or cls is str:
        return v
    if cls is date:
        return v.isoformat()
    if isinstance(v, datetime):
        return _timestamp_text(v, local=temporal.startswith("local-"))
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time):
        return v.isoformat(timespec="milliseconds")
    if isinstance(v, int) and not isinstance(v, bool):
        match temporal:
            case "date":
                return (_EPOCH_DATE + timedelta(days=v)).isoformat()
            case "timestamp-millis" | "local-timestamp-millis":
                return _timestamp_text(
                    _EPOCH + timedelta(milliseconds=v), local=temporal.startswith("local-")
                )
            case "timestamp-micros" | "local-timestamp-micros":
                return _timestamp_text(
                    _EPOCH + timedelta(microseconds=v), local=temporal.startswith("local-")
                )
            case "time-millis":
                return (_MIDNIGHT + timedelta(milliseconds=v)).time().isoformat(timespec="milliseconds")
            case _:
                return (_MIDNIGHT + timedelta(microseconds=v)).time().isoformat(timespec="milliseconds")
    raise TypeError(f"a {temporal} field holds a {type(v).__name__}")


def _timestamp_text(v: datetime, *, local: bool) -> str:
    if local:
        return v.replace(tzinfo=None).isoformat(timespec="milliseconds")
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v.isoformat(timespec="milliseconds") + "Z"


# ---------------------------------------------------------------------------------------------------
# The cel-python engine, for expressions outside the subset


def _compile_cel(ctx: _Context, unsupported: _Unsupported | None) -> RowFilter:  # noqa: PLR0915 - one pipeline
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
                raise ctx.error(f'unknown field "{name}"', column, _choices(name, ctx.types))
        ctx.fields.add(name)
        getter = _path_getter(
            name, (), info.temporal if info else None, generic=info is None or info.type == _ANY
        )
        (members if via_record else bare)[name] = getter
    every_field: dict[str, Getter] = {}
    if whole_record and ctx.types is not None:
        every_field = {
            name: _path_getter(name, (), info.temporal, generic=info.type == _ANY)
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
            activation["record"] = to_cel({k: _plain(v) for k, v in r.items()})
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
            return string(_plain(v))
        if isinstance(v, str):
            return string(v)
        if isinstance(v, int):
            return integer(v)
        raise TypeError(f"a {cls.__name__} value has no CEL equivalent")

    return to_cel
