"""Top members by lifetime points earned, visits, spend, or current balance, a keyset page at a time.

`points` ranks the points the member's sales earned over their lifetime (what they did, whatever they spent
since); `balance` ranks what they hold now (`members.balance`). A site manager sees members whose home site is
theirs; members with no sale yet (an imported balance) have no home site and show in the chain-wide lists only.
A site manager's list by balance is ordered by the copy kept beside the home site (as of the member's last sale or
the last snapshot refresh: `sync_balances`) and shows the exact balance."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from cloud.analytics.members_lists import Cursor, MemberLine, page, today
from cloud.db.member_analytics_tables import member_activity
from cloud.db.schema import members
from cloud.db.scoping import site_filter

TopBy = Literal["points", "visits", "balance", "spend"]

_BY: dict[str, sa.Column[Any]] = {
    "points": member_activity.c.points_earned,
    "visits": member_activity.c.visits,
    "spend": member_activity.c.spend,
}


def top_members(conn: sa.Connection, *, by: TopBy, sites: frozenset[str] | None, limit: int,
                before: Cursor | None, now: datetime) -> tuple[list[MemberLine], Cursor | None]:
    """The top members by `by`, highest first (ties by member id); a page after `before`, and the next cursor."""
    on = today(conn, now)
    a = member_activity.c
    if by != "balance":
        return page(conn, [site_filter(a.home_site, sites)], _BY[by], a.member_id, limit=limit, before=before, on=on)
    if sites is not None:
        # By the balance kept beside the home site (one index range per site; the exact balance is shown): walking
        # every member by balance for one site's few would read most of the chain.
        return page(conn, [site_filter(a.home_site, sites)], a.balance, a.member_id, limit=limit, before=before, on=on)
    # Chain-wide from the members' side: every member has a balance, a sale or not.
    return page(conn, [], members.c.balance, members.c.member_id, limit=limit, before=before, on=on)


def sync_balances(conn: sa.Connection) -> int:
    """Copy `members.balance` onto `member_activity` where it changed without a sale (time rules, HQ, refunds);
    returns how many rows changed."""
    a = member_activity.c
    drifted = (sa.select(a.member_id).select_from(member_activity.join(members, members.c.member_id == a.member_id))
               .where(a.balance != members.c.balance))
    if conn.dialect.name == "postgresql":
        # Locked in member order, as ingest locks them, and never waiting on those a batch holds (it sets theirs).
        drifted = drifted.order_by(a.member_id).with_for_update(of=member_activity, skip_locked=True)
    return int(conn.execute(member_activity.update().where(a.member_id == members.c.member_id,
                                                            a.member_id.in_(drifted))
                            .values(balance=members.c.balance)).rowcount)
