"""Working-day arithmetic on the official calendar: holidays, make-up days (调休), uncovered years."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from hub.governance.calendar import (
    CalendarWarning,
    due_date,
    is_working_day,
    reckon_due_date,
    reckon_working_days_between,
    working_days_between,
    year_covered,
)


@pytest.mark.parametrize(
    ("requested", "due"),
    [
        # National Day 2025: 10-01..10-08 off; Sunday 09-28 and Saturday 10-11 are make-up working days.
        # 09-29, 09-30, 10-09, 10-10, 10-11 (Sat), 10-13 .. 10-17.
        (date(2025, 9, 28), date(2025, 10, 17)),
        # 10-09, 10-10, 10-11 (Sat), 10-13 .. 10-17, 10-20, 10-21.
        (date(2025, 9, 30), date(2025, 10, 21)),
        # Spring Festival 2025: 01-28..02-04 off; Sunday 01-26 and Saturday 02-08 are make-up working days.
        # 01-26 (Sun), 01-27, 02-05, 02-06, 02-07, 02-08 (Sat), 02-10 .. 02-13.
        (date(2025, 1, 24), date(2025, 2, 13)),
        # Filed on the make-up Sunday itself: that day is not counted.
        (date(2025, 1, 26), date(2025, 2, 14)),
        # An ordinary fortnight: two weeks of five days.
        (date(2025, 3, 3), date(2025, 3, 17)),
        # Filed during the holiday: counting starts the day after, so the same deadline as on 09-30.
        (date(2025, 10, 3), date(2025, 10, 21)),
    ],
)
def test_due_date_on_the_official_calendar(requested: date, due: date) -> None:
    result = reckon_due_date(requested, 10)
    assert result.value == due
    assert result.exact
    assert result.warnings == ()
    assert working_days_between(requested, due) == 10
    assert working_days_between(requested, due - timedelta(days=1)) == 9  # the due day is a working day


def test_make_up_days_work_and_holidays_rest() -> None:
    assert is_working_day(date(2025, 9, 28)).value  # Sunday, 调休
    assert is_working_day(date(2025, 10, 11)).value  # Saturday, 调休
    assert is_working_day(date(2025, 2, 8)).value  # Saturday, 调休
    assert not is_working_day(date(2025, 10, 1)).value  # Wednesday, National Day
    assert not is_working_day(date(2025, 1, 29)).value  # Wednesday, Spring Festival
    assert not is_working_day(date(2025, 3, 8)).value  # an ordinary Saturday


def test_working_days_between_counts_after_the_first_day_and_is_signed() -> None:
    assert working_days_between(date(2025, 9, 30), date(2025, 9, 30)) == 0
    assert working_days_between(date(2025, 9, 30), date(2025, 10, 8)) == 0  # the whole holiday
    assert working_days_between(date(2025, 9, 30), date(2025, 10, 9)) == 1
    assert working_days_between(date(2025, 10, 9), date(2025, 9, 30)) == -1
    assert due_date(date(2025, 9, 28), 1) == date(2025, 9, 29)


def test_an_uncovered_year_is_counted_monday_to_friday_and_says_so() -> None:
    assert not year_covered(2031)
    result = reckon_due_date(date(2031, 3, 3), 10)  # a Monday
    assert result.value == date(2031, 3, 17)
    assert not result.exact
    assert result.uncovered_years == (2031,)
    assert "2031" in result.warnings[0]
    assert "Monday to Friday" in result.warnings[0]
    with pytest.warns(CalendarWarning, match="does not cover 2031"):
        assert due_date(date(2031, 3, 3), 10) == date(2031, 3, 17)
    with pytest.warns(CalendarWarning, match="2031"):
        assert working_days_between(date(2031, 3, 3), date(2031, 3, 10)) == 5


def test_a_deadline_running_into_an_uncovered_year_names_only_that_year() -> None:
    last = max(y for y in range(2020, 2040) if year_covered(y))
    result = reckon_due_date(date(last, 12, 20), 10)
    assert result.value.year == last + 1
    assert result.uncovered_years == (last + 1,)
    between = reckon_working_days_between(date(last, 12, 1), date(last, 12, 31))
    assert between.exact


def test_a_covered_deadline_gives_no_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert due_date(date(2025, 9, 28), 10) == date(2025, 10, 17)


def test_working_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        reckon_due_date(date(2025, 1, 1), 0)
