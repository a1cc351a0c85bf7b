"""What every dashboard page shares: the pages a role may open (the nav), the security headers, whether the
chart library is installed, the viewer's sites for the site picker, and the default date range."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse

import cloud
from cloud.analytics.localtime import site_zones
from cloud.api.deps import Viewer
from cloud.db.schema import sites as sites_table
from cloud.db.scoping import site_filter
from cloud.db.sites import DeviceView
from cloud.web.templating import STATIC_DIR, templates

log = logging.getLogger(__name__)

ALL_ROLES = ("admin", "analyst", "site_manager")
CHARTS_FILE = STATIC_DIR / "vendor" / "chart.umd.min.js"
"""Chart.js, copied here by `make install` from cloud/web/assets (npm, pinned by package-lock.json)."""
DEFAULT_DAYS = 30
"""The date range a page shows when none is asked for: the last 30 days, today included."""

NO_STORE = {"Cache-Control": "no-store"}
"""A page shows one viewer's figures: never kept by a browser or proxy (the security headers of every HTML
answer are cloud/web/security.py's)."""


@dataclass(frozen=True, slots=True)
class Page:
    """A page of the dashboard, and the roles that may open it."""

    name: str
    path: str
    title: str
    roles: tuple[str, ...] = ALL_ROLES


PAGES: tuple[Page, ...] = (
    Page("overview", "/", "Overview"),
    Page("box_office", "/box-office", "Box office"),
    Page("members", "/members", "Members"),
    Page("feedback", "/feedback", "Feedback"),
    Page("sites", "/sites", "Sites"),
    Page("alerts", "/alerts", "Alerts"),
    Page("reports", "/reports", "Reports"),
)
_BY_NAME = {page.name: page for page in PAGES}

_missing_logged = False


def charts_available() -> bool:
    """True when the chart library is installed; says so once in the log when it is not (pages still work)."""
    global _missing_logged
    if CHARTS_FILE.is_file():
        return True
    if not _missing_logged:
        _missing_logged = True
        log.warning("the dashboard's chart library is missing (%s): run `make install`; pages show no charts",
                    CHARTS_FILE)
    return False


def nav_for(viewer: Viewer) -> list[Page]:
    """The pages this viewer's role may open, in menu order."""
    return [page for page in PAGES if viewer.role in page.roles]


def allowed(viewer: Viewer, name: str) -> Page:
    """The page `name`, or 403 when this viewer's role may not open it."""
    page = _BY_NAME[name]
    if viewer.role not in page.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {page.title} page is not for the role {viewer.role}")
    return page


def site_choices(conn: sa.Connection, *, sites: frozenset[str] | None) -> list[tuple[str, str]]:
    """(site id, label) of the sites the viewer sees, for the site picker."""
    rows = conn.execute(
        sa.select(sites_table.c.site_id, sites_table.c.name)
        .where(site_filter(sites_table.c.site_id, sites))
        .order_by(sites_table.c.site_id)
    ).all()
    return [(row.site_id, f"{row.name} ({row.site_id})" if row.name else row.site_id) for row in rows]


def local_today(conn: sa.Connection, *, sites: frozenset[str] | None, now: datetime) -> date:
    """The latest local day at `now` among the viewer's sites (UTC's when none is registered): the analytics count
    local days, so a range ending on UTC's day would leave out today's sales of every site east of UTC."""
    zones = site_zones(conn, sites_in=sites)
    return max((now.astimezone(zone).date() for _, zone in zones.values()), default=now.astimezone(UTC).date())


def date_range(start: date | None, end: date | None, *, today: date) -> tuple[date, date]:
    """The range asked for, defaulting to the last DEFAULT_DAYS days; swapped when given backwards."""
    end = end or (today if start is None else min(today, start + timedelta(days=DEFAULT_DAYS - 1)))
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    return (start, end) if start <= end else (end, start)


def money(minor_units: int, currency: str) -> str:
    """Minor units as `1234.50 EUR` (two decimals, as for every currency the chains use today)."""
    sign = "-" if minor_units < 0 else ""
    whole, cents = divmod(abs(minor_units), 100)
    return f"{sign}{whole}.{cents:02d} {currency}".rstrip()


def when(at: datetime | None) -> str:
    """A moment as HQ reads it everywhere on the dashboard: UTC, to the second ("never" for None)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else "never"


def size(count: int | None) -> str:
    """Bytes in the largest unit that keeps a number of at least 1 ("–" for None)."""
    if count is None:
        return "–"
    amount = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"


def attention(device: DeviceView) -> list[str]:
    """What an operator should look at on a box: revoked, no key, chain conflicts, lost events, devices down."""
    notes = []
    if device.revoked:
        notes.append("revoked")
    elif not device.registered:
        notes.append("no key registered")
    if device.conflict:
        notes.append("chain conflict (marquee-hub devices conflicts)")
    if device.lost_events:
        reasons = sorted({gap.reason for gap in device.recent_gaps})
        notes.append(f"{device.lost_events} lost event(s) ({', '.join(reasons)})")
    if device.online:  # an offline box's last report says nothing about its readers now
        down = [p.name for p in device.peripherals if p.state == "down"]
        if down:
            notes.append(f"{', '.join(down)} down")
    if device.clock_ok is False:
        notes.append("clock not synced")
    return notes


def render(request: Request, viewer: Viewer, name: str, **context: Any) -> HTMLResponse:
    """The page `name` (template dashboard/`name`.html) for `viewer`."""
    page = allowed(viewer, name)
    response: HTMLResponse = templates.TemplateResponse(
        request,
        f"dashboard/{name}.html",
        {"page": page, "nav": nav_for(viewer), "viewer": viewer, "charts": charts_available(),
         "version": cloud.__version__, "money": money, "when": when, "size": size, "attention": attention,
         **context},
        headers=NO_STORE,
    )
    return response
