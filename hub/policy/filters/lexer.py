"""Tokens of the filter subset: CEL's lexical grammar for literals, names and operators.

Anything the subset does not read raises ``Unsupported`` with the column where it stopped, so
``compile_filter`` can hand the expression to cel-python instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


class Unsupported(Exception):  # noqa: N818 - control flow inside this package: "try cel-python instead"
    """The expression is outside the subset (or invalid); ``column`` is where the subset parser stopped."""

    def __init__(self, message: str, column: int, *, final: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.final = final  # invalid CEL too (e.g. an int literal out of range): cel-python must not run it


INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_BEFORE_UNARY = frozenset("([{,!&|=<>?:+-*/%")


def literal_range_error(text: str, start: int, end: int, value: int, *, unsigned: bool = False) -> str | None:
    """Why the integer literal ``text[start:end]`` (0-based) is out of range, or None when it fits.

    CEL ints are 64-bit; ``-9223372036854775808`` is valid because a ``-`` right before a literal (a unary
    minus, not a subtraction) negates it in the literal itself, as CEL's parsers do.
    """
    if unsigned:
        return None if value <= UINT64_MAX else f"unsigned integer literal {text[start:end]} is out of range"
    j = start - 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    negated = False
    if j >= 0 and text[j] == "-":
        k = j - 1
        while k >= 0 and text[k] in " \t\r\n":
            k -= 1
        negated = k < 0 or text[k] in _BEFORE_UNARY
    if (-value if negated else value) >= INT64_MIN and (negated or value <= INT64_MAX):
        return None
    sign = "-" if negated else ""
    return f"integer literal {sign}{text[start:end]} is out of range (64-bit: {INT64_MIN} to {INT64_MAX})"


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``col`` is 1-based in the expression."""

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


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token."""
    tokens: list[Token] = []
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
                raise Unsupported("a raw or bytes string is outside the built-in subset", col)
            tokens.append(Token("ident", word, col))
            i = j
        elif ch.isdigit():
            i = _number(text, i, tokens)
        elif ch in "'\"":
            i = _string(text, i, tokens)
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token("op", op, col))
                    i += len(op)
                    break
            else:
                hint = ' (did you mean "=="?)' if ch == "=" else ""
                raise Unsupported(f'unexpected "{ch}"{hint}', col)
    tokens.append(Token("end", None, n + 1))
    return tokens


def _number(text: str, i: int, tokens: list[Token]) -> int:  # noqa: PLR0912 - one branch per number form
    n, start = len(text), i
    if text.startswith(("0x", "0X"), i):
        j = i + 2
        while j < n and text[j] in "0123456789abcdefABCDEF":
            j += 1
        if j == i + 2:
            raise Unsupported("hexadecimal number without digits", start + 1)
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
        raise Unsupported(f'unexpected "{text[j]}" after a number', j + 1)  # e.g. the uint suffix 1u
    if kind == "int" and (problem := literal_range_error(text, start, j, int(value))) is not None:
        raise Unsupported(problem, start + 1, final=True)
    tokens.append(Token(kind, value, start + 1))
    return j


def _string(text: str, i: int, tokens: list[Token]) -> int:
    quote, n, start = text[i], len(text), i
    if text.startswith(quote * 3, i):
        raise Unsupported("a triple-quoted string is outside the built-in subset", start + 1)
    out: list[str] = []
    j = i + 1
    while True:
        if j >= n or text[j] in "\r\n":
            raise Unsupported("unterminated string", start + 1)
        ch = text[j]
        if ch == quote:
            tokens.append(Token("string", "".join(out), start + 1))
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
                raise Unsupported(f"bad \\{esc} escape", j + 1)
            out.append(chr(int(digits, 16)))
            j += 2 + len(digits)
        elif esc in "0123" and esc:
            digits = text[j + 1 : j + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise Unsupported("bad octal escape", j + 1)
            out.append(chr(int(digits, 8)))
            j += 4
        else:
            raise Unsupported(f"unknown escape \\{esc}", j + 1)
