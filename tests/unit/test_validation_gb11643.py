"""GB 11643 citizen ID numbers: check digit, structure, and messages that never leak the number."""

from __future__ import annotations

import datetime as dt
import string

import pytest
from faker import Faker
from hypothesis import given
from hypothesis import strategies as st

from connectors.validation.gb11643 import (
    PROVINCE_PREFIXES,
    check_digit,
    diagnose_citizen_id,
    explain_citizen_id,
    is_valid_citizen_id,
)

CHECK_CHARS = "0123456789X"


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    area = draw(st.sampled_from(sorted(PROVINCE_PREFIXES))) + draw(
        st.text(string.digits, min_size=4, max_size=4)
    )
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today()))
    sequence = draw(st.integers(0, 999))
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    return body + check_digit(body)


def test_standard_example_is_valid() -> None:
    # The worked example of GB 11643-1999 (Beijing Chaoyang, 1949-12-31, female, check X).
    assert check_digit("11010519491231002") == "X"
    assert is_valid_citizen_id("11010519491231002X")
    assert explain_citizen_id("11010519491231002X") is None


def test_standard_example_born_1880_has_right_check_digit_but_is_too_old() -> None:
    assert check_digit("44052418800101001") == "4"
    problem = diagnose_citizen_id("440524188001010014")
    assert problem is not None
    assert not problem.check_failed
    assert "before 1900" in problem.message


def test_faker_generated_numbers_validate() -> None:
    # An independent implementation (Faker's zh_CN provider) agrees with ours.
    fake = Faker("zh_CN")
    fake.seed_instance(11643)
    for _ in range(300):
        assert is_valid_citizen_id(fake.ssn())


@given(valid_ids())
def test_generated_ids_validate(value: str) -> None:
    assert is_valid_citizen_id(value)


@given(valid_ids(), st.sampled_from(CHECK_CHARS))
def test_any_other_check_char_is_detected(value: str, other: str) -> None:
    if other == value[17]:
        return
    changed = value[:17] + other
    problem = diagnose_citizen_id(changed)
    assert problem is not None
    assert problem.check_failed
    assert problem.message == f"check digit is {other}, expected {value[17]}"


@given(valid_ids(), st.integers(0, 16), st.sampled_from(string.digits))
def test_any_single_digit_change_is_detected(value: str, position: int, digit: str) -> None:
    if value[position] == digit:
        return
    assert not is_valid_citizen_id(value[:position] + digit + value[position + 1 :])


@given(valid_ids(), st.integers(0, 15))
def test_adjacent_transpositions_are_detected(value: str, position: int) -> None:
    a, b = value[position], value[position + 1]
    if a == b:
        return
    assert not is_valid_citizen_id(value[:position] + b + a + value[position + 2 :])


@given(st.text(min_size=18, max_size=18))
def test_messages_never_repeat_the_number(value: str) -> None:
    message = explain_citizen_id(value)
    if message is not None:
        assert value[:17] not in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1101051949123100", "length is 16"),
        ("11010519491231002XX", "length is 19"),
        ("1101051949123100AX", "characters 1-17 must be digits"),
        ("11010519491231002x", "upper-case X"),
        ("00010519491231002X", "province code"),
        ("110105194902300021", "not a real date"),
        ("110105" + f"{dt.date.today().year + 1}0101" + "0021", "in the future"),
        ("１１０１０５１９４９１２３１００２X", "characters 1-17 must be digits"),
    ],
)
def test_malformed_numbers_are_explained(value: str, fragment: str) -> None:
    problem = diagnose_citizen_id(value)
    assert problem is not None
    assert not problem.check_failed
    assert fragment in problem.message


def test_non_strings_are_rejected() -> None:
    assert explain_citizen_id(110105194912310021) == "expected a string, got int"
    assert not is_valid_citizen_id(None)


def test_future_is_relative_to_today_argument() -> None:
    body = "11010520300101002"
    value = body + check_digit(body)
    assert diagnose_citizen_id(value, today=dt.date(2031, 1, 1)) is None
    assert diagnose_citizen_id(value, today=dt.date(2029, 12, 31)) is not None


def test_check_digit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        check_digit("1234")
