"""The chain's calendar: every day, week and month a rule speaks of is local time, DST changes included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from protocol.calendar import (
    add_months,
    birthday_in,
    birthday_week,
    birthday_year,
    local_day,
    month_key,
    month_starts,
    start_of_day,
    start_of_month,
    week_key,
    zone,
)
from tests.unit.protocol.factories import PARIS, paris


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        pytest.param(utc(2026, 1, 31, 22, 59, 59), date(2026, 1, 31), id="22h59-utc-31-jan-is-still-31-jan"),
        pytest.param(utc(2026, 1, 31, 23, 0), date(2026, 2, 1), id="23h00-utc-31-jan-is-1-feb-in-winter"),
        pytest.param(utc(2026, 7, 31, 21, 59), date(2026, 7, 31), id="21h59-utc-31-jul-is-31-jul"),
        pytest.param(utc(2026, 7, 31, 22, 0), date(2026, 8, 1), id="22h00-utc-31-jul-is-1-aug-in-summer"),
    ],
)
def test_the_local_day_of_an_instant_follows_paris_summer_and_winter_time(instant: datetime, day: date) -> None:
    assert local_day(instant, PARIS) == day


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2026, 3, 29), utc(2026, 3, 28, 23, 0), id="spring-forward-day-starts-23h-utc"),
        pytest.param(date(2026, 3, 30), utc(2026, 3, 29, 22, 0), id="day-after-spring-forward-22h-utc"),
        pytest.param(date(2026, 10, 25), utc(2026, 10, 24, 22, 0), id="fall-back-day-starts-22h-utc"),
        pytest.param(date(2026, 10, 26), utc(2026, 10, 25, 23, 0), id="day-after-fall-back-23h-utc"),
    ],
)
def test_local_midnight_across_the_dst_changes(day: date, expected: datetime) -> None:
    assert start_of_day(day, PARIS) == expected


@pytest.mark.parametrize(
    ("key", "months", "expected"),
    [
        pytest.param("2026-01", 12, "2027-01", id="jan-plus-12-is-next-jan"),
        pytest.param("2026-01", 13, "2027-02", id="jan-plus-13-is-next-feb"),
        pytest.param("2026-12", 1, "2027-01", id="dec-plus-1-crosses-the-year"),
        pytest.param("2026-01", -1, "2025-12", id="jan-minus-1-is-last-dec"),
        pytest.param("2026-03", -14, "2025-01", id="mar-minus-14-is-jan-last-year"),
        pytest.param("2026-05", 0, "2026-05", id="plus-0-is-itself"),
    ],
)
def test_month_arithmetic(key: str, months: int, expected: str) -> None:
    assert add_months(key, months) == expected


@pytest.mark.parametrize(
    ("day", "week"),
    [
        pytest.param(date(2026, 12, 28), "2026-W53", id="mon-28-dec-2026-is-week-53"),
        pytest.param(date(2027, 1, 3), "2026-W53", id="sun-3-jan-2027-is-still-week-53-of-2026"),
        pytest.param(date(2027, 1, 4), "2027-W01", id="mon-4-jan-2027-is-week-1"),
        pytest.param(date(2026, 3, 9), "2026-W11", id="monday-starts-a-week"),
        pytest.param(date(2026, 3, 15), "2026-W11", id="sunday-ends-it"),
    ],
)
def test_weeks_are_iso_monday_to_sunday(day: date, week: str) -> None:
    assert week_key(day) == week


def test_month_starts_are_local_midnights_after_exclusive_until_inclusive() -> None:
    feb, mar = start_of_month("2026-02", PARIS), start_of_month("2026-03", PARIS)
    assert feb == utc(2026, 1, 31, 23, 0)
    assert month_starts(paris(2026, 1, 15), mar, PARIS) == [feb, mar]
    assert month_starts(feb, mar, PARIS) == [mar]
    assert month_starts(paris(2026, 1, 15), feb - timedelta(seconds=1), PARIS) == []
    # Summer time: 1 April starts at 22:00 UTC on 31 March.
    assert month_starts(mar, paris(2026, 4, 1), PARIS)[-1] == utc(2026, 3, 31, 22, 0)
    assert month_key(local_day(feb, PARIS)) == "2026-02"


@pytest.mark.parametrize(
    ("year", "birthday", "expected"),
    [
        pytest.param(2027, "02-29", date(2027, 2, 28), id="29-feb-in-2027-is-28-feb"),
        pytest.param(2028, "02-29", date(2028, 2, 29), id="29-feb-in-leap-2028-is-29-feb"),
        pytest.param(2026, "12-31", date(2026, 12, 31), id="31-dec-is-31-dec"),
    ],
)
def test_a_birthday_in_a_year(year: int, birthday: str, expected: date) -> None:
    assert birthday_in(year, birthday) == expected


@pytest.mark.parametrize(
    ("day", "birthday", "inside", "year"),
    [
        # 11 March 2026 is a Wednesday: its week runs Monday 9 to Sunday 15 March.
        pytest.param(date(2026, 3, 8), "03-11", False, None, id="sunday-before-the-week-is-out"),
        pytest.param(date(2026, 3, 9), "03-11", True, 2026, id="monday-of-the-week-is-in"),
        pytest.param(date(2026, 3, 15), "03-11", True, 2026, id="sunday-of-the-week-is-in"),
        pytest.param(date(2026, 3, 16), "03-11", False, None, id="monday-after-is-out"),
        # 29 February in 2027 is Sunday 28 February: the week of 22 to 28 February.
        pytest.param(date(2027, 2, 22), "02-29", True, 2027, id="29-feb-birthday-2027-week-starts-mon-22"),
        pytest.param(date(2027, 3, 1), "02-29", False, None, id="29-feb-birthday-2027-not-1-mar"),
        # 31 December 2026 is a Thursday: its week runs into January 2027 and belongs to 2026.
        pytest.param(date(2027, 1, 3), "12-31", True, 2026, id="31-dec-birthday-week-reaches-sun-3-jan"),
        pytest.param(date(2027, 1, 4), "12-31", False, None, id="31-dec-birthday-week-ends-before-mon-4-jan"),
        # 1 January 2027 is a Friday: its week starts on Monday 28 December 2026 and belongs to 2027.
        pytest.param(date(2026, 12, 28), "01-01", True, 2027, id="1-jan-birthday-week-starts-28-dec-for-2027"),
        pytest.param(date(2026, 12, 27), "01-01", False, None, id="1-jan-birthday-not-sun-27-dec"),
    ],
)
def test_the_birthday_week_is_monday_to_sunday_and_knows_its_year(day: date, birthday: str, inside: bool,
                                                                    year: int | None) -> None:
    assert birthday_week(day, birthday) is inside
    if year is not None:
        assert birthday_year(day, birthday) == year


def test_an_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Atlantis'"):
        zone("Europe/Atlantis")
