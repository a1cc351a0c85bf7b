"""GET /api/v1/live: today's sales per site, pushed as Server-Sent Events (the dashboard's live overview)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from cloud.analytics.box_office import SiteToday, today_by_site
from cloud.api.deps import SettingsDep, ViewerDep
from cloud.api.schemas import ErrorOut
from cloud.settings import HubSettings
from cloud.web.live import LiveFeed
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/live", tags=["dashboard"])

EVENT_STREAM_DOC = """A stream of Server-Sent Events, open until the hub ends it (after `live_stream_max_s`; the browser
reconnects): `retry: 1000` first, then an event `sales` whenever the figures of the viewer's sites change (the
first at once) with data {"at", "sites": [{site_id, name, day, currency, tickets, ticket_revenue,
concession_revenue, sales}], "changes": [{at, site_id, name, currency, tickets, ticket_revenue,
concession_revenue, sales}] (newest first)}, money in minor units; a comment line `: keep-alive` after
`live_heartbeat_s` without an event."""


def feed_of(request: Request, settings: HubSettings) -> LiveFeed:
    """This process's feed, made on first use (no await between the check and the store: one per app)."""
    feed: LiveFeed | None = getattr(request.app.state, "live", None)
    if feed is None:
        engine: sa.Engine = request.app.state.engine

        def read() -> list[SiteToday]:
            with engine.connect() as conn:
                return today_by_site(conn, sites=None, now=datetime.now(UTC))

        feed = LiveFeed(read, poll_s=settings.live_poll_s, max_streams=settings.live_max_streams)
        request.app.state.live = feed
    return feed


@router.get(
    "",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": EVENT_STREAM_DOC},
        503: {"model": ErrorOut, "description": "This hub process serves its maximum of live streams; retry later "
              "(or the database is unavailable)."},
    },
)
async def live(
    request: Request,
    viewer: ViewerDep,
    settings: SettingsDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64,
                                      description="Only this site (one of the viewer's).")] = None,
) -> StreamingResponse:
    """Today's tickets, revenue, concessions and sales per site (each site's local day), pushed as they change,
    and the latest changes; a site manager's stream carries their sites only."""
    sites = viewer.scope(site)
    feed = feed_of(request, settings)
    if feed.streams >= feed.max_streams:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "too many live streams on this hub process",
                            headers={"Retry-After": "5"})
    stream = feed.stream(sites, heartbeat_s=settings.live_heartbeat_s,
                         max_s=settings.live_stream_max_s)
    return StreamingResponse(stream, media_type="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
