"""Overdrafts: a member's balance below zero at the hub, because boxes that could not see each other's
redemptions (offline, or between two directory updates) spent the same points. Bounded per box and day by
the bundle's offline cap; recorded here with the member, the sites, the amounts and the events involved,
for the fraud alerts to take up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.db.schema import member_ledger, overdrafts
from cloud.fraud.integrity import overdraft_case


def check_overdraft(conn: sa.Connection, member_id: str, balance: int, days: set[Any], at: datetime) -> None:
    """After a member's balance changed: open or update their overdraft when it is below zero (`days`: the
    UTC days of the redemptions just ledgered, whose redemptions are the ones involved), settle it when not."""
    open_row = conn.execute(sa.select(overdrafts).where(overdrafts.c.member_id == member_id,
                                                        overdrafts.c.settled_at.is_(None))).first()
    if balance >= 0:
        if open_row is not None:
            conn.execute(overdrafts.update().where(overdrafts.c.id == open_row.id).values(
                balance=balance, updated_at=at, settled_at=at))
        return
    if not days and open_row is None:
        return  # below zero without a redemption just now (e.g. an import adjusted): nothing new to explain
    rows = conn.execute(sa.select(member_ledger).where(member_ledger.c.member_id == member_id,
                                                       member_ledger.c.kind == "redeem")
                        .order_by(member_ledger.c.occurred_at, member_ledger.c.id)).all()
    wanted = days | {day for day in _days(open_row)}
    involved = [row for row in rows if row.occurred_at.date() in wanted]
    events = [{"site_id": row.site_id, "device_id": row.device_id, "seq": row.seq, "sale_id": row.sale_id,
               "points": -int(row.points), "occurred_at": row.occurred_at.isoformat()} for row in involved]
    sites = sorted({row.site_id for row in involved if row.site_id})
    if open_row is None:
        conn.execute(overdrafts.insert().values(member_id=member_id, detected_at=at, updated_at=at, amount=-balance,
                                                balance=balance, sites=sites, events=events))
        overdraft_case(conn, member_id=member_id, points=-balance, sites=sites, at=at)
    else:
        conn.execute(overdrafts.update().where(overdrafts.c.id == open_row.id).values(
            amount=max(int(open_row.amount), -balance), balance=balance, sites=sites, events=events, updated_at=at))


def _days(row: Any) -> set[Any]:
    if row is None:
        return set()
    return {datetime.fromisoformat(event["occurred_at"]).date() for event in row.events}


def list_overdrafts(conn: sa.Connection, *, open_only: bool, limit: int) -> list[Any]:
    """Overdraft records, newest first."""
    query = sa.select(overdrafts)
    if open_only:
        query = query.where(overdrafts.c.settled_at.is_(None))
    return list(conn.execute(query.order_by(overdrafts.c.detected_at.desc(), overdrafts.c.id.desc())
                             .limit(limit)).all())
