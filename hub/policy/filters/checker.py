"""Static types of the filter subset: what each Avro field type is seen as, and which operands fit.

Enough typing to catch mistakes in config files (a string field compared with a number, an unknown
field); the closures themselves are built in ``compiler`` from ``operators``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.policy.filters.row_filter import Getter

# Static types, enough to catch mistakes in config files.
BOOL, INT, DOUBLE, STRING, BYTES = "bool", "int", "double", "string", "bytes"
NULL, LIST, MAP, ANY = "null", "list", "map", "any"
NUMERIC = frozenset({INT, DOUBLE})
ORDERED = frozenset({BOOL, INT, DOUBLE, STRING, BYTES, ANY})


@dataclass(frozen=True)
class FieldInfo:
    """What the subset knows of one Avro field: its static type, date/time view, record members."""

    type: str
    temporal: str | None = None  # Avro logicalType of a date/time field, presented as ISO text
    members: Mapping[str, Any] | None = None  # Avro types of a record-typed field's fields


_PRIMITIVE_TYPES = {
    "null": NULL,
    "boolean": BOOL,
    "int": INT,
    "long": INT,
    "float": DOUBLE,
    "double": DOUBLE,
    "string": STRING,
    "bytes": BYTES,
    "enum": STRING,
    "fixed": BYTES,
    "array": LIST,
    "map": MAP,
}
TEMPORAL = frozenset(
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


def field_info(avro: Any) -> FieldInfo:  # noqa: PLR0911 - one return per Avro type form
    """The static type of an Avro field type (a nullable union is its non-null branch)."""
    if isinstance(avro, list):
        branches = [t for t in avro if t != "null"]
        if len(branches) == 1:
            return field_info(branches[0])
        return FieldInfo(NULL if not branches else ANY)
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical in TEMPORAL:
            return FieldInfo(STRING, temporal=logical)
        if logical == "decimal":
            return FieldInfo(DOUBLE)
        kind = avro.get("type")
        if kind == "record":
            members = {f["name"]: f["type"] for f in avro.get("fields", ()) if isinstance(f, dict)}
            return FieldInfo(MAP, members=members)
        return field_info(kind)
    if isinstance(avro, str):
        return FieldInfo(_PRIMITIVE_TYPES.get(avro, ANY))
    return FieldInfo(ANY)


@dataclass(frozen=True)
class Compiled:
    """A compiled sub-expression: its static type and the closure that evaluates it on a record."""

    type: str
    get: Getter
    const: bool = False
    value: Any = None
    field: str | None = None  # the dotted field name, for messages
    temporal: str | None = None
    raw: Getter | None = None  # a date field's value before its ISO-text view, for _date_comparison


def article(type_: str) -> str:
    """A static type as a noun for messages: ``an int``, ``a value``."""
    return {ANY: "a value", NULL: "null", INT: "an int"}.get(type_, f"a {type_}")


def choices(name: str, known: Mapping[str, Any]) -> str:
    """The known field names for an unknown-field message, with the closest one first."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f" ({hint}fields: {shown})"


def comparable(a: str, b: str) -> bool:
    """Whether values of static types ``a`` and ``b`` may be compared (numbers by value)."""
    return a == b or ANY in (a, b) or NULL in (a, b) or (a in NUMERIC and b in NUMERIC)


def constant(value: Any, type_: str) -> Compiled:
    """A literal: a closure that ignores the record."""
    return Compiled(type_, lambda _r: value, const=True, value=value)
