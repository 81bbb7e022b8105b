"""Check one change record against its Avro schema and business rules before it is published.

``RecordValidator`` compiles an Avro record schema once into a tree of small converter closures; each
call to ``validate`` then walks the record once, checking types and coercing values to what fastavro
writes directly (ISO dates to days, ISO timestamps to epoch millis, decimal strings to ``Decimal``).

Value mapping, input -> output, per Avro type:

- ``null``/``boolean``/``string``/``enum``: unchanged; no int <-> bool or number <-> string coercion.
- ``int``/``long``: Python ``int`` (not ``bool``) within the 32/64-bit range; no floats, even 3.0.
- ``float``/``double``: ``int`` or ``float`` -> ``float``; ``float`` must fit in 32 bits.
- ``bytes``/``fixed``: ``bytes`` unchanged; a ``str`` is read as **base64** (how JSON carries bytes).
- ``date`` (int): ``"YYYY-MM-DD"``, ``datetime.date`` (or a ``datetime`` at exactly midnight, as
  Oracle DATE columns arrive) or an int of days -> days since 1970-01-01.
- ``time-millis``/``time-micros``: ``"HH:MM:SS[.ffffff]"``, ``datetime.time`` or int -> since midnight.
- ``timestamp-millis``/``-micros``: an ISO 8601 string (``T`` or space, optional offset or ``Z``),
  ``datetime``, ``date`` or int -> since the epoch; a value without an offset is in ``naive_tz``
  (China Standard Time, UTC+8, by default). ``local-timestamp-*``: wall-clock time in ``naive_tz``.
- ``decimal`` (bytes or fixed): a decimal **string** such as ``"1234.50"`` (preferred: exact), an
  ``int``, a ``Decimal`` or a ``float`` (taken by its shortest repr) -> ``Decimal`` at the schema's
  scale, which fastavro encodes. More fractional digits than the scale, or more digits than the
  precision, is ``wrong_type``, never silently rounded. Raw ``bytes`` pass through.
- ``uuid`` (string): a UUID string or ``uuid.UUID`` -> ``str``.
- unions: ``None`` if ``"null"`` is a branch, else the first branch whose converter accepts the value.
- records: ``dict``; fields absent from the input take the schema default; an absent nullable field
  without a default is taken as null (JSON producers routinely omit nulls); other absences are
  ``missing_field``; input keys the schema does not define are ``unknown_field``.

The business key field must be present and non-empty (``missing_key``) and well formed for
``key_format`` (``bad_key_format``; a wrong check character is ``bad_id_check_digit`` or
``bad_credit_code``). Fields named in ``checks`` get the GB 11643 or GB 32100 check when not null.
Errors are ``InvalidRecord`` with a reason from ``connectors.validation.errors.REASONS``, the field
path (``address.district``, ``items[3]``) and a detail that never contains the value itself.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, NoReturn

import fastavro

from connectors.validation import errors as reasons
from connectors.validation.errors import ConfigError, InvalidRecord
from connectors.validation.gb11643 import diagnose_citizen_id
from connectors.validation.gb32100 import diagnose_credit_code
from connectors.validation.problem import CodeProblem

KeyFormat = Literal["citizen_id", "credit_code", "any"]
CheckKind = Literal["citizen_id", "credit_code"]
Converter = Callable[[Any], Any]

CHINA_STANDARD_TIME: Final = dt.timezone(dt.timedelta(hours=8), "CST")
"""UTC+8, no daylight saving since 1991: the zone of timestamps that carry no offset."""
MAX_ANY_KEY_LENGTH: Final = 256
"""Longest business key accepted with ``key_format="any"``, in characters."""

_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)
_FLOAT32_MAX: Final = 3.4028234663852886e38
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_EPOCH_UTC: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE: Final = dt.datetime(1970, 1, 1)  # local-timestamp is zone-less by definition
_MILLI: Final = dt.timedelta(milliseconds=1)
_MICRO: Final = dt.timedelta(microseconds=1)
_MISSING: Final = object()
_PRIMITIVES: Final = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_DIAGNOSE: Final[dict[str, Callable[[object], CodeProblem | None]]] = {
    "citizen_id": diagnose_citizen_id,
    "credit_code": diagnose_credit_code,
}


class _FieldError(Exception):
    """Raised inside converters; carries the path inner-first and becomes an ``InvalidRecord``."""

    __slots__ = ("message", "path", "reason")

    def __init__(self, reason: str, message: str, *path: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.path = list(path)


_JSON_TYPE_NAMES: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (type(None), "null"),
    (bool, "boolean"),  # before int: bool is an int subclass
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    ((list, tuple), "array"),
    (Mapping, "object"),
)


def _json_type(value: object) -> str:
    """Name the type of an input value the way a JSON producer would understand it."""
    for kinds, name in _JSON_TYPE_NAMES:
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def _wrong(expected: str, value: object) -> NoReturn:
    raise _FieldError(reasons.WRONG_TYPE, f"expected {expected}, got {_json_type(value)}")


class _Default:
    """A field's default in output form; mutable defaults are copied so records never share them."""

    __slots__ = ("mutable", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.mutable = False

    def make(self) -> Any:
        return copy.deepcopy(self.value) if self.mutable else self.value


_Field = tuple[str, Converter, bool, "_Default | None"]
"""name, converter, nullable, default (None: required unless nullable)."""


def _convert_fields(fields: list[_Field], value: Any) -> dict[str, Any]:
    """Convert one record's fields; the hot loop of validation."""
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            _wrong("object", value)
        value = dict(value)
    out: dict[str, Any] = {}
    found = 0
    for name, conv, nullable, default in fields:
        item = value.get(name, _MISSING)
        if item is _MISSING:
            if default is not None:
                out[name] = default.make()
            elif nullable:
                out[name] = None
            else:
                raise _FieldError(reasons.MISSING_FIELD, "is required but absent", name)
            continue
        found += 1
        if item is None:
            if not nullable:
                raise _FieldError(reasons.MISSING_FIELD, "is required but null", name)
            out[name] = None
            continue
        try:
            out[name] = conv(item)
        except _FieldError as exc:
            exc.path.append(name)
            raise
    if found != len(value):
        known = {f[0] for f in fields}
        unknown = [str(k)[:64] for k in value if k not in known]
        shown = ", ".join(f'"{k}"' for k in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise _FieldError(reasons.UNKNOWN_FIELD, f"not in the schema: {shown}", unknown[0])
    return out


def _format_path(inner_first: list[str]) -> str:
    parts: list[str] = []
    for part in reversed(inner_first):
        parts.append(part if part[:1] in "[{" or not parts else "." + part)
    return "".join(parts)


class _Compiler:
    """Turns an Avro schema (as parsed JSON) into converter closures, resolving named types."""

    def __init__(self, naive_tz: dt.tzinfo) -> None:
        self.naive_tz = naive_tz
        self.named: dict[str, tuple[Converter, tuple[type, ...], bool, dict[str, Any]]] = {}
        self.pending_defaults: list[tuple[_Default, Any, str, str, Any]] = []
        self.record_fields_by_name: dict[str, list[_Field]] = {}
        self._compiled: dict[int, tuple[Converter, tuple[type, ...], bool]] = {}

    # -- entry points -------------------------------------------------------------------------

    def compile(self, schema: Any, namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        """Return (converter, Python types it accepts, nullable) for ``schema``.

        Each schema node compiles once: resolving a default reuses its field's converters rather
        than defining the same named types again.
        """
        if not isinstance(schema, dict | list):
            return self._compile_node(schema, namespace)
        done = self._compiled.get(id(schema))
        if done is None:
            done = self._compiled[id(schema)] = self._compile_node(schema, namespace)
        return done

    def _compile_node(self, schema: Any, namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema, {})
            return self._reference(schema, namespace)
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if not isinstance(schema, dict):
            raise ConfigError(f"schema node {schema!r} is not a type name, union or object")
        kind = schema.get("type")
        complex_types = {
            "record": self._record,
            "error": self._record,
            "enum": self._enum,
            "fixed": self._fixed,
            "array": self._array,
            "map": self._map,
        }
        if isinstance(kind, str) and kind in complex_types:
            return complex_types[kind](schema, namespace)
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return self._primitive(kind, schema)
        return self.compile(kind, namespace)

    def record_fields(self, schema: dict[str, Any], namespace: str) -> list[_Field]:
        """Compile the fields of a record schema (used for nested records and the top level)."""
        name = str(schema.get("name", ""))
        space = str(schema.get("namespace", namespace)) if "." not in name else name.rsplit(".", 1)[0]
        fields: list[_Field] = []
        for field in schema.get("fields", []):
            conv, _accepts, nullable = self.compile(field["type"], space)
            default: _Default | None = None
            if "default" in field:
                default = _Default()
                self.pending_defaults.append(
                    (default, field["type"], space, str(field["name"]), field["default"])
                )
            fields.append((str(field["name"]), conv, nullable, default))
        return fields

    def resolve_defaults(self) -> None:
        """Convert defaults once every named type exists (a default may use a later-defined type)."""
        for holder, type_schema, space, field_name, json_default in self.pending_defaults:
            # Avro: a union's default belongs to its first branch.
            first = type_schema[0] if isinstance(type_schema, list) else type_schema
            conv, _accepts, _nullable = self.compile(first, space)
            raw = self._bytes_from_json(first, json_default, space)
            try:
                holder.value = None if raw is None else conv(raw)
            except _FieldError as exc:
                raise ConfigError(
                    f'default of field "{field_name}" does not fit its type: {exc.message}'
                ) from exc
            holder.mutable = isinstance(holder.value, list | dict)

    # -- named types --------------------------------------------------------------------------

    def full_name(self, schema: dict[str, Any], namespace: str) -> tuple[str, str]:
        name = str(schema["name"])
        if "." in name:
            return name, name.rsplit(".", 1)[0]
        space = str(schema.get("namespace", namespace))
        return (f"{space}.{name}" if space else name), space

    def _reference(self, name: str, namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        candidates = [name] if "." in name else [f"{namespace}.{name}", name] if namespace else [name]
        for candidate in candidates:
            if candidate in self.named:
                conv, accepts, nullable, _schema = self.named[candidate]
                return conv, accepts, nullable
        raise ConfigError(f'schema refers to unknown type "{name}"')

    def _named_schema(self, name: str, namespace: str) -> dict[str, Any] | None:
        candidates = [name] if "." in name else [f"{namespace}.{name}", name] if namespace else [name]
        for candidate in candidates:
            if candidate in self.named:
                return self.named[candidate][3]
        return None

    def _record(self, schema: dict[str, Any], namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        full, _space = self.full_name(schema, namespace)
        # A record may contain itself (trees, linked lists): register a trampoline before compiling
        # the fields, then swap in the real converter for later references.
        slot: list[Converter] = []

        def trampoline(value: Any) -> Any:
            return slot[0](value)

        accepts: tuple[type, ...] = (Mapping,)
        self.named[full] = (trampoline, accepts, False, schema)
        fields = self.record_fields(schema, namespace)
        self.record_fields_by_name[full] = fields

        def convert(value: Any) -> Any:
            return _convert_fields(fields, value)

        slot.append(convert)
        self.named[full] = (convert, accepts, False, schema)
        return convert, accepts, False

    def _enum(self, schema: dict[str, Any], namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        full, _space = self.full_name(schema, namespace)
        symbols = frozenset(str(s) for s in schema["symbols"])
        shown = ", ".join(sorted(symbols)[:12]) + (" ..." if len(symbols) > 12 else "")

        def convert(value: Any) -> Any:
            if type(value) is str and value in symbols:
                return value
            if isinstance(value, str):
                raise _FieldError(reasons.WRONG_TYPE, f"is not a symbol of enum {full} ({shown})")
            return _wrong(f"a symbol of enum {full}", value)

        self.named[full] = (convert, (str,), False, schema)
        return convert, (str,), False

    def _fixed(self, schema: dict[str, Any], namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        full, _space = self.full_name(schema, namespace)
        size = int(schema["size"])
        if schema.get("logicalType") == "decimal":
            conv, accepts = self._decimal(schema, f"fixed {full} decimal")
        else:
            raw = self._bytes_converter(f"fixed {full}")

            def conv(value: Any) -> Any:
                data = raw(value)
                if len(data) != size:
                    raise _FieldError(reasons.WRONG_TYPE, f"has {len(data)} bytes, expected {size}")
                return data

            accepts = (bytes, bytearray, memoryview, str)
        self.named[full] = (conv, accepts, False, schema)
        return conv, accepts, False

    # -- containers ---------------------------------------------------------------------------

    def _array(self, schema: dict[str, Any], namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        item, _accepts, _nullable = self.compile(schema["items"], namespace)

        def convert(value: Any) -> Any:
            if not isinstance(value, list | tuple):
                _wrong("array", value)
            try:
                return [item(v) for v in value]
            except _FieldError:
                pass
            # Error path only: find which element failed so the message can say where.
            for index, element in enumerate(value):
                try:
                    item(element)
                except _FieldError as exc:
                    exc.path.append(f"[{index}]")
                    raise
            raise AssertionError("array element failed once but not twice")  # pragma: no cover

        return convert, (list, tuple), False

    def _map(self, schema: dict[str, Any], namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        item, _accepts, _nullable = self.compile(schema["values"], namespace)

        def convert(value: Any) -> Any:
            if not isinstance(value, Mapping):
                _wrong("object (map)", value)
            for index, (k, v) in enumerate(value.items()):
                if type(k) is not str:
                    raise _FieldError(
                        reasons.WRONG_TYPE, f"map key is {_json_type(k)}, expected string", f"{{#{index}}}"
                    )
                try:
                    item(v)
                except _FieldError as exc:
                    # Map keys may be data, so the path names the entry's position, not its key.
                    exc.path.append(f"{{#{index}}}")
                    raise
            return {k: item(v) for k, v in value.items()}

        return convert, (Mapping,), False

    def _union(self, branches: list[Any], namespace: str) -> tuple[Converter, tuple[type, ...], bool]:
        nullable = False
        compiled: list[tuple[Converter, tuple[type, ...]]] = []
        names: list[str] = []
        for branch in branches:
            if branch == "null" or (isinstance(branch, dict) and branch.get("type") == "null"):
                nullable = True
                continue
            conv, accepts, _nullable = self.compile(branch, namespace)
            compiled.append((conv, accepts))
            names.append(_describe(branch))
        if not compiled:
            return _null, (type(None),), True
        if len(compiled) == 1:
            # ["null", X], the usual optional field: X's own errors are the clearest.
            single, accepts = compiled[0]
            if not nullable:
                return single, accepts, False

            def optional(value: Any) -> Any:
                return None if value is None else single(value)

            return optional, (*accepts, type(None)), True
        all_accepts = tuple({t for _c, a in compiled for t in a})
        described = " | ".join(names)

        def convert(value: Any) -> Any:
            if value is None:
                if nullable:
                    return None
                raise _FieldError(reasons.MISSING_FIELD, "is required but null")
            failures: list[_FieldError] = []
            for conv, accepts in compiled:
                if isinstance(value, accepts):
                    try:
                        return conv(value)
                    except _FieldError as exc:
                        failures.append(exc)
            if len(failures) == 1:
                raise failures[0]
            return _wrong(f"one of {described}", value)

        return convert, (*all_accepts, type(None)) if nullable else all_accepts, nullable

    # -- primitives and logical types ---------------------------------------------------------

    def _primitive(  # noqa: PLR0911 - one branch per Avro primitive reads better than a table here
        self, kind: str, schema: dict[str, Any]
    ) -> tuple[Converter, tuple[type, ...], bool]:
        logical = schema.get("logicalType")
        if kind == "null":
            return _null, (type(None),), True
        if kind == "boolean":
            return _boolean, (bool,), False
        if kind in ("int", "long"):
            return self._integer(kind, logical)
        if kind in ("float", "double"):
            return (_float32 if kind == "float" else _double), (int, float), False
        if kind == "string":
            if logical == "uuid":
                return _uuid, (str, uuid.UUID), False
            return _string, (str,), False
        if logical == "decimal":
            conv, accepts = self._decimal(schema, "decimal")
            return conv, accepts, False
        return self._bytes_converter("bytes"), (bytes, bytearray, memoryview, str), False

    def _integer(self, kind: str, logical: object) -> tuple[Converter, tuple[type, ...], bool]:
        low, high = _INT32 if kind == "int" else _INT64
        if logical == "date" and kind == "int":
            return _date, (str, int, dt.date), False
        if logical in ("time-millis", "time-micros"):
            unit = _MILLI if logical == "time-millis" else _MICRO
            return _make_time(unit, low, high), (str, int, dt.time), False
        if kind == "long" and logical in ("timestamp-millis", "timestamp-micros"):
            unit = _MILLI if logical == "timestamp-millis" else _MICRO
            return _make_timestamp(unit, self.naive_tz, local=False), (str, int, dt.date), False
        if kind == "long" and logical in ("local-timestamp-millis", "local-timestamp-micros"):
            unit = _MILLI if logical == "local-timestamp-millis" else _MICRO
            return _make_timestamp(unit, self.naive_tz, local=True), (str, int, dt.date), False

        def convert(value: Any) -> Any:
            if type(value) is int and low <= value <= high:
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                if low <= value <= high:
                    return int(value)
                raise _FieldError(reasons.WRONG_TYPE, f"is out of the {kind} range")
            return _wrong(kind, value)

        return convert, (int,), False

    def _decimal(self, schema: dict[str, Any], what: str) -> tuple[Converter, tuple[type, ...]]:
        precision = int(schema["precision"])
        scale = int(schema.get("scale", 0))
        quantum = decimal.Decimal(1).scaleb(-scale)
        limit = decimal.Decimal(10) ** (precision - scale)
        context = decimal.Context(prec=max(precision, 28) + 2, traps=[decimal.InvalidOperation])
        described = f"{what}({precision},{scale})"

        def convert(value: Any) -> Any:
            if isinstance(value, bytes | bytearray):
                return bytes(value)
            if isinstance(value, decimal.Decimal):
                number = value
            elif isinstance(value, str):
                try:
                    number = decimal.Decimal(value.strip())
                except decimal.InvalidOperation:
                    raise _FieldError(
                        reasons.WRONG_TYPE, f"is not a decimal number for {described}"
                    ) from None
            elif isinstance(value, int) and not isinstance(value, bool):
                number = decimal.Decimal(value)
            elif isinstance(value, float):
                number = decimal.Decimal(repr(value))
            else:
                return _wrong(described, value)
            if not number.is_finite():
                raise _FieldError(reasons.WRONG_TYPE, f"is not a finite number for {described}")
            try:
                scaled = number.quantize(quantum, context=context)
            except decimal.InvalidOperation:
                raise _FieldError(reasons.WRONG_TYPE, f"has too many digits for {described}") from None
            if scaled != number:
                raise _FieldError(reasons.WRONG_TYPE, f"has more than {scale} decimal places for {described}")
            if abs(scaled) >= limit:
                raise _FieldError(reasons.WRONG_TYPE, f"has too many digits for {described}")
            return scaled

        return convert, (bytes, bytearray, str, int, float, decimal.Decimal)

    @staticmethod
    def _bytes_converter(what: str) -> Converter:
        def convert(value: Any) -> Any:
            if type(value) is bytes:
                return value
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            if isinstance(value, str):
                try:
                    return base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise _FieldError(reasons.WRONG_TYPE, f"is a string but not base64 for {what}") from None
            return _wrong(what, value)

        return convert

    def _bytes_from_json(  # noqa: PLR0911 - one return per Avro container kind
        self, schema: Any, value: Any, namespace: str
    ) -> Any:
        """Avro JSON defaults write bytes as strings of code points 0-255; turn those into bytes."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            named = self._named_schema(schema, namespace)
            return value if named is None else self._bytes_from_json(named, value, namespace)
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if isinstance(kind, dict | list):
            return self._bytes_from_json(kind, value, namespace)
        if kind in ("bytes", "fixed") and isinstance(value, str):
            return value.encode("latin-1")
        if kind == "array" and isinstance(value, list) and isinstance(schema, dict):
            return [self._bytes_from_json(schema["items"], v, namespace) for v in value]
        if kind == "map" and isinstance(value, dict) and isinstance(schema, dict):
            return {k: self._bytes_from_json(schema["values"], v, namespace) for k, v in value.items()}
        if kind in ("record", "error") and isinstance(value, dict) and isinstance(schema, dict):
            types = {str(f["name"]): f["type"] for f in schema.get("fields", [])}
            return {
                k: self._bytes_from_json(types[k], v, namespace) if k in types else v
                for k, v in value.items()
            }
        return value


def _describe(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        name = schema.get("name")
        kind = schema.get("type")
        return str(logical or name or (kind if isinstance(kind, str) else "type"))
    return "union"


def _null(value: Any) -> Any:
    if value is not None:
        _wrong("null", value)
    return None


def _boolean(value: Any) -> Any:
    if value is True or value is False:
        return value
    return _wrong("boolean", value)


def _double(value: Any) -> Any:
    if type(value) is float:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _wrong("number", value)


def _float32(value: Any) -> Any:
    number = _double(value)
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise _FieldError(reasons.WRONG_TYPE, "is out of the float (32-bit) range")
    return number


def _string(value: Any) -> Any:
    if type(value) is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                # Lone surrogates come from JSON "\ud800" escapes; they cannot be written as UTF-8.
                raise _FieldError(
                    reasons.INVALID_UTF8, f"character {exc.start + 1} is a lone surrogate, not UTF-8"
                ) from None
        return value
    if isinstance(value, str):
        return _string(str(value))
    return _wrong("string", value)


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            raise _FieldError(reasons.WRONG_TYPE, "is not a UUID") from None
        return value
    return _wrong("uuid string", value)


def _date(value: Any) -> Any:
    if type(value) is str:
        try:
            return dt.date.fromisoformat(value).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            raise _FieldError(reasons.BAD_DATE, "is not an ISO date (YYYY-MM-DD)") from None
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0):
            raise _FieldError(reasons.BAD_DATE, "is a datetime with a time of day, expected a date")
        return value.toordinal() - _EPOCH_ORDINAL
    if isinstance(value, dt.date):
        return value.toordinal() - _EPOCH_ORDINAL
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT32[0] <= value <= _INT32[1]:
            return int(value)
        raise _FieldError(reasons.WRONG_TYPE, "is out of the int range for a date")
    return _wrong("date (YYYY-MM-DD)", value)


def _make_time(unit: dt.timedelta, low: int, high: int) -> Converter:
    day = dt.timedelta(days=1) // unit

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = dt.time.fromisoformat(value)
            except ValueError:
                raise _FieldError(reasons.BAD_DATE, "is not an ISO time of day (HH:MM:SS)") from None
        if isinstance(value, dt.time):
            since = dt.timedelta(
                hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
            )
            return since // unit
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < day and low <= value <= high:
                return int(value)
            raise _FieldError(reasons.WRONG_TYPE, "is out of the range of a time of day")
        return _wrong("time of day (HH:MM:SS)", value)

    return convert


def _make_timestamp(unit: dt.timedelta, naive_tz: dt.tzinfo, *, local: bool) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is int:
            if _INT64[0] <= value <= _INT64[1]:
                return value
            raise _FieldError(reasons.WRONG_TYPE, "is out of the long range for a timestamp")
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise _FieldError(reasons.BAD_DATE, "is not an ISO 8601 timestamp") from None
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)  # the zone is added below
        elif not isinstance(value, dt.datetime):
            if isinstance(value, int) and not isinstance(value, bool):
                return convert(int(value))
            return _wrong("ISO 8601 timestamp", value)
        if local:
            if value.tzinfo is not None:
                value = value.astimezone(naive_tz).replace(tzinfo=None)
            return (value - _EPOCH_NAIVE) // unit
        if value.tzinfo is None:
            value = value.replace(tzinfo=naive_tz)
        return (value - _EPOCH_UTC) // unit

    return convert


def _key_converter(conv: Converter, key_format: KeyFormat | None) -> Converter:
    """Wrap the key field's converter with the business key's format rules."""
    if key_format is None:
        return conv
    if key_format == "any":

        def any_key(value: Any) -> Any:
            out = conv(value)
            if isinstance(out, str):
                if len(out) > MAX_ANY_KEY_LENGTH:
                    raise _FieldError(
                        reasons.BAD_KEY_FORMAT, f"is {len(out)} characters, longer than {MAX_ANY_KEY_LENGTH}"
                    )
                if out.strip() != out or not out.isprintable():
                    raise _FieldError(
                        reasons.BAD_KEY_FORMAT, "has leading/trailing blanks or non-printable characters"
                    )
            return out

        return any_key
    diagnose = _DIAGNOSE[key_format]
    check_reason = reasons.BAD_ID_CHECK_DIGIT if key_format == "citizen_id" else reasons.BAD_CREDIT_CODE

    def coded_key(value: Any) -> Any:
        out = conv(value)
        problem = diagnose(out)
        if problem is not None:
            raise _FieldError(
                check_reason if problem.check_failed else reasons.BAD_KEY_FORMAT, problem.message
            )
        return out

    return coded_key


def _check_converter(conv: Converter, kind: CheckKind) -> Converter:
    """Wrap a field's converter with a GB identifier check (skipped for null)."""
    diagnose = _DIAGNOSE[kind]
    if kind == "citizen_id":
        check_reason, format_reason = reasons.BAD_ID_CHECK_DIGIT, reasons.BAD_ID_NUMBER
    else:
        check_reason, format_reason = reasons.BAD_CREDIT_CODE, reasons.BAD_CREDIT_CODE

    def checked(value: Any) -> Any:
        out = conv(value)
        if out is not None:
            problem = diagnose(out)
            if problem is not None:
                raise _FieldError(check_reason if problem.check_failed else format_reason, problem.message)
        return out

    return checked


def _is_string_type(schema: Any) -> bool:
    """True for "string" or a union of "null" and "string" (what a coded identifier may be)."""
    if isinstance(schema, list):
        rest = [b for b in schema if b != "null"]
        return len(rest) == 1 and _is_string_type(rest[0])
    if isinstance(schema, dict):
        return bool(schema.get("type") == "string" and "logicalType" not in schema)
    return bool(schema == "string")


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class RecordValidator:
    """Validates records of one resource before its sidecar publishes them.

    Args:
        schema: the resource's Avro record schema, as parsed JSON.
        key_field: the field holding the business key (the Kafka message key).
        key_format: ``"citizen_id"`` (GB 11643), ``"credit_code"`` (GB 32100), ``"any"`` (a non-empty
            string of at most ``MAX_ANY_KEY_LENGTH`` printable characters without surrounding blanks, or
            an integer) or None (presence only).
        max_bytes: largest raw (JSON) or encoded record accepted.
        checks: more fields to check as ``"citizen_id"`` or ``"credit_code"`` when not null.
        naive_tz: the zone of timestamps given without an offset.

    Raises:
        ConfigError: the schema is not a valid Avro record schema, or the key field or a checked field
            is not in it, or a coded field is not a string.
    """

    def __init__(
        self,
        schema: dict[str, Any],
        key_field: str,
        key_format: KeyFormat | None,
        max_bytes: int = 1_000_000,
        checks: Mapping[str, CheckKind] | None = None,
        *,
        naive_tz: dt.tzinfo = CHINA_STANDARD_TIME,
    ) -> None:
        name = str(schema.get("name", "?")) if isinstance(schema, dict) else "?"
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise ConfigError(f'schema "{name}" is not an Avro record schema')
        try:
            fastavro.parse_schema(copy.deepcopy(schema))
        except Exception as exc:  # fastavro raises assorted types for a bad schema
            raise ConfigError(f'schema "{name}" is not valid Avro: {exc}') from exc
        checks = dict(checks or {})
        problems = _config_problems(schema, name, key_field, key_format, checks)
        if problems:
            raise ConfigError(problems)

        self.schema_name = name
        self.key_field = key_field
        self.key_format: KeyFormat | None = key_format
        self.max_bytes = max_bytes
        compiler = _Compiler(naive_tz)
        compiler.compile(schema, "")
        fields = compiler.record_fields_by_name[compiler.full_name(schema, "")[0]]
        compiler.resolve_defaults()
        wrapped: list[_Field] = []
        # A key listed in ``checks`` too is checked once, as a key (its reasons say "key").
        coded_key = checks.pop(key_field, None)
        effective_key_format = (
            key_format if key_format in ("citizen_id", "credit_code") else coded_key or key_format
        )
        for field_name, plain, nullable, default in fields:
            conv = plain
            if field_name in checks:
                conv = _check_converter(conv, checks[field_name])
            if field_name == key_field:
                conv = _key_converter(conv, effective_key_format)
            wrapped.append((field_name, conv, nullable, default))
        # The key first: a record with several faults is reported as missing its key, the fault
        # that matters most downstream (it cannot even be compacted).
        wrapped.sort(key=lambda f: f[0] != key_field)
        self._fields = wrapped

    def validate(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Check one record and return it coerced to Avro-ready values.

        Args:
            record: the change's data as a dict (field name -> value).

        Returns:
            A new dict with every schema field, ready for ``fastavro`` to write.

        Raises:
            InvalidRecord: with ``reason``, ``field`` and a ``detail`` free of personal values;
                ``original`` is the record as UTF-8 JSON, for the dead-letter topic.
        """
        return self._validate(record, None)

    def validate_json_bytes(self, raw: bytes) -> dict[str, Any]:
        """Decode a UTF-8 JSON object and validate it (see ``validate``).

        Raises:
            InvalidRecord: ``oversize``, ``invalid_utf8``, ``not_json`` or any reason of ``validate``;
                ``original`` is ``raw``.
        """
        raw = bytes(raw)
        if len(raw) > self.max_bytes:
            raise InvalidRecord(
                reasons.OVERSIZE,
                f"record of {self.schema_name} is {len(raw)} bytes, more than the limit of {self.max_bytes}",
                original=raw,
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(
                reasons.INVALID_UTF8,
                f"record of {self.schema_name}: byte {exc.start} is not valid UTF-8",
                original=raw,
            ) from exc
        try:
            # A byte-order mark is tolerated: Windows tools in departments add one.
            decoded = json.loads(text[1:] if text[:1] == "\ufeff" else text)
        except json.JSONDecodeError as exc:
            raise InvalidRecord(
                reasons.NOT_JSON,
                f"record of {self.schema_name} is not JSON: {exc.msg} "
                f"at line {exc.lineno} column {exc.colno}",
                original=raw,
            ) from exc
        except RecursionError as exc:
            raise InvalidRecord(
                reasons.NOT_JSON, f"record of {self.schema_name} is JSON nested too deeply", original=raw
            ) from exc
        if not isinstance(decoded, dict):
            raise InvalidRecord(
                reasons.NOT_JSON,
                f"record of {self.schema_name} is a JSON {_json_type(decoded)}, expected an object",
                original=raw,
            )
        return self._validate(decoded, raw)

    def check_encoded_size(self, encoded: bytes) -> None:
        """Raise ``oversize`` if an encoded record (e.g. the Avro value) is larger than ``max_bytes``."""
        if len(encoded) > self.max_bytes:
            raise InvalidRecord(
                reasons.OVERSIZE,
                f"encoded record of {self.schema_name} is {len(encoded)} bytes, "
                f"more than the limit of {self.max_bytes}",
                original=encoded,
            )

    def _validate(self, record: Mapping[str, Any], raw: bytes | None) -> dict[str, Any]:
        try:
            if not isinstance(record, Mapping):
                _wrong("object", record)
            _require_key(record, self.key_field)
            return _convert_fields(self._fields, record)
        except _FieldError as exc:
            path = _format_path(exc.path)
            where = f'field "{path}" of {self.schema_name}' if path else f"record of {self.schema_name}"
            raise InvalidRecord(
                exc.reason,
                f"{where}: {exc.message}",
                field=path or None,
                original=raw if raw is not None else _original_bytes(record),
            ) from None


def _config_problems(
    schema: dict[str, Any], name: str, key_field: str, key_format: object, checks: dict[str, CheckKind]
) -> list[str]:
    """Every problem with the key and checked fields, so one ConfigError lists them all."""
    field_types = {str(f["name"]): f["type"] for f in schema["fields"]}
    problems: list[str] = []
    if key_field not in field_types:
        problems.append(f'schema "{name}": key field "{key_field}" is not a field of the schema')
    elif key_format in ("citizen_id", "credit_code") and not _is_string_type(field_types[key_field]):
        problems.append(f'schema "{name}": key field "{key_field}" must be a string for {key_format}')
    if key_format not in (None, "any", "citizen_id", "credit_code"):
        problems.append(f'schema "{name}": unknown key format "{key_format}"')
    coded = ("citizen_id", "credit_code")
    if key_format in coded and checks.get(key_field, key_format) != key_format:
        problems.append(
            f'schema "{name}": key field "{key_field}" has key format {key_format} '
            f"but check {checks[key_field]}"
        )
    for field, kind in checks.items():
        if kind not in _DIAGNOSE:
            problems.append(
                f'schema "{name}": check "{kind}" on field "{field}" is not one of {sorted(_DIAGNOSE)}'
            )
        elif field not in field_types:
            problems.append(f'schema "{name}": checked field "{field}" is not a field of the schema')
        elif not _is_string_type(field_types[field]):
            problems.append(f'schema "{name}": checked field "{field}" must be a string or optional string')
    return problems


def _require_key(record: Mapping[str, Any], key_field: str) -> None:
    key = record.get(key_field)
    if key is None or key == "":
        state = "absent" if key_field not in record else "null" if key is None else "empty"
        raise _FieldError(reasons.MISSING_KEY, f"business key is {state}", key_field)


def _original_bytes(record: object) -> bytes | None:
    """The record as JSON for the dead-letter topic; lone surrogates are kept as they came."""
    try:
        return json.dumps(record, ensure_ascii=False, default=_json_default).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return None
