"""Citizen identity numbers (公民身份号码) under GB 11643-1999.

An ID number has 18 characters: a 6-digit administrative area code (GB/T 2260), the birth date as
YYYYMMDD, a 3-digit sequence number (odd for men, even for women) and a check character computed with
ISO 7064 MOD 11-2 over the first 17 digits ("0"-"9" or "X" for ten).

Messages never repeat the number: it is personal data and they end up in dead-letter headers.
"""

from __future__ import annotations

import datetime as dt
from operator import mul
from typing import Final

from connectors.validation.problem import CodeProblem

LENGTH: Final = 18
WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
"""2^(17-i) mod 11 for positions 1..17: the ISO 7064 MOD 11-2 weights."""
_ASCII_ZERO_SUM: Final = ord("0") * sum(WEIGHTS)
"""Subtracted from the weighted sum of the ASCII codes, so the sum is computed in C over bytes."""
_CHECK_CHARS: Final = "10X98765432"
"""Check character indexed by (weighted sum mod 11)."""
MIN_BIRTH_YEAR: Final = 1900
_IMPORT_DAY: Final = dt.date.today()

PROVINCE_PREFIXES: Final = frozenset(
    # GB/T 2260 province-level divisions, plus 81/82/83 used on residence permits for residents of
    # Hong Kong, Macao and Taiwan. Checked so that blank or shifted numbers ("000000...") are caught.
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "  # noqa: SIM905 - 35 codes read better as one row
    "50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)


def check_digit(first17: str) -> str:
    """Compute the GB 11643 check character for the first 17 digits of an ID number.

    Args:
        first17: exactly 17 ASCII digits.

    Returns:
        "0"-"9" or "X".

    Raises:
        ValueError: ``first17`` is not 17 ASCII digits.
    """
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError("a GB 11643 check digit needs exactly 17 ASCII digits")
    return _CHECK_CHARS[_weighted_sum(first17) % 11]


def _weighted_sum(digits17: str) -> int:
    return int(sum(map(mul, digits17.encode("ascii"), WEIGHTS))) - _ASCII_ZERO_SUM


def diagnose_citizen_id(  # noqa: PLR0911 - one return per rule, in the order a clerk checks by hand
    value: object, *, today: dt.date | None = None
) -> CodeProblem | None:
    """Check an ID number and say what is wrong with it.

    Args:
        value: the candidate ID number.
        today: the date birth dates must not be after; defaults to the current local date.

    Returns:
        None when valid, else the problem (with ``check_failed`` True for a check digit mismatch).
    """
    if not isinstance(value, str):
        return CodeProblem(f"expected a string, got {type(value).__name__}", False)
    if len(value) != LENGTH:
        return CodeProblem(f"length is {len(value)}, expected {LENGTH}", False)
    body = value[:17]
    if not (body.isascii() and body.isdigit()):
        return CodeProblem("characters 1-17 must be digits", False)
    last = value[17]
    if last not in "0123456789X":
        return CodeProblem("character 18 must be a digit or upper-case X", False)
    if body[:2] not in PROVINCE_PREFIXES:
        return CodeProblem("area code (characters 1-6) does not start with a province code", False)
    year, month, day = int(body[6:10]), int(body[10:12]), int(body[12:14])
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return CodeProblem("birth date (characters 7-14) is not a real date", False)
    if year < MIN_BIRTH_YEAR:
        return CodeProblem(f"birth year is before {MIN_BIRTH_YEAR}", False)
    # Dates up to the day this module was imported are past for sure; only later ones need a clock read.
    if (today is not None and born > today) or (
        today is None and born > _IMPORT_DAY and born > dt.date.today()
    ):
        return CodeProblem("birth date (characters 7-14) is in the future", False)
    expected = _CHECK_CHARS[_weighted_sum(body) % 11]
    if last != expected:
        return CodeProblem(f"check digit is {last}, expected {expected}", True)
    return None


def explain_citizen_id(value: object) -> str | None:
    """Say why ``value`` is not a valid ID number, or return None if it is.

    The text names positions and characters expected, never the number itself.
    """
    problem = diagnose_citizen_id(value)
    return None if problem is None else problem.message


def is_valid_citizen_id(value: object) -> bool:
    """True if ``value`` is a well-formed 18-character ID number with a correct check digit."""
    return diagnose_citizen_id(value) is None
