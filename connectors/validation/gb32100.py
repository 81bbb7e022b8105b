"""Unified social credit codes (统一社会信用代码) under GB 32100-2015.

A code has 18 characters over ``ALPHABET`` (digits and upper-case letters without I, O, Z, S, V):

====== ==================================================================================
1      registration authority (登记管理部门): 1 机构编制, 5 民政, 9 市场监管 (工商), Y 其他, ...
2      entity type (机构类别) within that authority, e.g. 91 企业, 92 个体工商户, 93 农民专业合作社
3-8    administrative area code of the registering authority (GB/T 2260), digits
9-17   organisation code (组织机构代码, GB 11714): 8 characters and its own check character
18     check character (GB/T 17710): weighted sum mod 31, weights 3^i mod 31
====== ==================================================================================

Both check characters are verified: a typo in positions 9-17 is usually caught twice.
"""

from __future__ import annotations

from operator import mul
from typing import Final

from connectors.validation.problem import CodeProblem

LENGTH: Final = 18
ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 code characters; a character's value is its index here."""
_VALUES: Final = {c: i for i, c in enumerate(ALPHABET)}
_ALPHABET_SET: Final = frozenset(ALPHABET)
_BASE36: Final = {c: int(c, 36) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
"""GB 11714 character values: digits as themselves, A=10 ... Z=35."""
WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
"""3^(i-1) mod 31 for positions 1..17."""

ORG_CODE_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
"""GB 11714 weights for the 8 body characters of an organisation code."""

AUTHORITY_CODES: Final = frozenset("123456789ANY")
"""Registration authorities assigned by GB 32100 and its amendment: 1-9 (机构编制, 外交, 司法行政, 文化,
民政, 旅游, 宗教, 工会, 市场监管), A (中央军委改革和编制办公室), N (农业), Y (其他)."""

ENTITY_TYPE_CODES: Final = frozenset("123456789")
"""Entity types are single digits under every authority (e.g. 1 企业, 2 个体工商户, 3 农民专业合作社)."""


def check_char(first17: str) -> str:
    """Compute the GB 32100 check character (position 18) for the first 17 characters of a code.

    Args:
        first17: 17 characters from ``ALPHABET``.

    Returns:
        One character of ``ALPHABET``.

    Raises:
        ValueError: ``first17`` is not 17 characters of the code alphabet.
    """
    if len(first17) != 17:
        raise ValueError("a GB 32100 check character needs exactly 17 characters")
    if not _ALPHABET_SET.issuperset(first17):
        raise ValueError("a GB 32100 code uses only 0-9 and A-Y without I, O, S, V, Z")
    return _check_char(first17)


def _check_char(first17: str) -> str:
    return ALPHABET[-sum(map(mul, map(_VALUES.__getitem__, first17), WEIGHTS)) % 31]


def _org_check_char(first8: str) -> str:
    check = 11 - sum(map(mul, map(_BASE36.__getitem__, first8), ORG_CODE_WEIGHTS)) % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def org_code_check_char(first8: str) -> str:
    """Compute the GB 11714 organisation code check character for its 8 body characters.

    Args:
        first8: 8 characters, digits or upper-case letters (A=10 ... Z=35).

    Returns:
        "0"-"9" or "X".

    Raises:
        ValueError: ``first8`` is not 8 digits or upper-case ASCII letters.
    """
    if len(first8) != 8 or not first8.isascii() or not first8.isalnum() or first8.upper() != first8:
        raise ValueError("a GB 11714 check character needs exactly 8 digits or upper-case letters")
    return _org_check_char(first8)


def diagnose_credit_code(value: object) -> CodeProblem | None:  # noqa: PLR0911 - one return per rule
    """Check a credit code and say what is wrong with it.

    Returns:
        None when valid, else the problem; ``check_failed`` is True when the code is well formed and
        a check character (the organisation code's or the final one) does not match.
    """
    if not isinstance(value, str):
        return CodeProblem(f"expected a string, got {type(value).__name__}", False)
    if len(value) != LENGTH:
        return CodeProblem(f"length is {len(value)}, expected {LENGTH}", False)
    if not _ALPHABET_SET.issuperset(value):
        position = next(i for i, c in enumerate(value, start=1) if c not in _ALPHABET_SET)
        return CodeProblem(
            f"character {position} is not in the code alphabet (0-9, A-Y without I O S V Z)", False
        )
    if value[0] not in AUTHORITY_CODES:
        return CodeProblem("character 1 is not a registration authority code", False)
    if value[1] not in ENTITY_TYPE_CODES:
        return CodeProblem("character 2 is not an entity type code (1-9)", False)
    if not value[2:8].isdigit():
        return CodeProblem("area code (characters 3-8) must be digits", False)
    org_expected = _org_check_char(value[8:16])
    if value[16] != org_expected:
        return CodeProblem(
            f"organisation code check character (17) is {value[16]}, expected {org_expected}", True
        )
    expected = _check_char(value[:17])
    if value[17] != expected:
        return CodeProblem(f"check character is {value[17]}, expected {expected}", True)
    return None


def explain_credit_code(value: object) -> str | None:
    """Say why ``value`` is not a valid credit code, or return None if it is."""
    problem = diagnose_credit_code(value)
    return None if problem is None else problem.message


def is_valid_credit_code(value: object) -> bool:
    """True if ``value`` is a well-formed credit code whose two check characters are correct."""
    return diagnose_credit_code(value) is None
