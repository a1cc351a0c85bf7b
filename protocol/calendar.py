"""The chain's calendar: the local day, week and month of an instant, and the moments time-based rules run at.

Pure: instants are arguments, never read from a clock. Every rule that speaks of a day, a week, a month or a
time of day means the chain's local time (the bundle's `timezone`, an IANA name): a matinee starts at 10:00
in the cinema, and points earned on the evening of the 31st belong to that month.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The time zone `name`; ValueError when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name[:64]!r}") from exc


def known_zone(name: str) -> bool:
    """True when `name` is a time zone this machine knows."""
    try:
        zone(name)
    except ValueError:
        return False
    return True


def local(at: datetime, tz: str) -> datetime:
    """`at` (aware) in the chain's local time."""
    return at.astimezone(zone(tz))


def local_day(at: datetime, tz: str) -> date:
    return local(at, tz).date()


def month_key(day: date) -> str:
    """"YYYY-MM": the key of a month (lots of points, activity buckets)."""
    return f"{day.year:04d}-{day.month:02d}"


def week_key(day: date) -> str:
    """"YYYY-Www": the ISO week (Monday to Sunday) of `day`."""
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


@lru_cache(maxsize=4096)
def add_months(key: str, months: int) -> str:
    """The month `months` after (or before) month `key`."""
    year, month = int(key[:4]), int(key[5:7])
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def start_of_day(day: date, tz: str) -> datetime:
    """The UTC instant local midnight of `day` begins."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def start_of_month(key: str, tz: str) -> datetime:
    return start_of_day(date(int(key[:4]), int(key[5:7]), 1), tz)


def next_month_start(after: datetime, tz: str) -> datetime:
    """The first local month start after `after`."""
    key = add_months(month_key(local_day(after, tz)), 1)
    moment = start_of_month(key, tz)
    return moment if moment > after else start_of_month(add_months(key, 1), tz)


def month_starts(after: datetime, until: datetime, tz: str) -> list[datetime]:
    """The local month starts in (after, until], oldest first."""
    moments = []
    key = add_months(month_key(local_day(after, tz)), 1)
    while (moment := start_of_month(key, tz)) <= until:
        if moment > after:
            moments.append(moment)
        key = add_months(key, 1)
    return moments


def birthday_in(year: int, birthday: str) -> date:
    """The member's birthday (MM-DD) in `year`; 29 February is the 28th in a common year."""
    month, day = int(birthday[:2]), int(birthday[3:5])
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, month, day - 1)


def birthday_week(day: date, birthday: str) -> bool:
    """Whether `day` falls in the ISO week (Monday to Sunday) holding the member's birthday that year.

    A birthday week that starts in December and ends in January belongs to the year of the birthday.
    """
    for year in (day.year - 1, day.year, day.year + 1):
        when = birthday_in(year, birthday)
        monday = when - timedelta(days=when.weekday())
        if monday <= day <= monday + timedelta(days=6):
            return True
    return False


def birthday_year(day: date, birthday: str) -> int:
    """The year whose birthday week `day` belongs to (call only when `birthday_week` is true)."""
    for year in (day.year - 1, day.year, day.year + 1):
        when = birthday_in(year, birthday)
        monday = when - timedelta(days=when.weekday())
        if monday <= day <= monday + timedelta(days=6):
            return year
    return day.year
