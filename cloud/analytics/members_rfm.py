"""RFM: recency, frequency and money scores of 1 to 5 and the named segments they make. The thresholds are
here and only here (docs/members.md restates them).

- R, recency: days since the last visit, counted at read time (the chain's local day; lists) or at the
  snapshot's refresh (counts): 5 within 14 days, 4 within 30, 3 within 60, 2 within 120, 1 beyond.
- F, frequency: lifetime visits (local days with a sale): 5 from 20, 4 from 10, 3 from 5, 2 from 2, 1 for one.
- M, money: lifetime spend in minor units of the chain's currency: 5 from 50,000 (500.00), 4 from 20,000,
  3 from 8,000, 2 from 3,000, 1 below.

Segments, from R and FM = the mean of F and M rounded up, first match wins: `new` (R 4-5, one visit), `champions`
(R 4-5, FM 4-5), `loyal` (R 3-5, FM 3+), `promising` (R 4-5), `cant_lose` (R 1-2, FM 4-5), `at_risk`
(R 1-2, FM 3), `hibernating` (R 2-3), `lost` (R 1)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

RECENCY_DAYS: tuple[int, ...] = (14, 30, 60, 120)
"""R is 5 within the first number of days, 4 within the second, ..., 1 beyond the last."""
FREQUENCY_VISITS: tuple[int, ...] = (20, 10, 5, 2)
"""F is 5 from the first number of visits, 4 from the second, ..., 1 below the last."""
MONEY_SPEND: tuple[int, ...] = (50_000, 20_000, 8_000, 3_000)
"""M is 5 from the first spend (minor units), 4 from the second, ..., 1 below the last."""

SEGMENTS: tuple[str, ...] = ("champions", "loyal", "promising", "new", "at_risk", "cant_lose", "hibernating", "lost")
"""Every segment, best first (the order of the segment list)."""


def recency_score(days_since: int) -> int:
    """R for a member whose last visit was `days_since` local days ago."""
    for score, limit in zip((5, 4, 3, 2), RECENCY_DAYS, strict=True):
        if days_since <= limit:
            return score
    return 1


def frequency_score(visits: int) -> int:
    """F for a member with `visits` visits."""
    for score, floor in zip((5, 4, 3, 2), FREQUENCY_VISITS, strict=True):
        if visits >= floor:
            return score
    return 1


def money_score(spend: int) -> int:
    """M for a member who spent `spend` (minor units)."""
    for score, floor in zip((5, 4, 3, 2), MONEY_SPEND, strict=True):
        if spend >= floor:
            return score
    return 1


def segment(r: int, f: int, m: int) -> str:
    """The named segment of the scores R, F, M (see the module's docstring)."""
    fm = (f + m + 1) // 2
    if r >= 4:
        if f == 1:
            return "new"
        return "champions" if fm >= 4 else "loyal" if fm == 3 else "promising"
    if r == 3:
        return "loyal" if fm >= 3 else "hibernating"
    if fm >= 4:
        return "cant_lose"
    if fm == 3:
        return "at_risk"
    return "hibernating" if r == 2 else "lost"


def scores(*, last_visit: date | None, visits: int, spend: int, today: date) -> tuple[int, int, int]:
    """R, F, M of a member on `today` (R 1 without a visit)."""
    r = recency_score((today - last_visit).days) if last_visit is not None else 1
    return r, frequency_score(visits), money_score(spend)


def _case_down(column: sa.ColumnElement[Any], floors: tuple[int, ...]) -> sa.ColumnElement[int]:
    return sa.case(*[(column >= floor, score) for score, floor in zip((5, 4, 3, 2), floors, strict=True)], else_=1)


def score_columns(table: sa.Table, today: date) -> tuple[sa.ColumnElement[int], ...]:
    """R, F and M as SQL expressions over `member_activity` on `today` (what the snapshot groups by)."""
    last = table.c.last_visit
    recency = sa.case(*[(last >= today - timedelta(days=limit), score)
                        for score, limit in zip((5, 4, 3, 2), RECENCY_DAYS, strict=True)], else_=1)
    return (recency.label("r"), _case_down(table.c.visits, FREQUENCY_VISITS).label("f"),
            _case_down(table.c.spend, MONEY_SPEND).label("m"))
