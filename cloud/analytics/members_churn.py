"""The usual interval between a member's visits, and the churn warning: who is drifting away.

The usual interval is an exponentially weighted mean of the gaps between visit days, oldest first:
I = gap for the first gap, then I = ALPHA x gap + (1 - ALPHA) x I, so recent habits weigh more. It is a function
of the member's visit days only: a visit arriving out of order (an offline box's backlog) makes ingest recompute
it from every stored visit day, so it is the same whatever order sales arrive in.

The rule: a member is listed once they have at least `MIN_VISITS` visits and the local days since their last
visit exceed both `FACTOR` x their usual interval and `MIN_DAYS`. Ingest keeps the day this starts
(`churn_at`); the list compares it with today, so it is right on the day it is read."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from cloud.analytics.members_lists import Cursor, MemberLine, page, today
from cloud.db.member_analytics_tables import member_activity
from cloud.db.scoping import site_filter

ALPHA = 0.3
"""Weight of the newest gap in the usual interval."""
MIN_VISITS = 3
FACTOR = 2.5
MIN_DAYS = 21


def next_interval(interval: float | None, gap: int) -> float:
    """The usual interval after one more gap of `gap` days."""
    return float(gap) if interval is None else ALPHA * gap + (1 - ALPHA) * interval


def usual_interval(days: Iterable[date]) -> float | None:
    """The usual interval of visits on `days` (None with fewer than two)."""
    interval: float | None = None
    previous: date | None = None
    for day in sorted(set(days)):
        if previous is not None:
            interval = next_interval(interval, (day - previous).days)
        previous = day
    return interval


def churn_day(*, last_visit: date | None, interval: float | None, visits: int) -> date | None:
    """The first local day the member counts as drifting away (None while the rule cannot apply)."""
    if visits < MIN_VISITS or last_visit is None or interval is None:
        return None
    # Whole days since the last visit, d, with d > FACTOR x I and d > MIN_DAYS: d >= floor(FACTOR x I) + 1.
    return last_visit + timedelta(days=max(math.floor(FACTOR * interval) + 1, MIN_DAYS + 1))


def churn_list(conn: sa.Connection, *, sites: frozenset[str] | None, limit: int, before: Cursor | None,
               now: datetime) -> tuple[list[MemberLine], Cursor | None]:
    """Members drifting away today, most valuable (spend) first; a page after `before`, and the next cursor."""
    on = today(conn, now)
    where = [member_activity.c.churn_at <= on, site_filter(member_activity.c.home_site, sites)]
    return page(conn, where, member_activity.c.spend, member_activity.c.member_id, limit=limit, before=before, on=on)
