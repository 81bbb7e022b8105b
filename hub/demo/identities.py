"""Fictitious identifiers that pass the national checks: citizen ID numbers and unified social credit codes.

ID numbers follow GB 11643 (area code, birth date, sequence with the gender in its last digit, check digit);
credit codes follow GB 32100 with a GB 11714 organisation code inside. The area codes come from the districts
of Shanghai (and, for people born elsewhere, Faker's list of counties), so a record can agree with its ID.
Dates are drawn from a fixed window so that a seed gives the same identifiers on any day.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from typing import Final, Literal, NamedTuple

from connectors.validation.gb11643 import check_digit
from connectors.validation.gb32100 import ALPHABET, check_char, org_code_check_char


class District(NamedTuple):
    """A district of Shanghai: its name, GB/T 2260 code and the one-character short form."""

    name: str
    code: str
    short: str


SHANGHAI_DISTRICTS: Final = (
    District("浦东新区", "310115", "浦"),
    District("黄浦区", "310101", "黄"),
    District("徐汇区", "310104", "徐"),
    District("长宁区", "310105", "长"),
    District("静安区", "310106", "静"),
    District("普陀区", "310107", "普"),
    District("虹口区", "310109", "虹"),
    District("杨浦区", "310110", "杨"),
    District("闵行区", "310112", "闵"),
    District("宝山区", "310113", "宝"),
    District("嘉定区", "310114", "嘉"),
    District("金山区", "310116", "金"),
    District("松江区", "310117", "松"),
    District("青浦区", "310118", "青"),
    District("奉贤区", "310120", "奉"),
    District("崇明区", "310151", "崇"),
)
"""The 16 districts of Shanghai; Pudong first, as the demo's home district."""
DISTRICTS: Final = tuple(d.name for d in SHANGHAI_DISTRICTS)
DISTRICT_BY_NAME: Final = {d.name: d for d in SHANGHAI_DISTRICTS}
DISTRICT_BY_CODE: Final = {d.code: d for d in SHANGHAI_DISTRICTS}

LATEST_DATE: Final = dt.date(2025, 6, 30)
"""The last date any generated event may carry; fixed so that output does not depend on today."""

SHANGHAI_BORN: Final = 0.6
"""Share of people whose ID number carries a Shanghai area code (the rest were born elsewhere)."""


@functools.cache
def _county_area_codes() -> tuple[str, ...]:
    """County-level GB/T 2260 codes from Faker's zh_CN ID provider (birthplaces outside Shanghai)."""
    from faker.providers.ssn.zh_CN import Provider

    return tuple(c for c in Provider.area_codes if not c.endswith("00") and c[:2] in _PROVINCES)


_PROVINCES: Final = frozenset(
    "11 12 13 14 15 21 22 23 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65".split()  # noqa: SIM905 - one row of codes
)


def date_between(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    """A day from ``start`` to ``end``, both included."""
    return dt.date.fromordinal(rng.randint(start.toordinal(), end.toordinal()))


def citizen_id(
    rng: random.Random,
    birth_year_range: tuple[int, int] = (1950, 2005),
    area_code: str | None = None,
    *,
    birth_date: dt.date | None = None,
    gender: Literal["M", "F"] | None = None,
) -> str:
    """A valid 18-character GB 11643 citizen ID number.

    Args:
        rng: the source of randomness.
        birth_year_range: inclusive range of birth years, used when ``birth_date`` is None.
        area_code: 6-digit area code; by default a Shanghai district (60%) or another county.
        birth_date: the birth date to encode.
        gender: "M" gives an odd 17th digit, "F" an even one; random by default.
    """
    if area_code is None:
        if rng.random() < SHANGHAI_BORN:
            area_code = rng.choice(SHANGHAI_DISTRICTS).code
        else:
            area_code = rng.choice(_county_area_codes())
    if birth_date is None:
        first, last = birth_year_range
        birth_date = date_between(rng, dt.date(first, 1, 1), min(dt.date(last, 12, 31), LATEST_DATE))
    sex: str = gender or rng.choice("MF")
    sequence = rng.randint(0, 99) * 10 + rng.choice((1, 3, 5, 7, 9) if sex == "M" else (0, 2, 4, 6, 8))
    body = f"{area_code}{birth_date:%Y%m%d}{sequence:03d}"
    return body + check_digit(body)


def credit_code(
    rng: random.Random, area_code: str = "310115", *, authority: str = "9", entity_type: str = "1"
) -> str:
    """A valid 18-character GB 32100 unified social credit code.

    Args:
        rng: the source of randomness.
        area_code: the registering authority's 6-digit area code.
        authority: registration authority, "9" for market regulation (企业, 个体工商户).
        entity_type: "1" 企业, "2" 个体工商户, "3" 农民专业合作社 under authority "9".
    """
    if rng.random() < 0.6:
        # Entities registered since 2015 get organisation codes "MA" + 6 code characters.
        body = "MA" + "".join(rng.choice(ALPHABET) for _ in range(6))
    else:
        body = f"{rng.randint(10_000_000, 99_999_999)}"
    first17 = f"{authority}{entity_type}{area_code}{body}{org_code_check_char(body)}"
    return first17 + check_char(first17)


def birth_date_of(id_number: str) -> dt.date:
    """The birth date a GB 11643 ID number carries (characters 7 to 14)."""
    return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
