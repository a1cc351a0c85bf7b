"""The HQ dashboard's pages: server-rendered (Jinja2, autoescaped); their charts and lists come from the JSON
API through fetch() in /static/*.js, and the overview's figures are pushed by GET /api/v1/live."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from cloud.analytics.box_office import today_by_site
from cloud.api.deps import EngineDep, PageViewerDep, SettingsDep, Viewer
from cloud.db.sites import list_sites
from cloud.web.pages import date_range, local_today, render, site_choices
from protocol.ids import ID_PATTERN

PERIODIC_REPORTS = "/api/v1/reports/periodic"
TRANSACTION_EXPORT = "/api/v1/exports/transactions"

router = APIRouter(tags=["dashboard"], include_in_schema=False, default_response_class=HTMLResponse)

# Far enough back for any chain's history, near enough that a typo (year 20026) is a clear 422.
From = Annotated[date | None, Query(alias="from", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
To = Annotated[date | None, Query(alias="to", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
# The pages' forms send an empty site for "every site".
SiteParam = Annotated[str | None, Query(pattern=r"^$|" + ID_PATTERN, max_length=64)]


@router.get("/")
def overview(request: Request, viewer: PageViewerDep, engine: EngineDep) -> HTMLResponse:
    """Today's sales per site (each site's local day), then pushed live; the latest changes per site."""
    with engine.connect() as conn:
        today = today_by_site(conn, sites=viewer.sites, now=datetime.now(UTC))
    totals: dict[str, list[int]] = {}
    for row in (row for row in today if row.currency):  # zeros without a currency: no sale yet today
        each = totals.setdefault(row.currency, [0, 0, 0, 0])
        for i, amount in enumerate((row.tickets, row.ticket_revenue, row.concession_revenue, row.sales)):
            each[i] += amount
    return render(request, viewer, "overview", today=today, totals=sorted(totals.items()))


@router.get("/box-office")
def box_office(
    request: Request,
    viewer: PageViewerDep,
    engine: EngineDep,
    start: From = None,
    end: To = None,
    site: SiteParam = None,
) -> HTMLResponse:
    """Box office and occupancy charts by film, hall, day part, day and site, for a date range and a site."""
    return _ranged(request, viewer, engine, "box_office", start, end, site)


@router.get("/members")
def members(request: Request, viewer: PageViewerDep) -> HTMLResponse:
    """Member segments, the churn warning list and the top members."""
    return render(request, viewer, "members")


@router.get("/feedback")
def feedback(
    request: Request,
    viewer: PageViewerDep,
    engine: EngineDep,
    start: From = None,
    end: To = None,
    site: SiteParam = None,
) -> HTMLResponse:
    """NPS by site, film and hall, and the open complaints."""
    return _ranged(request, viewer, engine, "feedback", start, end, site)


def _ranged(request: Request, viewer: Viewer, engine: sa.Engine, page: str, start: date | None, end: date | None,
            site: str | None) -> HTMLResponse:
    """A page over a date range (default: the 30 days to the latest local day of the viewer's sites) and a site."""
    site = site or None
    viewer.scope(site)
    with engine.connect() as conn:
        choices = site_choices(conn, sites=viewer.sites)
        first, last = date_range(start, end, today=local_today(conn, sites=viewer.sites, now=datetime.now(UTC)))
    return render(request, viewer, page, start=first, end=last, site=site, site_choices=choices)


@router.get("/sites")
def sites(request: Request, viewer: PageViewerDep, engine: EngineDep, settings: SettingsDep) -> HTMLResponse:
    """Each site and box: online, last seen, backlog, versions, readers and tills, counters."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        views = list_sites(conn, now=now, offline_after=timedelta(seconds=settings.offline_after_seconds))
    return render(request, viewer, "sites", sites=[view for view in views if viewer.sees(view.site_id)], now=now)


@router.get("/alerts")
def alerts(request: Request, viewer: PageViewerDep) -> HTMLResponse:
    """The open alert cases (fraud, device, feedback), newest first."""
    return render(request, viewer, "alerts")


@router.get("/reports")
def reports(request: Request, viewer: PageViewerDep, engine: EngineDep) -> HTMLResponse:
    """Monthly, quarterly and annual reports to download (CSV, XLSX) and the transaction export."""
    with engine.connect() as conn:
        choices = site_choices(conn, sites=viewer.sites)
        today = local_today(conn, sites=viewer.sites, now=datetime.now(UTC))
    return render(request, viewer, "reports", site_choices=choices, site=None, month=f"{today:%Y-%m}",
                  quarter=_quarter(today), year=str(today.year), quick_periods=quick_periods(today),
                  periodic_base=PERIODIC_REPORTS, export_path=TRANSACTION_EXPORT, export_form="/reports/transactions",
                  start=today.replace(day=1),
                  end=today)


@router.get("/reports/transactions", response_class=RedirectResponse)
def transactions_form(request: Request, viewer: PageViewerDep) -> RedirectResponse:
    """The export form without script: on to the export API with the fields that were filled in (an empty field
    would be a filter that matches nothing)."""
    filled = [(name, value) for name, value in request.query_params.multi_items() if value][:20]
    return RedirectResponse(f"{TRANSACTION_EXPORT}?{urlencode(filled)}", status_code=status.HTTP_303_SEE_OTHER)


def _quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def quick_periods(today: date) -> list[tuple[str, str]]:
    """The periods HQ asks for most: this and the last month, quarter and year."""
    last_month = today.replace(day=1) - timedelta(days=1)
    last_quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1) - timedelta(days=1)
    return [("This month", f"{today:%Y-%m}"), ("Last month", f"{last_month:%Y-%m}"),
            ("This quarter", _quarter(today)), ("Last quarter", _quarter(last_quarter)),
            ("This year", str(today.year)), ("Last year", str(today.year - 1))]
