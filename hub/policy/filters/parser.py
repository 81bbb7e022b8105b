"""Syntax tree of the filter subset and its recursive-descent parser over CEL's grammar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.policy.filters.checker import BOOL, DOUBLE, INT, NULL, STRING
from hub.policy.filters.lexer import Token, Unsupported, tokenize

METHODS = frozenset({"startsWith", "endsWith", "contains", "size"})


@dataclass(frozen=True)
class Lit:
    """A literal value."""

    value: Any
    type: str
    col: int


@dataclass(frozen=True)
class ListLit:
    """A list literal ``[a, b]``."""

    items: tuple[Node, ...]
    col: int


@dataclass(frozen=True)
class FieldRef:
    """A field reference, bare or after ``record.``, with dotted members."""

    path: tuple[str, ...]
    cols: tuple[int, ...]  # of each name in the path, for errors
    col: int


@dataclass(frozen=True)
class Not:
    """Logical negation ``!operand``."""

    operand: Node
    col: int


@dataclass(frozen=True)
class Binary:
    """A binary operator: comparison, ``in``, ``&&`` or ``||``."""

    op: str  # == != < <= > >= in && ||
    left: Node
    right: Node
    col: int  # of the operator


@dataclass(frozen=True)
class Call:
    """A method or function of the subset: ``startsWith``, ``endsWith``, ``contains``, ``size``."""

    name: str  # startsWith endsWith contains size
    target: Node
    arg: Node | None
    col: int  # of the name


Node = Lit | ListLit | FieldRef | Not | Binary | Call

_RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


class Parser:
    """Recursive descent over CEL's grammar, restricted to the subset; anything else is ``Unsupported``."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def parse(self) -> Node:
        node = self.or_()
        tok = self.tokens[self.pos]
        if tok.kind != "end":
            raise Unsupported(f'unexpected "{tok.value}"', tok.col)
        return node

    def peek(self, value: str) -> bool:
        tok = self.tokens[self.pos]
        return tok.kind in ("op", "ident") and tok.value == value

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, value: str) -> Token:
        tok = self.take()
        if tok.kind != "op" or tok.value != value:
            got = "the end" if tok.kind == "end" else f'"{tok.value}"'
            raise Unsupported(f'expected "{value}", found {got}', tok.col)
        return tok

    def or_(self) -> Node:
        node = self.and_()
        while self.peek("||"):
            col = self.take().col
            node = Binary("||", node, self.and_(), col)
        return node

    def and_(self) -> Node:
        node = self.relation()
        while self.peek("&&"):
            col = self.take().col
            node = Binary("&&", node, self.relation(), col)
        return node

    def relation(self) -> Node:
        node = self.unary()
        while True:
            tok = self.tokens[self.pos]
            if (tok.kind == "op" and tok.value in _RELATIONS) or (tok.kind == "ident" and tok.value == "in"):
                self.pos += 1
                node = Binary(tok.value, node, self.unary(), tok.col)
            else:
                return node

    def unary(self) -> Node:
        tok = self.tokens[self.pos]
        if tok.kind == "op" and tok.value == "!":
            self.pos += 1
            nots = [tok.col]
            while self.peek("!"):
                nots.append(self.take().col)
            node = self.member()
            for col in reversed(nots):
                node = Not(node, col)
            return node
        if tok.kind == "op" and tok.value == "-":
            number = self.tokens[self.pos + 1]
            if number.kind not in ("int", "double"):
                raise Unsupported("negating anything but a number is outside the built-in subset", tok.col)
            self.pos += 2
            return self.member_of(Lit(-number.value, number.kind, tok.col))
        return self.member()

    def member(self) -> Node:
        return self.member_of(self.primary())

    def member_of(self, node: Node) -> Node:
        while True:
            tok = self.tokens[self.pos]
            if tok.kind == "op" and tok.value == "[":
                raise Unsupported("indexing with [] is outside the built-in subset", tok.col)
            if not (tok.kind == "op" and tok.value == "."):
                return node
            self.pos += 1
            name = self.take()
            if name.kind != "ident":
                raise Unsupported('expected a name after "."', name.col)
            if self.peek("("):
                if name.value not in METHODS:
                    raise Unsupported(f'method "{name.value}" is outside the built-in subset', name.col)
                args = self.arguments()
                if len(args) != (0 if name.value == "size" else 1):
                    raise Unsupported(f'wrong number of arguments to "{name.value}"', name.col)
                node = Call(name.value, node, args[0] if args else None, name.col)
            elif isinstance(node, FieldRef):
                node = FieldRef((*node.path, name.value), (*node.cols, name.col), node.col)
            else:
                raise Unsupported(
                    f'selecting ".{name.value}" on a value is outside the built-in subset', name.col
                )

    def arguments(self) -> list[Node]:
        self.expect("(")
        args: list[Node] = []
        if not self.peek(")"):
            args.append(self.or_())
            while self.peek(","):
                self.pos += 1
                args.append(self.or_())
        self.expect(")")
        return args

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "string":
            return Lit(tok.value, STRING, tok.col)
        if tok.kind == "int":
            return Lit(tok.value, INT, tok.col)
        if tok.kind == "double":
            return Lit(tok.value, DOUBLE, tok.col)
        if tok.kind == "op" and tok.value == "(":
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.value == "[":
            items: list[Node] = []
            while not self.peek("]"):
                items.append(self.or_())
                if not self.peek(","):
                    break
                self.pos += 1
            self.expect("]")
            return ListLit(tuple(items), tok.col)
        if tok.kind == "ident":
            return self.identifier(tok)
        found = "the end of the expression" if tok.kind == "end" else f'"{tok.value}"'
        raise Unsupported(f"expected a value, found {found}", tok.col)

    def identifier(self, tok: Token) -> Node:
        name = tok.value
        if name in ("true", "false"):
            return Lit(name == "true", BOOL, tok.col)
        if name == "null":
            return Lit(None, NULL, tok.col)
        if name == "in":
            raise Unsupported('expected a value, found "in"', tok.col)
        if self.peek("("):
            if name != "size":
                raise Unsupported(f'function "{name}" is outside the built-in subset', tok.col)
            args = self.arguments()
            if len(args) != 1:
                raise Unsupported("size() takes one argument", tok.col)
            return Call("size", args[0], None, tok.col)
        if name == "record":
            if not self.peek("."):
                raise Unsupported("the whole record as a value is outside the built-in subset", tok.col)
            self.pos += 1
            field_tok = self.take()
            if field_tok.kind != "ident":
                raise Unsupported('expected a field name after "record."', field_tok.col)
            return FieldRef((field_tok.value,), (field_tok.col,), tok.col)
        return FieldRef((name,), (tok.col,), tok.col)
