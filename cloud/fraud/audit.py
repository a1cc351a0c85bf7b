"""Reading the staff audit trail: every staff action boxes journaled, newest first, a page at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.db.fraud_tables import staff_audit


def list_audit(
    conn: sa.Connection,
    *,
    site_id: str | None = None,
    sites: frozenset[str] | None = None,
    staff_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before: tuple[str, int] | None = None,
) -> list[Any]:
    """Audit rows of actions in [since, until), newest first (event time), `limit` at most, after the row
    `before` (its device id and seq: the last row of the previous page); [] when that row does not exist."""
    col = staff_audit.c
    query = sa.select(staff_audit)
    if site_id is not None:
        query = query.where(col.site_id == site_id)
    if sites is not None:  # a site manager's
        query = query.where(col.site_id.in_(sorted(sites)))
    if staff_id is not None:
        query = query.where(col.staff_id == staff_id)
    if since is not None:
        query = query.where(col.occurred_at >= since)
    if until is not None:
        query = query.where(col.occurred_at < until)
    if before is not None:
        device_id, seq = before
        cursor = conn.execute(sa.select(col.occurred_at).where(col.device_id == device_id, col.seq == seq)).scalar()
        if cursor is None:
            return []
        # Keyset on (event time, device, seq), the order shown: a row stored late (an offline box) is on its page.
        query = query.where(sa.or_(
            col.occurred_at < cursor,
            sa.and_(col.occurred_at == cursor, sa.or_(
                col.device_id < device_id, sa.and_(col.device_id == device_id, col.seq < seq)))))
    return list(conn.execute(query.order_by(col.occurred_at.desc(), col.device_id.desc(), col.seq.desc())
                             .limit(limit)).all())
