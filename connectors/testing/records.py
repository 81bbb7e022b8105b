"""Test records of the shared suite: a small resource that exercises every check, and a bad-record corpus.

The resource ``PD-SOC-0001`` (a social-insurance enrolee) is keyed by a citizen ID number (GB 11643),
has a date, an enum, an int, an optional credit code checked under GB 32100 and an optional free text, so
that every reason of the corpus can be produced by a department table, an outbox row or an HTTP body.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from connectors.validation.gb11643 import check_digit
from connectors.validation.gb32100 import check_char, org_code_check_char

RESOURCE: Final = "PD-SOC-0001"
KEY_FIELD: Final = "id_number"

SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "Enrolee",
    "namespace": "gov.xhub.test",
    "doc": "社保参保人 (test resource of the connector suite)",
    "fields": [
        {"name": "id_number", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "gender", "type": {"type": "enum", "name": "EnroleeGender", "symbols": ["M", "F"]}},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "score", "type": "int"},
        {"name": "employer_code", "type": ["null", "string"], "default": None},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
"""Avro schema of the test resource."""

CORPUS: Final[dict[str, str]] = {
    "wrong_type": "wrong_type",
    "missing_key": "missing_key",
    "bad_id_check_digit": "bad_id_check_digit",
    "bad_credit_code": "bad_credit_code",
    "oversize": "oversize",
    "invalid_utf8": "invalid_utf8",
}
"""Bad-record case -> the dead-letter reason it must get."""

MAX_RECORD_BYTES: Final = 4096
"""The suite runs its sources with this record limit, so "oversize" stays small."""


def citizen_id(n: int, *, born: dt.date = dt.date(1985, 6, 1), area: str = "310115") -> str:
    """A valid 18-character ID number, distinct for each ``n`` below 1000 per birth date."""
    born = born + dt.timedelta(days=n // 1000)
    body = f"{area}{born:%Y%m%d}{n % 1000:03d}"
    return body + check_digit(body)


def bad_check_digit(valid: str) -> str:
    """``valid`` with a wrong check digit."""
    wrong = "0" if valid[-1] != "0" else "1"
    return valid[:-1] + wrong


def credit_code(n: int) -> str:
    """A valid unified social credit code."""
    org = f"{n:08d}"
    first17 = f"91310115{org}{org_code_check_char(org)}"
    return first17 + check_char(first17)


def bad_credit_code(n: int) -> str:
    """A well-formed credit code with a wrong final check character."""
    good = credit_code(n)
    wrong = "0" if good[-1] != "0" else "1"
    return good[:-1] + wrong


def record(n: int, **changes: Any) -> dict[str, Any]:
    """A valid record, as a department system holds it (dates as ISO text)."""
    base: dict[str, Any] = {
        "id_number": citizen_id(n),
        "name": f"参保人{n}",
        "gender": "MF"[n % 2],
        "birth_date": (dt.date(1985, 6, 1) + dt.timedelta(days=n // 1000)).isoformat(),
        "score": n,
        "employer_code": credit_code(n) if n % 3 == 0 else None,
        "note": None,
    }
    base.update(changes)
    return base


def bad_record(case: str, n: int) -> dict[str, Any]:
    """The record of corpus ``case`` (invalid_utf8 is a byte-level case: see ``INVALID_UTF8_NAME``)."""
    if case == "wrong_type":
        return record(n, score="not a number")
    if case == "missing_key":
        return record(n, id_number=None)
    if case == "bad_id_check_digit":
        return record(n, id_number=bad_check_digit(citizen_id(n)))
    if case == "bad_credit_code":
        return record(n, employer_code=bad_credit_code(n))
    if case == "oversize":
        return record(n, note="长" * MAX_RECORD_BYTES)
    if case == "invalid_utf8":
        return record(n)  # the name is replaced by invalid bytes by whoever writes it
    raise ValueError(f"unknown corpus case {case!r}")


INVALID_UTF8_NAME: Final = b"bad \xff\xfe name"
"""Bytes that are not UTF-8, written where a name should be."""
