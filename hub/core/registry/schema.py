"""Avro schema text: loading, validation, a resolved model, and the canonical text used for identity.

The registry identifies a schema by its canonical text: the schema's JSON with object keys sorted and no
insignificant whitespace. Unlike Avro's Parsing Canonical Form it keeps defaults, docs and aliases, so two
schemas that differ in a default are two schemas (as in Confluent Schema Registry).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import fastavro

from hub.core.registry.errors import InvalidSchema

AvroSchema: TypeAlias = dict[str, Any] | list[Any] | str
"""A schema as callers hold it: parsed JSON (dict, list for a union, str for a primitive) or JSON text."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load(schema: AvroSchema) -> Any:
    """Return the schema as a JSON value; ``str`` is JSON text or a bare primitive name like ``string``.

    Raises:
        InvalidSchema: the text is not JSON.
    """
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        try:
            return json.loads(schema)
        except json.JSONDecodeError as exc:
            raise InvalidSchema(
                f"schema is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
    return schema


def canonical_text(schema: AvroSchema) -> str:
    """The text that identifies ``schema`` in the registry (sorted keys, compact separators)."""
    return json.dumps(load(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize(schema: AvroSchema) -> str:
    """Validate ``schema`` as Avro and return its canonical text.

    Raises:
        InvalidSchema: naming the record and field at fault.
    """
    value = load(schema)
    parse(value)
    try:
        fastavro.parse_schema(value)
    except (fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchema(f"invalid Avro schema: {type(exc).__name__}: {exc}") from exc
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(eq=False)
class Field:
    """A record field of a parsed schema."""

    name: str
    type: AvroType
    has_default: bool
    default: Any
    aliases: tuple[str, ...] = ()


@dataclass(eq=False)
class AvroType:
    """One node of a parsed schema. Named types are shared nodes, so recursive schemas are cyclic."""

    kind: str
    name: str | None = None
    aliases: tuple[str, ...] = ()
    fields: list[Field] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    enum_default: str | None = None
    size: int | None = None
    items: AvroType | None = None
    values: AvroType | None = None
    branches: list[AvroType] = field(default_factory=list)
    logical: str | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def short_name(self) -> str:
        """The name without its namespace (Avro resolution compares these)."""
        return (self.name or "").rsplit(".", 1)[-1]

    def describe(self) -> str:  # noqa: PLR0911 - one return per Avro kind reads best
        """A short human description: ``int``, ``record gov.xhub.Person``, ``array<string>``."""
        if self.kind in ("record", "enum"):
            return f"{self.kind} {self.name}"
        if self.kind == "fixed":
            return f"fixed {self.name}({self.size})"
        if self.kind == "array":
            assert self.items is not None
            return f"array<{self.items.describe()}>"
        if self.kind == "map":
            assert self.values is not None
            return f"map<{self.values.describe()}>"
        if self.kind == "union":
            return "union[" + ", ".join(b.describe() for b in self.branches) + "]"
        if self.logical == "decimal":
            return f"{self.kind} decimal({self.precision},{self.scale})"
        return self.kind


def parse(schema: AvroSchema) -> AvroType:
    """Parse and validate a schema into the resolved model used by the compatibility checks.

    Raises:
        InvalidSchema: naming the record and field at fault.
    """
    return _Parser().parse(load(schema), None, "schema")


class _Parser:
    def __init__(self) -> None:
        self.named: dict[str, AvroType] = {}

    def parse(self, value: Any, namespace: str | None, where: str) -> AvroType:  # noqa: PLR0911, PLR0912
        if isinstance(value, str):
            return self._reference(value, namespace, where)
        if isinstance(value, list):
            return self._union(value, namespace, where)
        if not isinstance(value, dict):
            raise InvalidSchema(f"{where}: a schema must be a name, an object or a union list, not {value!r}")
        kind = value.get("type")
        if isinstance(kind, dict | list):
            return self.parse(kind, namespace, where)
        if not isinstance(kind, str):
            raise InvalidSchema(f'{where}: "type" is missing or not a string')
        if kind in PRIMITIVES:
            return self._primitive(kind, value, where)
        if kind in ("record", "error"):
            return self._record(value, namespace, where)
        if kind == "enum":
            return self._enum(value, namespace, where)
        if kind == "fixed":
            return self._fixed(value, namespace, where)
        if kind == "array":
            if "items" not in value:
                raise InvalidSchema(f'{where}: array has no "items"')
            return AvroType("array", items=self.parse(value["items"], namespace, f"{where} items"))
        if kind == "map":
            if "values" not in value:
                raise InvalidSchema(f'{where}: map has no "values"')
            return AvroType("map", values=self.parse(value["values"], namespace, f"{where} values"))
        return self._reference(kind, namespace, where)

    def _reference(self, name: str, namespace: str | None, where: str) -> AvroType:
        if name in PRIMITIVES:
            return AvroType(name)
        candidates = [name] if "." in name else [f"{namespace}.{name}", name] if namespace else [name]
        for candidate in candidates:
            if candidate in self.named:
                return self.named[candidate]
        raise InvalidSchema(f'{where}: unknown type "{name}"')

    def _union(self, value: list[Any], namespace: str | None, where: str) -> AvroType:
        branches = [self.parse(b, namespace, where) for b in value]
        seen: set[str] = set()
        for branch in branches:
            if branch.kind == "union":
                raise InvalidSchema(f"{where}: a union may not directly contain another union")
            ident = branch.name if branch.name else branch.kind
            if ident in seen:
                raise InvalidSchema(f"{where}: union has {ident} twice")
            seen.add(ident)
        return AvroType("union", branches=branches)

    @staticmethod
    def _primitive(kind: str, value: dict[str, Any], where: str) -> AvroType:
        logical = value.get("logicalType")
        node = AvroType(kind, logical=logical if isinstance(logical, str) else None)
        if logical == "decimal" and kind == "bytes":
            node.precision, node.scale = _decimal(value, where)
        return node

    def _name(self, value: dict[str, Any], namespace: str | None, where: str) -> tuple[str, str | None]:
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidSchema(f'{where}: {value.get("type")} has no "name"')
        if "." in name:
            full = name
        else:
            space = value.get("namespace", namespace)
            if space is not None and not isinstance(space, str):
                raise InvalidSchema(f'{where}: "namespace" of {name} must be a string')
            full = f"{space}.{name}" if space else name
        for part in full.split("."):
            if not _NAME.match(part):
                raise InvalidSchema(f'{where}: "{full}" is not a valid Avro name')
        if full in PRIMITIVES or full in self.named:
            raise InvalidSchema(f'{where}: the name "{full}" is defined twice')
        return full, full.rsplit(".", 1)[0] if "." in full else None

    @staticmethod
    def _aliases(value: dict[str, Any], namespace: str | None, where: str) -> tuple[str, ...]:
        raw = value.get("aliases", [])
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            raise InvalidSchema(f'{where}: "aliases" must be a list of names')
        return tuple(a if "." in a or not namespace else f"{namespace}.{a}" for a in raw)

    def _record(self, value: dict[str, Any], namespace: str | None, where: str) -> AvroType:
        full, space = self._name(value, namespace, where)
        node = AvroType("record", name=full, aliases=self._aliases(value, space, where))
        self.named[full] = node  # before the fields, so a field may refer to its own record
        raw_fields = value.get("fields")
        if not isinstance(raw_fields, list):
            raise InvalidSchema(f'record {full}: "fields" must be a list')
        names: set[str] = set()
        for raw in raw_fields:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise InvalidSchema(f'record {full}: every field needs a "name"')
            fname: str = raw["name"]
            at = f'field "{fname}" of record {full}'
            if not _NAME.match(fname):
                raise InvalidSchema(f"{at}: not a valid Avro name")
            if fname in names:
                raise InvalidSchema(f"{at}: defined twice")
            names.add(fname)
            if "type" not in raw:
                raise InvalidSchema(f'{at}: has no "type"')
            ftype = self.parse(raw["type"], space, at)
            has_default = "default" in raw
            if has_default and not _default_fits(ftype, raw["default"]):
                raise InvalidSchema(f"{at}: default does not match type {ftype.describe()}")
            aliases = raw.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise InvalidSchema(f'{at}: "aliases" must be a list of names')
            node.fields.append(Field(fname, ftype, has_default, raw.get("default"), tuple(aliases)))
        return node

    def _enum(self, value: dict[str, Any], namespace: str | None, where: str) -> AvroType:
        full, space = self._name(value, namespace, where)
        symbols = value.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) and _NAME.match(s) for s in symbols):
            raise InvalidSchema(f'enum {full}: "symbols" must be a list of Avro names')
        if len(set(symbols)) != len(symbols):
            raise InvalidSchema(f"enum {full}: a symbol appears twice")
        default = value.get("default")
        if default is not None and default not in symbols:
            raise InvalidSchema(f'enum {full}: default "{default}" is not one of its symbols')
        node = AvroType(
            "enum",
            name=full,
            aliases=self._aliases(value, space, where),
            symbols=tuple(symbols),
            enum_default=default,
        )
        self.named[full] = node
        return node

    def _fixed(self, value: dict[str, Any], namespace: str | None, where: str) -> AvroType:
        full, space = self._name(value, namespace, where)
        size = value.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidSchema(f'fixed {full}: "size" must be a non-negative integer')
        logical = value.get("logicalType")
        node = AvroType(
            "fixed",
            name=full,
            aliases=self._aliases(value, space, where),
            size=size,
            logical=logical if isinstance(logical, str) else None,
        )
        if logical == "decimal":
            node.precision, node.scale = _decimal(value, f"fixed {full}")
        self.named[full] = node
        return node


def _decimal(value: dict[str, Any], where: str) -> tuple[int, int]:
    precision, scale = value.get("precision"), value.get("scale", 0)
    if (
        not isinstance(precision, int)
        or precision < 1
        or not isinstance(scale, int)
        or not 0 <= scale <= precision
    ):
        raise InvalidSchema(f"{where}: decimal needs 1 <= precision and 0 <= scale <= precision")
    return precision, scale


def _default_fits(node: AvroType, value: Any) -> bool:  # noqa: PLR0911 - one return per Avro type reads best
    """Whether ``value`` is a valid JSON default for ``node`` (a union's default matches its first branch)."""
    kind = node.kind
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("string", "bytes", "fixed"):
        return isinstance(value, str)
    if kind == "enum":
        return value in node.symbols
    if kind == "array":
        assert node.items is not None
        items = node.items
        return isinstance(value, list) and all(_default_fits(items, v) for v in value)
    if kind == "map":
        assert node.values is not None
        values = node.values
        return isinstance(value, dict) and all(_default_fits(values, v) for v in value.values())
    if kind == "record":
        return isinstance(value, dict) and all(
            (f.name in value and _default_fits(f.type, value[f.name]))
            or (f.name not in value and f.has_default)
            for f in node.fields
        )
    if kind == "union":
        return bool(node.branches) and _default_fits(node.branches[0], value)
    return False
