"""Lists of members (churn warnings, top members): one line per member, by member id only, a page at a time.

Pages are keyset pages over an index ((value, member_id) descending, the cursor naming the last line shown): a
page costs the same however deep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from cloud.analytics.members_rfm import scores, segment
from cloud.db.member_analytics_tables import member_activity
from cloud.db.schema import members
from cloud.members.accounts import running_bundle
from protocol.calendar import local_day

Cursor = tuple[int, str]
"""(the ordering value, member id) of the last line of a page."""


@dataclass(frozen=True, slots=True)
class MemberLine:
    """A member as the lists show them: activity, points, tier and RFM on `today`. No personal data."""

    member_id: str
    status: str | None
    home_site: str | None
    first_visit: date | None
    last_visit: date | None
    days_since: int | None
    visits: int
    sales: int
    spend: int
    points_earned: int
    balance: int
    tier: str | None
    interval_days: float | None
    r: int
    f: int
    m: int
    segment: str


def today(conn: sa.Connection, now: datetime) -> date:
    """The chain's local day at `now` (the running bundle's time zone)."""
    return local_day(now, running_bundle(conn).timezone)


def line_query() -> sa.Select[Any]:
    """Every column a line needs: the member's row (balance, status, tier) with their activity."""
    a = member_activity.c
    return (sa.select(members.c.member_id, members.c.status, a.home_site, a.first_visit, a.last_visit, a.visits,
                      a.sales, a.spend, a.points_earned, members.c.balance,
                      members.c.account["tier"].as_string().label("tier"), a.interval_days)
            .select_from(members.outerjoin(member_activity, a.member_id == members.c.member_id)))


def lines(rows: Any, on: date) -> list[MemberLine]:
    """The lines of `line_query` rows, with recency and RFM on day `on`."""
    found = []
    for row in rows:
        r, f, m = scores(last_visit=row.last_visit, visits=int(row.visits or 0), spend=int(row.spend or 0), today=on)
        found.append(MemberLine(
            member_id=row.member_id, status=row.status, home_site=row.home_site, first_visit=row.first_visit,
            last_visit=row.last_visit, days_since=(on - row.last_visit).days if row.last_visit else None,
            visits=int(row.visits or 0), sales=int(row.sales or 0), spend=int(row.spend or 0),
            points_earned=int(row.points_earned or 0), balance=int(row.balance or 0), tier=row.tier,
            interval_days=round(row.interval_days, 2) if row.interval_days is not None else None,
            r=r, f=f, m=m, segment=segment(r, f, m)))
    return found


def page(conn: sa.Connection, where: Sequence[sa.ColumnElement[bool]], value: sa.ColumnElement[Any],
         key: sa.ColumnElement[Any], *, limit: int, before: Cursor | None, on: date) -> tuple[list[MemberLine],
                                                                                              Cursor | None]:
    """One page of the members matching `where`, by `value` then `key` descending, after `before`; and the next
    page's cursor (None at the end).

    The page's ids first (only the ordering columns: an index alone answers), then their lines: a site's few
    thousand members are sorted on two narrow columns, not on whole rows."""
    query = sa.select(key.label("member_id"), value.label("order_value")).where(*where)
    if before is not None:
        query = query.where(sa.tuple_(value, key) < sa.tuple_(*before))
    ranked = conn.execute(query.order_by(value.desc(), key.desc()).limit(limit + 1)).all()
    more = len(ranked) > limit
    ranked = ranked[:limit]
    rows = {row.member_id: row for row in conn.execute(
        line_query().where(members.c.member_id.in_([row.member_id for row in ranked])))} if ranked else {}
    cursor = (int(ranked[-1].order_value), str(ranked[-1].member_id)) if more and ranked else None
    # A member merged into another since the ids were read has no line: left out of the page.
    return lines([rows[row.member_id] for row in ranked if row.member_id in rows], on), cursor
