"""The value functions of each mask kind (what ``hub.policy.masks`` documents, one function per kind).

``mask_function`` binds a kind and its checked parameters once per plan; the functions it returns run
per record, so everything that can be prepared (regular expressions, the HMAC key) is prepared here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import date, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from hub.policy.errors import MaskRuntimeError

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MASK = "*"
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
        "宇文", "司徒", "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "百里",
        "呼延", "申屠", "闻人", "澹台", "公冶", "太史", "单于", "钟离", "万俟", "赫连",
        "拓跋", "东郭", "南门", "左丘", "濮阳", "淳于", "第五",
    }
)  # fmt: skip

_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
# Lazy runs so each level stops at its first suffix ("上海市浦东新区…" -> "上海市" + "浦东新区").
_ADDRESS = re.compile(
    rf"(?P<province>[{_CJK}]{{2,9}}?(?:特别行政区|自治区|省))?"
    rf"(?P<city>[{_CJK}]{{1,10}}?(?:自治州|地区|市|州|盟))?"
    rf"(?P<district>[{_CJK}]{{1,10}}?(?:区|县|市|旗))?"
)
# Words ending in 区 that name a place below the district (a housing estate, a campus).
_NOT_DISTRICT = ("小区", "社区", "校区", "园区", "景区", "厂区", "营区", "街区")
_ADDRESS_TAIL = _MASK * 4


def mask_function(  # noqa: PLR0911 - one function per kind
    kind: str, params: Mapping[str, Any], secret: bytes | None
) -> Callable[[Any], Any]:
    """The function that masks one value for ``kind`` with its checked ``params``."""
    match kind:
        case "id_number" | "phone":
            return _keep_ends_mask(kind, params["keep_first"], params["keep_last"])
        case "name":
            return _name_mask
        case "address":
            return _address_mask(params["fallback_keep"])
        case "email":
            return _email_mask
        case "pseudonym":
            assert secret is not None  # checked in _check_params
            return _pseudonym_mask(secret, params["scope"], params["length"])
        case "date_year":
            return _date_year_mask
        case "date_month":
            return _date_month_mask
        case _:
            return _drop_mask


def _text(value: Any, kind: str) -> str:
    """Text form of a non-text value for the text masks (a phone stored as a long)."""
    if isinstance(value, int | Decimal | UUID) and not isinstance(value, bool):
        return str(value)
    raise MaskRuntimeError(f'mask "{kind}" cannot apply to a {type(value).__name__} value', kind=kind)


def _keep_ends(text: str, first: int, last: int) -> str:
    n = len(text)
    hidden = n - first - last
    # At least 4 characters are hidden, or the value is hidden whole: a short value must not show through.
    if hidden >= 4:
        return text[:first] + _MASK * hidden + text[n - last :]
    if n >= last + 4:
        return _MASK * (n - last) + text[n - last :]
    return _MASK * n


def _keep_ends_mask(kind: str, first: int, last: int) -> Callable[[Any], Any]:
    def mask(value: Any) -> Any:
        if value is None:
            return None
        if value.__class__ is not str:
            value = _text(value, kind)
        return _keep_ends(value, first, last)

    return mask


def _name_mask(value: Any) -> Any:
    if value is None:
        return None
    if value.__class__ is not str:
        value = _text(value, "name")
    n = len(value)
    if n < 2:
        return _MASK * n
    keep = 2 if n > 2 and value[:2] in _COMPOUND_SURNAMES else 1
    return value[:keep] + _MASK * (n - keep)


def _address_mask(fallback_keep: int) -> Callable[[Any], Any]:
    match = _ADDRESS.match

    def mask(value: Any) -> Any:
        if value is None:
            return None
        if value.__class__ is not str:
            value = _text(value, "address")
        n = len(value)
        m = match(value)
        kept = 0
        if m is not None:
            province, city, district = m.group("province", "city", "district")
            if district and district.endswith(_NOT_DISTRICT):
                district = None
            for part in (province, city, district):
                if not part:
                    continue
                if kept + len(part) >= n:
                    break
                kept += len(part)
        if not kept:
            kept = min(fallback_keep, n // 2)
        return value[:kept] + _ADDRESS_TAIL

    return mask


def _email_mask(value: Any) -> Any:
    if value is None:
        return None
    if value.__class__ is not str:
        value = _text(value, "email")
    at = value.rfind("@")
    if at > 0:
        return value[:1] + "***" + value[at:]
    # Not an address (no "@", or nothing before it): the first character only, never the whole value.
    return value[:1] + "***" if len(value) > 1 else "***"


def _pseudonym_mask(secret: bytes, scope: str | None, length: int) -> Callable[[Any], Any]:
    # The key schedule (and the scope prefix) is hashed once; each call copies the prepared state.
    base = hmac.new(secret, scope.encode() + b"\x00" if scope else b"", hashlib.sha256)

    def mask(value: Any) -> Any:
        if value is None:
            return None
        cls = value.__class__
        if cls is str:
            data = value.encode()
        elif cls is bytes:
            data = value
        else:
            data = _canonical_bytes(value)
        h = base.copy()
        h.update(data)
        return h.hexdigest()[:length]

    return mask


def _canonical_bytes(value: Any) -> bytes:  # noqa: PLR0911 - one return per kind of value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | Decimal):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, date | time):
        return value.isoformat().encode()
    if isinstance(value, UUID):
        return str(value).encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise MaskRuntimeError(
        f'mask "pseudonym" cannot apply to a {type(value).__name__} value', kind="pseudonym"
    )


def _year_month(value: Any, kind: str) -> tuple[int, int] | str:
    """Year and month of a date-like value, or the already-valid ISO text prefix for strings."""
    if isinstance(value, date):
        return value.year, value.month
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            d = date.fromordinal(_EPOCH_ORDINAL + value)
        except (ValueError, OverflowError) as exc:
            raise MaskRuntimeError(f'mask "{kind}": date out of range', kind=kind) from exc
        return d.year, d.month
    if isinstance(value, str):
        # ISO-8601: YYYY-MM[-DD[THH:MM…]]; checked by hand to avoid a regex per call.
        if len(value) >= 7 and value[4] == "-" and value[:4].isdigit() and value[5:7].isdigit():
            if 1 <= int(value[5:7]) <= 12:
                return value[:7]
        elif len(value) == 4 and value.isdigit() and kind == "date_year":
            return value
        raise MaskRuntimeError(f'mask "{kind}": text is not an ISO-8601 date', kind=kind)
    raise MaskRuntimeError(f'mask "{kind}" cannot apply to a {type(value).__name__} value', kind=kind)


def _date_year_mask(value: Any) -> Any:
    if value is None:
        return None
    ym = _year_month(value, "date_year")
    return ym[:4] if isinstance(ym, str) else f"{ym[0]:04d}"


def _date_month_mask(value: Any) -> Any:
    if value is None:
        return None
    ym = _year_month(value, "date_month")
    return ym if isinstance(ym, str) else f"{ym[0]:04d}-{ym[1]:02d}"


def _drop_mask(value: Any) -> Any:
    return None
