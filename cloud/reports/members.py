"""The members and loyalty liability sections.

Active members come from the daily staff activity rollup (one row per local day, site, till, cashier and card,
kept by ingest) joined to the members' cards, never from raw events; enrolments from `members`. The liability
reads `members.balance` and, for a period already over, the ledger rows dated after its end (see
`cloud.reports.model.LIABILITY_NOTE`).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from cloud.db.fraud_tables import staff_activity
from cloud.db.schema import member_cards, member_ledger, members
from cloud.db.scoping import site_filter
from cloud.reports.model import Liability, MemberLine, Members
from cloud.reports.sales import Sums
from protocol.rules import RuleBundle


def active_members(conn: sa.Connection, *, first: date, last: date,
                   sites: frozenset[str] | None) -> tuple[int, dict[str, int]]:
    """Members whose cards made a sale on local days first..last at `sites`: counted once, and per site."""
    where = (staff_activity.c.day >= first, staff_activity.c.day <= last, staff_activity.c.sales > 0,
             site_filter(staff_activity.c.site_id, sites))
    joined = staff_activity.join(member_cards, member_cards.c.card_token == staff_activity.c.card_token)
    distinct = sa.func.count(sa.distinct(member_cards.c.member_id))
    total = conn.execute(sa.select(distinct).select_from(joined).where(*where)).scalar_one()
    per_site = conn.execute(sa.select(staff_activity.c.site_id, distinct).select_from(joined).where(*where)
                            .group_by(staff_activity.c.site_id)).all()
    return int(total), {site: int(count) for site, count in per_site}


def new_enrolments(conn: sa.Connection, *, start: datetime, end: datetime) -> int:
    """Members enrolled in [start, end)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(members)
                            .where(members.c.enrolled_at >= start, members.c.enrolled_at < end)).scalar_one())


def _member_line(sums: Sums, active: int, site_id: str | None = None) -> MemberLine:
    sales = sum(each.sales for each in sums.values())
    member_sales = sum(each.member_sales for each in sums.values())
    return MemberLine(site_id=site_id, sales=sales, member_sales=member_sales,
                      member_sales_share=member_sales / sales if sales else None, active_members=active)


def members_section(conn: sa.Connection, *, days: tuple[date, date], previous_days: tuple[date, date],
                    by_site: Sums, previous: Sums, sites: frozenset[str] | None,
                    enrolments: tuple[int, int] | None) -> Members:
    """Members' share of sales (from the sales rollup sums given), active members, and (chain-wide reports,
    `enrolments` given as this and the previous period's) new enrolments."""
    active, active_by_site = active_members(conn, first=days[0], last=days[1], sites=sites)
    active_before, _ = active_members(conn, first=previous_days[0], last=previous_days[1], sites=sites)
    site_ids = sorted({site for site, _ in by_site} | set(active_by_site))
    return Members(
        totals=_member_line(by_site, active), previous=_member_line(previous, active_before),
        new_enrolments=enrolments[0] if enrolments else None,
        previous_new_enrolments=enrolments[1] if enrolments else None,
        by_site=[_member_line({key: sums for key, sums in by_site.items() if key[0] == site},
                              active_by_site.get(site, 0), site) for site in site_ids],
    )


def liability_section(conn: sa.Connection, *, end: datetime, now: datetime, bundle: RuleBundle) -> Liability:
    """Points outstanding at `end` (or now, when `end` is still to come) and their money value under `bundle`."""
    as_of = min(end, now)
    balance: sa.ColumnElement[int]
    if end >= now:
        source: sa.FromClause = members
        balance = members.c.balance
    else:
        # Only what moved after the end is read from the ledger: the balance is the sum of the whole ledger.
        later = (sa.select(member_ledger.c.member_id, sa.func.sum(member_ledger.c.points).label("points"))
                 .where(member_ledger.c.occurred_at >= end).group_by(member_ledger.c.member_id).subquery())
        source = members.outerjoin(later, later.c.member_id == members.c.member_id)
        balance = members.c.balance - sa.func.coalesce(later.c.points, 0)
    at_end = sa.select(balance.label("balance")).select_from(source).subquery()
    points, holders = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(at_end.c.balance), 0), sa.func.count())
        .where(at_end.c.balance > 0)).one()
    per_unit = bundle.redemption.points_per_unit
    return Liability(as_of=as_of, points_outstanding=int(points), members_with_points=int(holders),
                     currency=bundle.currency, points_per_unit=per_unit, value=int(points) // per_unit,
                     redemption_enabled=bundle.redemption.enabled)
