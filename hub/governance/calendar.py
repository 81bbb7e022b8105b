"""Working days on the official Chinese calendar: the deadline of a share request (国发〔2016〕51号).

The calendar is the State Council's yearly holiday notice as the ``chinese-calendar`` package carries it:
public holidays are off and some weekend days are make-up working days (调休). The package knows only the
years whose notice it ships (a newer release adds each year once the notice is published); for any other
year it raises ``NotImplementedError``. Here such a year is never guessed silently: it is reckoned Monday
to Friday and every answer says so (:class:`Reckoning` ``warnings``; :func:`due_date` and
:func:`working_days_between` also issue a :class:`CalendarWarning`).

Periods are counted as the Civil Code counts them (民法典 第二百零一条): the day of the request is not
counted, the period starts the day after.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Generic, TypeVar

import chinese_calendar

T = TypeVar("T")

_MAX_SPAN_DAYS = 366 * 20  # a deadline further than this is a mistake in the input, not a date


class CalendarWarning(UserWarning):
    """A date fell in a year the official calendar does not cover: it was reckoned Monday to Friday."""


@dataclass(frozen=True, slots=True)
class Reckoning(Generic[T]):
    """A value computed on the calendar, with the warnings of every year it had to reckon Mon-Fri.

    Attributes:
        value: the date or the count.
        uncovered_years: years outside the official calendar that the value depends on (sorted).
    """

    value: T
    uncovered_years: tuple[int, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """One message per uncovered year, naming it."""
        return tuple(uncovered_message(year) for year in self.uncovered_years)

    @property
    def exact(self) -> bool:
        """True when every day counted is on the official calendar."""
        return not self.uncovered_years


def uncovered_message(year: int) -> str:
    """The warning for ``year``: the official calendar does not cover it, so weekdays were counted."""
    return (
        f"the official holiday calendar (chinese-calendar {_package_version()}) does not cover {year}: "
        f"working days in {year} are counted Monday to Friday, without holidays or make-up days (调休); "
        "upgrade chinese-calendar once the State Council's notice for that year is out"
    )


def _package_version() -> str:
    return str(getattr(chinese_calendar, "__version__", "?"))


@cache
def year_covered(year: int) -> bool:
    """True when the official calendar (the installed ``chinese-calendar``) covers ``year``."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def is_working_day(day: date) -> Reckoning[bool]:
    """Whether ``day`` is a working day: official calendar, or Monday-Friday (flagged) outside it."""
    if year_covered(day.year):
        return Reckoning(bool(chinese_calendar.is_workday(day)))
    return Reckoning(day.weekday() < 5, (day.year,))


def reckon_due_date(requested: date, working_days: int) -> Reckoning[date]:
    """The ``working_days``-th working day after ``requested`` (the request day itself not counted).

    Raises:
        ValueError: ``working_days`` is less than 1.
    """
    if working_days < 1:
        raise ValueError(f"working_days must be at least 1, not {working_days}")
    uncovered: set[int] = set()
    day, counted = requested, 0
    while counted < working_days:
        day += timedelta(days=1)
        if (day - requested).days > _MAX_SPAN_DAYS:
            raise ValueError(f"{working_days} working days after {requested} is beyond any calendar")
        working = is_working_day(day)
        uncovered.update(working.uncovered_years)
        counted += working.value
    return Reckoning(day, tuple(sorted(uncovered)))


def reckon_working_days_between(a: date, b: date) -> Reckoning[int]:
    """Working days after ``a`` up to and including ``b``; negative when ``b`` is before ``a``.

    ``reckon_working_days_between(d, reckon_due_date(d, n).value).value == n``: the count of a period as
    the deadline counts it. Two dates of the same day give 0.
    """
    if b < a:
        back = reckon_working_days_between(b, a)
        return Reckoning(-back.value, back.uncovered_years)
    if (b - a).days > _MAX_SPAN_DAYS:
        raise ValueError(f"{a} to {b} is beyond any calendar")
    uncovered: set[int] = set()
    count = 0
    day = a
    while day < b:
        day += timedelta(days=1)
        working = is_working_day(day)
        uncovered.update(working.uncovered_years)
        count += working.value
    return Reckoning(count, tuple(sorted(uncovered)))


def due_date(requested: date, working_days: int) -> date:
    """The day an answer is due: the ``working_days``-th working day after ``requested``.

    Issues a :class:`CalendarWarning` naming each year outside the official calendar (counted Mon-Fri).
    """
    return _warned(reckon_due_date(requested, working_days))


def working_days_between(a: date, b: date) -> int:
    """Working days after ``a`` up to and including ``b`` (negative when ``b`` is before ``a``).

    Issues a :class:`CalendarWarning` naming each year outside the official calendar (counted Mon-Fri).
    """
    return _warned(reckon_working_days_between(a, b))


def _warned(result: Reckoning[T]) -> T:
    for message in result.warnings:
        warnings.warn(message, CalendarWarning, stacklevel=3)
    return result.value
