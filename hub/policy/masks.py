"""Masks: de-identification of single field values before delivery (GB/T 37964-2019 style).

Each mask is built once per plan with ``build_mask`` and then applied per record with ``Mask.apply``
(or the bound-once ``Mask.function``). Everything that can be prepared (regular expressions, the HMAC key
schedule) is prepared at build time; a call allocates only its result. ``None`` always passes through as
``None``, so an optional field stays optional.

Kinds, with an example each (``*`` is the mask character; the masked text keeps the original length
unless said otherwise):

- ``id_number``: citizen ID number (GB 11643). Keeps the first 6 characters (the GB/T 2260
  administrative division code) and the last 4, hides the 8-digit birth date and the rest of the
  sequence: ``"310115198503071234"`` -> ``"310115********1234"``. This is the usual display form of
  Chinese government portals; ``keep_first``/``keep_last`` change it (e.g. 3 and 4 for public notices).
- ``phone``: keeps the first 3 and last 4 characters: ``"13812345678"`` -> ``"138****5678"``.
- ``name``: keeps the surname (the first character; two for a compound surname such as 欧阳):
  ``"张三丰"`` -> ``"张**"``, ``"李四"`` -> ``"李*"``, ``"欧阳娜娜"`` -> ``"欧阳**"``.
- ``address``: keeps the administrative part down to the district or county and replaces the rest with
  four ``*`` (hiding its length): ``"上海市浦东新区世纪大道100号3号楼1201室"`` -> ``"上海市浦东新区****"``.
  Rule: an optional province (…省, …自治区, …特别行政区), an optional city (…市, …州, …盟, …地区) and an
  optional district (…区, …县, …市, …旗) are recognised at the start, each a run of Chinese characters;
  the kept prefix is always shorter than the value (an address made only of divisions loses its last
  level). Without any division, the first ``fallback_keep`` characters (default 6, never more than half
  the value) are kept: ``"世纪大道100号3号楼1201室"`` -> ``"世纪大道10****"``.
- ``email``: keeps the first character of the local part and the domain, with a fixed ``***``:
  ``"zhangsan@example.gov.cn"`` -> ``"z***@example.gov.cn"``.
- ``pseudonym``: keyed pseudonym, ``HMAC-SHA256(hub secret, value)`` as the first ``length`` (default
  32) hex characters: ``"310115198503071234"`` -> e.g. ``"5d1c0e…"`` (32 hex characters). The key is
  only the hub secret and the value, not the field or resource, so the same person gets the same
  pseudonym in every resource and subscription: that is what lets subscribers join records without
  seeing the value. A subscription that must not be linkable to others sets ``scope`` (any text), which
  is mixed into the HMAC. The secret matters: ID numbers and phone numbers are few enough to be
  enumerated, so an unkeyed hash would be reversible. Values are canonicalised first (text as UTF-8,
  integers in decimal, bytes as is), so a phone stored as text or as a number pseudonymises alike.
  ``params["key_id"]`` is an HMAC fingerprint of the secret (not reversible) that shows in plans, so a
  secret rotation changes the policy version.
- ``date_year``: ``"1985-03-07"`` -> ``"1985"``; ``date_month``: ``"1985-03-07"`` -> ``"1985-03"``. They
  accept an Avro ``date`` as days since 1970-01-01 (``5544`` -> ``"1985"``), a ``datetime.date`` or
  ``datetime.datetime`` (as fastavro decodes dates and timestamps), or ISO-8601 text. The delivered field
  becomes a string.
- ``drop``: removes the field from the delivered schema (``output_type`` returns ``None``); the plan does
  not call ``apply`` for it (it would return ``None``).

Values arrive as fastavro decodes them: a ``uuid`` field as ``uuid.UUID`` (masked as its text), a
``time-millis``/``time-micros`` field as ``datetime.time`` (only ``pseudonym`` and ``drop`` apply to it).

``output_type`` gives the Avro type of the field in the delivered schema: every mask except ``drop``
delivers a ``"string"`` and keeps optionality (``["null", "long"]`` -> ``["null", "string"]``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from hub.policy.errors import PolicyError
from hub.policy.mask_functions import mask_function

MaskKind = Literal[
    "id_number", "phone", "name", "address", "email", "pseudonym", "date_year", "date_month", "drop"
]
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)

MIN_SECRET_BYTES = 16
"""A pseudonym key shorter than this (128 bits) could be guessed; build_mask refuses it."""

_KEY_ID_LABEL = b"exchange-hub pseudonym key id"

_TEXT_BASES = frozenset({"string", "enum", "int", "long", "uuid"})
_DATE_BASES = frozenset(
    {
        "string",
        "date",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)
_COMPLEX_BASES = frozenset({"record", "array", "map"})
_AVRO_PRIMITIVES = frozenset(
    {
        "null",
        "boolean",
        "int",
        "long",
        "float",
        "double",
        "bytes",
        "string",
        "record",
        "enum",
        "array",
        "map",
        "fixed",
    }
)
_TIME_BASES = frozenset({"time-millis", "time-micros"})
_PSEUDONYM_BASES = (_AVRO_PRIMITIVES - _COMPLEX_BASES - {"null"}) | _DATE_BASES | _TIME_BASES | {"uuid"}
# Logical types checked as their own base: their decoded values are not what the underlying type holds.
_LOGICAL_BASES = _DATE_BASES | _TIME_BASES | {"uuid"}

# Allowed params per kind with their defaults; validated in build_mask.
_PARAM_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "id_number": {"keep_first": 6, "keep_last": 4},
    "phone": {"keep_first": 3, "keep_last": 4},
    "name": {},
    "address": {"fallback_keep": 6},
    "email": {},
    "pseudonym": {"length": 32, "scope": None, "key_id": None},
    "date_year": {},
    "date_month": {},
    "drop": {},
}


@dataclass(frozen=True)
class Mask:
    """One de-identification rule, ready to apply. Build it with ``build_mask``.

    Attributes:
        kind: one of ``MASK_KINDS``.
        params: the effective parameters, defaults included (read-only). For ``pseudonym`` this holds
            ``key_id``, a fingerprint of the secret, never the secret itself.
    """

    kind: MaskKind
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    secret: InitVar[bytes | None] = None
    _fn: Callable[[Any], Any] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self, secret: bytes | None) -> None:
        params = _check_params(self.kind, self.params, secret)
        object.__setattr__(self, "params", MappingProxyType(params))
        object.__setattr__(self, "_fn", mask_function(self.kind, params, secret))

    def apply(self, value: Any) -> Any:
        """Mask one value; ``None`` stays ``None``.

        Raises:
            MaskRuntimeError: the value cannot be masked by this kind (e.g. a date mask on a list).
        """
        return self._fn(value)

    @property
    def function(self) -> Callable[[Any], Any]:
        """The same as ``apply`` without method dispatch: bind it once per plan for the hot loop."""
        return self._fn

    def output_type(self, avro_type: Any) -> Any | None:
        """The Avro type of the field in the delivered schema, or ``None`` if the field is dropped.

        Optionality is kept: ``["null", {"type": "int", "logicalType": "date"}]`` becomes
        ``["null", "string"]`` under ``date_year``.

        Raises:
            PolicyError: the mask cannot apply to that type (e.g. ``date_year`` on a boolean, any mask but
                ``drop`` on a record, array or map).
        """
        if self.kind == "drop":
            return None
        base = _base_type(avro_type)
        if base is not None:
            allowed = (
                _TEXT_BASES
                if self.kind in ("id_number", "phone", "name", "address", "email")
                else _DATE_BASES
                if self.kind in ("date_year", "date_month")
                else _PSEUDONYM_BASES
            )
            if base not in allowed:
                raise PolicyError(f'mask "{self.kind}" cannot apply to Avro type "{base}"')
        return _string_keeping_null(avro_type)

    def describe(self) -> str:  # noqa: PLR0911 - one line per kind
        """One line for ``xhub plan`` and the sharing report, e.g. ``"phone: keep first 3 and last 4"``."""
        p = self.params
        match self.kind:
            case "id_number" | "phone":
                return f"{self.kind}: keep first {p['keep_first']} and last {p['keep_last']} characters"
            case "name":
                return "name: keep the surname, mask the given name"
            case "address":
                return "address: keep province, city and district, mask the rest"
            case "email":
                return "email: keep the first character and the domain"
            case "pseudonym":
                scope = f", scope {p['scope']!r}" if p["scope"] else ""
                return f"pseudonym: HMAC-SHA256 with key {p['key_id']}, {p['length']} hex characters{scope}"
            case "date_year":
                return "date_year: keep the year (YYYY)"
            case "date_month":
                return "date_month: keep year and month (YYYY-MM)"
            case _:
                return "drop: remove the field"


def build_mask(kind: str, *, secret: bytes | None = None, params: Mapping[str, Any] | None = None) -> Mask:
    """Build a mask of ``kind``.

    Args:
        kind: one of ``MASK_KINDS``.
        secret: the hub's pseudonym key; required for ``pseudonym`` (at least 16 bytes), ignored otherwise.
        params: optional knobs: ``keep_first``/``keep_last`` (id_number, phone), ``fallback_keep``
            (address), ``length`` (16..64 hex characters) and ``scope`` (pseudonym).

    Raises:
        PolicyError: unknown kind, unknown or invalid parameter, pseudonym without a usable secret.
    """
    if kind not in MASK_KINDS:
        raise PolicyError(f'unknown mask "{kind}" (masks: {", ".join(MASK_KINDS)})')
    kind_: MaskKind = kind  # type: ignore[assignment]  # narrowed by the membership test above
    return Mask(kind_, dict(params or {}), secret=secret)


def _check_params(kind: str, given: Mapping[str, Any], secret: bytes | None) -> dict[str, Any]:
    if kind not in _PARAM_DEFAULTS:
        raise PolicyError(f'unknown mask "{kind}" (masks: {", ".join(MASK_KINDS)})')
    defaults = _PARAM_DEFAULTS[kind]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise PolicyError(f'mask "{kind}": unknown parameter "{unknown[0]}" (parameters: {allowed})')
    params = {**defaults, **given}
    for name in ("keep_first", "keep_last", "fallback_keep"):
        if name in params:
            _check_int(kind, name, params[name], 0, 32)
    if kind == "pseudonym":
        _check_int(kind, "length", params["length"], 16, 64)
        if params["scope"] is not None and not isinstance(params["scope"], str):
            raise PolicyError('mask "pseudonym": parameter "scope" must be text')
        if secret is None:
            raise PolicyError('mask "pseudonym" needs the hub secret, and none is configured')
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise PolicyError(f'mask "pseudonym": the hub secret must be at least {MIN_SECRET_BYTES} bytes')
        key_id = hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:8]
        if params["key_id"] is not None and params["key_id"] != key_id:
            raise PolicyError(
                f'mask "pseudonym": key_id {params["key_id"]} does not match the hub secret (key {key_id})'
            )
        params["key_id"] = key_id
    return params


def _check_int(kind: str, name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PolicyError(f'mask "{kind}": parameter "{name}" must be an integer from {low} to {high}')


def _base_type(avro_type: Any) -> str | None:
    """The checked base of an Avro type (its non-null branch); ``None`` when it cannot be told."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        return _base_type(branches[0]) if len(branches) == 1 else None
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if isinstance(logical, str) and logical in _LOGICAL_BASES:
            return logical
        inner = avro_type.get("type")
        return inner if isinstance(inner, str) and inner in _AVRO_PRIMITIVES else _base_type(inner)
    if isinstance(avro_type, str) and avro_type in _AVRO_PRIMITIVES:
        return avro_type
    return None  # a named type defined elsewhere in the schema: not checked here


def _string_keeping_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list) and "null" in avro_type:
        if all(t == "null" for t in avro_type):
            return avro_type
        return ["null", "string"] if avro_type[0] == "null" else ["string", "null"]
    if avro_type == "null":
        return "null"
    return "string"
