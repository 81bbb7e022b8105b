"""From a delivered Avro record schema to table columns: one kind per field, mapped per database.

The kind of a field is what its Avro type (or logical type) means for a column; the database module
maps kinds to column types and value converters:

    string, uuid, enum -> text          int -> 32-bit integer     long -> 64-bit integer
    float, double      -> floating      boolean -> boolean         bytes, fixed -> binary
    date, time, timestamp, local_timestamp, decimal -> the database's type (SQLite: ISO / decimal text)
    record, array, map, multi-type unions -> json (SQLite: JSON text, PostgreSQL: JSONB)

A field whose union includes null is nullable; every data column is created nullable anyway, because
masks and projections may null a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from connectors.db import is_identifier

Kind = Literal[
    "string",
    "uuid",
    "enum",
    "int",
    "long",
    "float",
    "double",
    "boolean",
    "bytes",
    "fixed",
    "date",
    "time",
    "timestamp",
    "local_timestamp",
    "decimal",
    "json",
]

_PRIMITIVE_KINDS: dict[str, Kind] = {
    "string": "string",
    "int": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "bytes": "bytes",
}
_LOGICAL_KINDS: dict[str, Kind] = {
    "date": "date",
    "time-millis": "time",
    "time-micros": "time",
    "timestamp-millis": "timestamp",
    "timestamp-micros": "timestamp",
    "timestamp-nanos": "timestamp",
    "local-timestamp-millis": "local_timestamp",
    "local-timestamp-micros": "local_timestamp",
    "decimal": "decimal",
    "uuid": "uuid",
}


@dataclass(frozen=True, slots=True)
class FieldColumn:
    """One data field of the delivered schema as a column: its name and kind."""

    name: str
    kind: Kind


def _full_name(schema: dict[str, Any], namespace: str | None) -> tuple[str, str | None]:
    name = str(schema["name"])
    if "." in name:
        return name, name.rsplit(".", 1)[0]
    ns = schema.get("namespace", namespace)
    return (f"{ns}.{name}" if ns else name), ns


class _Resolver:
    """Kinds of Avro types, remembering named types as they are defined (Avro's scoping rules)."""

    def __init__(self) -> None:
        self.named: dict[str, Kind] = {}

    def define(self, schema: dict[str, Any], kind: Kind, namespace: str | None) -> str | None:
        full, ns = _full_name(schema, namespace)
        self.named[full] = kind
        self.named.setdefault(full.rsplit(".", 1)[-1], kind)
        return ns

    def kind(self, avro: Any, namespace: str | None) -> Kind:  # noqa: PLR0911 - one exit per Avro type family
        if isinstance(avro, str):
            if avro in _PRIMITIVE_KINDS:
                return _PRIMITIVE_KINDS[avro]
            found = self.named.get(avro) or self.named.get(f"{namespace}.{avro}" if namespace else avro)
            return found or "json"
        if isinstance(avro, list):
            branches = [b for b in avro if b != "null"]
            kinds = {self.kind(b, namespace) for b in branches}
            return kinds.pop() if len(kinds) == 1 else "json"
        if not isinstance(avro, dict):
            return "json"
        logical = avro.get("logicalType")
        if isinstance(logical, str) and logical in _LOGICAL_KINDS:
            return _LOGICAL_KINDS[logical]
        avro_type = avro.get("type")
        if avro_type == "enum":
            self.define(avro, "enum", namespace)
            return "enum"
        if avro_type == "fixed":
            self.define(avro, "fixed", namespace)
            return "fixed"
        if avro_type in ("record", "error"):
            ns = self.define(avro, "json", namespace)
            for field in avro.get("fields", []):
                self.kind(field.get("type"), ns)  # defines nested named types for later references
            return "json"
        if avro_type in ("array", "map"):
            self.kind(avro.get("items", avro.get("values")), namespace)
            return "json"
        return self.kind(avro_type, namespace)


def record_columns(schema: dict[str, Any]) -> list[FieldColumn]:
    """The columns of a delivered record schema, in field order.

    Raises:
        ValueError: ``schema`` is not an Avro record, or a field name is not a plain identifier.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ValueError("the delivered data schema is not an Avro record")
    resolver = _Resolver()
    _, namespace = _full_name(schema, None)
    columns: list[FieldColumn] = []
    for field in schema.get("fields", []):
        name = str(field.get("name"))
        if not is_identifier(name):
            raise ValueError(f"field {name!r} of record {schema.get('name')} is not a plain identifier")
        columns.append(FieldColumn(name, resolver.kind(field.get("type"), namespace)))
    return columns
