"""GB 32100 unified social credit codes, with the GB 11714 organisation code inside."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.validation.gb32100 import (
    ALPHABET,
    AUTHORITY_CODES,
    check_char,
    diagnose_credit_code,
    explain_credit_code,
    is_valid_credit_code,
    org_code_check_char,
)

# Codes published by their holders (on licences, annual reports, websites). Their check characters
# were computed by hand before trusting them as fixtures; both checks must pass for each.
PUBLISHED_CODES = [
    "91350100M000100Y43",  # the example most often cited in GB 32100 explanations
    "914403001922038216",  # 华为技术有限公司
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "91330100716105852F",  # 阿里巴巴(中国)有限公司
]


@st.composite
def valid_codes(draw: st.DrawFn) -> str:
    authority = draw(st.sampled_from(sorted(AUTHORITY_CODES)))
    entity_type = draw(st.sampled_from("123456789"))
    area = draw(st.text("0123456789", min_size=6, max_size=6))
    org = draw(st.text(ALPHABET, min_size=8, max_size=8))
    first17 = f"{authority}{entity_type}{area}{org}{org_code_check_char(org)}"
    return first17 + check_char(first17)


@pytest.mark.parametrize("code", PUBLISHED_CODES)
def test_published_codes_are_valid(code: str) -> None:
    assert check_char(code[:17]) == code[17]
    assert org_code_check_char(code[8:16]) == code[16]
    assert is_valid_credit_code(code)


def test_org_code_check_char_on_a_known_code() -> None:
    # M000100Y4: M=22, 1 at weight 5, Y=34 at weight 2 -> 66 + 5 + 68 = 139; 11 - 139 % 11 = 4.
    assert org_code_check_char("M000100Y") == "4"


@given(valid_codes())
def test_generated_codes_validate(code: str) -> None:
    assert is_valid_credit_code(code)


@given(valid_codes(), st.sampled_from(ALPHABET))
def test_any_other_final_check_char_is_detected(code: str, other: str) -> None:
    if other == code[17]:
        return
    problem = diagnose_credit_code(code[:17] + other)
    assert problem is not None
    assert problem.check_failed
    assert problem.message == f"check character is {other}, expected {code[17]}"


@given(valid_codes(), st.integers(0, 16), st.sampled_from(ALPHABET))
def test_any_single_character_change_is_detected(code: str, position: int, char: str) -> None:
    if code[position] == char:
        return
    assert not is_valid_credit_code(code[:position] + char + code[position + 1 :])


@given(valid_codes(), st.integers(8, 15), st.sampled_from(ALPHABET))
def test_org_code_typo_is_a_check_failure(code: str, position: int, char: str) -> None:
    if code[position] == char:
        return
    problem = diagnose_credit_code(code[:position] + char + code[position + 1 :])
    assert problem is not None
    assert problem.check_failed


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("91350100M000100Y4", "length is 17"),
        ("91350100M000100Y433", "length is 19"),
        ("91350100M000I00Y43", "character 13 is not in the code alphabet"),
        ("91350100m000100Y43", "character 9 is not in the code alphabet"),
        ("B1350100M000100Y43", "registration authority"),
        ("9A350100M000100Y43", "entity type"),
        ("9135A100M000100Y43", "area code"),
    ],
)
def test_malformed_codes_are_explained(code: str, fragment: str) -> None:
    problem = diagnose_credit_code(code)
    assert problem is not None
    assert not problem.check_failed
    assert fragment in problem.message


def test_wrong_org_check_char_is_named() -> None:
    assert (
        explain_credit_code("91350100M000100Y53") == "organisation code check character (17) is 5, expected 4"
    )


def test_non_strings_and_bad_arguments() -> None:
    assert explain_credit_code(None) == "expected a string, got NoneType"
    with pytest.raises(ValueError, match="17 characters"):
        check_char("9135")
    with pytest.raises(ValueError, match="without I, O, S, V, Z"):
        check_char("91350100M000100I4")
    with pytest.raises(ValueError, match="8 digits"):
        org_code_check_char("m000100y")
