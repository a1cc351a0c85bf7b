"""Box-office figures, read from the rollup table only (a dashboard request never scans events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import sqlalchemy as sa

from cloud.db.schema import box_office

GroupBy = Literal["site", "film", "day"]


@dataclass(frozen=True, slots=True)
class BoxOfficeRow:
    """Sums for one key and currency; revenue in minor units."""

    key: str
    currency: str
    tickets: int
    revenue: int
    sales: int


def box_office_by(
    conn: sa.Connection,
    *,
    group_by: GroupBy,
    site: str | None = None,
    sites: frozenset[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[BoxOfficeRow]:
    """Sums grouped by site, film or day (UTC), sorted by key then currency; of `site`, or of `sites` when given
    (a site manager's), else of every site.

    Revenue is tickets plus concessions by site or day, and ticket revenue alone by film (concessions
    belong to no film). By film, rows without tickets (concessions only) are left out.
    """
    column = {"site": box_office.c.site_id, "film": box_office.c.film, "day": box_office.c.day}[group_by]
    revenue: sa.ColumnElement[int] = box_office.c.ticket_revenue
    if group_by != "film":
        revenue = box_office.c.ticket_revenue + box_office.c.concession_revenue
    tickets = sa.func.sum(box_office.c.tickets)
    stmt = sa.select(
        column.label("key"),
        box_office.c.currency,
        tickets.label("tickets"),
        sa.func.sum(revenue).label("revenue"),
        sa.func.sum(box_office.c.sales).label("sales"),
    ).group_by(column, box_office.c.currency)
    if site is not None:
        stmt = stmt.where(box_office.c.site_id == site)
    if sites is not None:
        stmt = stmt.where(box_office.c.site_id.in_(sorted(sites)))
    if date_from is not None:
        stmt = stmt.where(box_office.c.day >= date_from)
    if date_to is not None:
        stmt = stmt.where(box_office.c.day <= date_to)
    if group_by == "film":
        stmt = stmt.having(tickets > 0)
    stmt = stmt.order_by(column, box_office.c.currency)
    return [
        BoxOfficeRow(
            key=row.key.isoformat() if isinstance(row.key, date) else str(row.key),
            currency=row.currency,
            tickets=int(row.tickets or 0),
            revenue=int(row.revenue or 0),
            sales=int(row.sales or 0),
        )
        for row in conn.execute(stmt)
    ]
