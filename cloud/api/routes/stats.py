"""GET /api/v1/stats/box-office: sums by site, film or day, read from the rollup table."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import ConnDep, ViewerDep
from cloud.api.params import IsoDate
from cloud.api.schemas import BoxOfficeOut
from cloud.db.stats import GroupBy, box_office_by

router = APIRouter(prefix="/stats", tags=["stats"])


@router.get("/box-office", response_model=list[BoxOfficeOut])
def box_office(
    conn: ConnDep,
    viewer: ViewerDep,
    group_by: Annotated[GroupBy, Query(description="site, film or day (UTC)")],
    site: Annotated[str | None, Query(max_length=64)] = None,
    date_from: Annotated[IsoDate | None, Query(description="first day included (UTC), YYYY-MM-DD")] = None,
    date_to: Annotated[IsoDate | None, Query(description="last day included (UTC), YYYY-MM-DD")] = None,
) -> list[BoxOfficeOut]:
    """Tickets, revenue (minor units) and sales per key and currency, sorted by key (a site manager's sites)."""
    rows = box_office_by(conn, group_by=group_by, sites=viewer.scope(site), date_from=date_from, date_to=date_to)
    return [
        BoxOfficeOut(
            key=row.key, tickets=row.tickets, revenue=row.revenue, currency=row.currency, sales=row.sales
        )
        for row in rows
    ]
