"""GET /: the HQ dashboard page (server-rendered, refreshes itself every few seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from cloud.api.deps import ConnDep, CurrentUser, SettingsDep
from cloud.db.sites import list_sites
from cloud.db.stats import box_office_by
from cloud.web.dashboard import render_dashboard

router = APIRouter(tags=["dashboard"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard(conn: ConnDep, settings: SettingsDep, user: CurrentUser) -> HTMLResponse:
    """Sites (online, last seen, events held) and box office by site and by film."""
    now = datetime.now(UTC)
    page = render_dashboard(
        sites=list_sites(conn, now=now, offline_after=timedelta(seconds=settings.offline_after_seconds)),
        by_site=box_office_by(conn, group_by="site"),
        by_film=box_office_by(conn, group_by="film"),
        generated_at=now,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
