"""Report periods: a month (`2026-11`), a quarter (`2026-Q4`) or a year (`2026`), as local days.

A period is a range of local days. The rollups already key sales by each site's local day, so a period reads
them by day; what is kept as instants (enrolments, points, complaints) is read between the UTC instants its
first day begins and the day after its last begins, in one time zone (the site's for a one-site report, else
the chain's): a DST change inside the period makes it an hour longer or shorter, as the clocks did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from protocol.calendar import start_of_day

PeriodKind = Literal["month", "quarter", "year"]
PERIOD_PATTERN = r"^20[0-9]{2}(-(0[1-9]|1[0-2])|-Q[1-4])?$"
"""What the API and the CLI take: YYYY, YYYY-MM or YYYY-Qn, years 2000 to 2099."""
_PATTERN = re.compile(PERIOD_PATTERN)


@dataclass(frozen=True, slots=True)
class Period:
    """A month, quarter or year: its key as written (`2026-11`) and its first and last local days."""

    kind: PeriodKind
    key: str
    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def previous(self) -> Period:
        """The period of the same kind just before this one."""
        return period_of(self.kind, self.first_day - timedelta(days=1))

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        """The UTC instants [start, end) of the period's local days in `tz`."""
        return start_of_day(self.first_day, tz), start_of_day(self.last_day + timedelta(days=1), tz)


def parse_period(text: str) -> Period:
    """The period `text` names (`2026`, `2026-11`, `2026-Q4`); ValueError for anything else."""
    if not _PATTERN.fullmatch(text):
        raise ValueError("a period is YYYY, YYYY-MM or YYYY-Qn (years 2000 to 2099)")
    year = int(text[:4])
    if len(text) == 4:
        return period_of("year", date(year, 1, 1))
    if text[5] == "Q":
        return period_of("quarter", date(year, 3 * (int(text[6]) - 1) + 1, 1))
    return period_of("month", date(year, int(text[5:7]), 1))


def period_of(kind: PeriodKind, day: date) -> Period:
    """The month, quarter or year holding `day`."""
    if kind == "year":
        return Period(kind, f"{day.year:04d}", date(day.year, 1, 1), date(day.year, 12, 31))
    if kind == "quarter":
        quarter = (day.month - 1) // 3
        first = date(day.year, 3 * quarter + 1, 1)
        return Period(kind, f"{day.year:04d}-Q{quarter + 1}", first, _month_end(date(day.year, 3 * quarter + 3, 1)))
    first = date(day.year, day.month, 1)
    return Period(kind, f"{day.year:04d}-{day.month:02d}", first, _month_end(first))


def check_kind(period: Period, kind: PeriodKind) -> None:
    """ValueError unless `period` is a `kind` (the CLI's `report month` takes months only)."""
    if period.kind != kind:
        examples = {"month": "2026-11", "quarter": "2026-Q4", "year": "2026"}
        raise ValueError(f"{period.key} is not a {kind} (a {kind} is written like {examples[kind]})")


def _month_end(first: date) -> date:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return following - timedelta(days=1)
