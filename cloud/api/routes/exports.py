"""/api/v1/exports/transactions: every sale of a range of local days, streamed as CSV or JSON Lines.

The file is written page by page as the client reads it (`cloud.reports.export`): millions of rows, a few
megabytes of memory. How many rows to expect is in a header before the first byte of the body, so a client can
show progress. One hub process streams at most `export_max_concurrent` exports at once (429 beyond). A site
manager exports their own sites only. Every export is audited with its filters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator
from starlette.types import Receive, Scope, Send

from cloud.access.audit import record_action
from cloud.api.deps import EngineDep, SettingsDep, ViewerDep
from cloud.api.params import IsoDate
from cloud.api.schemas import ErrorOut
from cloud.reports.export import ExportQuery, expected_rows, export_pages, plan_scan
from cloud.reports.export_files import MEDIA_TYPES, ExportFormat, export_chunks
from cloud.reports.slots import Slots
from protocol.directory import MEMBER_ID_PATTERN
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/exports", tags=["reports"])

RETRY_AFTER_S = 30
MAX_DAYS = 366 * 3
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
CASHIER_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"
FILM_PATTERN = r"^[^\x00-\x1f\x7f]{1,120}$"


def _sane(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"a day between {FIRST_DAY} and {LAST_DAY}")
    return day


Day = Annotated[IsoDate, AfterValidator(_sane)]
"""YYYY-MM-DD only: a unix time or a week date would be read as some day without a word."""

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}},
                      "application/x-ndjson": {"schema": {"type": "string"}}},
          "description": "The sales, one per row (CSV with a header line, or one JSON object per line), in the "
                         "order they happened; a download (Content-Disposition names the file).",
          "headers": {
              "X-Marquee-Rows-Estimate": {"description": "Rows to expect, from the sales rollup",
                                          "schema": {"type": "integer"}},
              "X-Marquee-Rows-Estimate-Kind": {
                  "description": "`exact`: the rows written are these days' and sites' sales; `upper-bound`: a "
                                 "till, cashier, film or member filter leaves at most that many",
                  "schema": {"type": "string", "enum": ["exact", "upper-bound"]}}}},
    403: {"model": ErrorOut, "description": "The site is not one of this site manager's."},
    429: {"model": ErrorOut, "description": "As many exports as this hub process streams at once are running "
                                            "(or too many failed logins)",
          "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}},
}


async def export_slots(request: Request, settings: SettingsDep) -> Slots:
    """The process's export slots (made on first use: an async dependency, so never by two threads at once)."""
    slots: Slots | None = getattr(request.app.state, "export_slots", None)
    if slots is None:
        slots = request.app.state.export_slots = Slots(settings.export_max_concurrent)
    return slots


class _SlotResponse(StreamingResponse):
    """A stream that gives its export slot back when it ends, however it ends (done, failed, client gone)."""

    def __init__(self, content: Iterator[bytes], *, slots: Slots, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.give_back()


@router.get("/transactions", response_class=StreamingResponse, response_model=None, responses=_RESPONSES)
def transactions(
    engine: EngineDep,
    viewer: ViewerDep,
    slots: Annotated[Slots, Depends(export_slots)],
    from_: Annotated[Day, Query(alias="from", description="First local day (YYYY-MM-DD)")],
    to: Annotated[Day, Query(description="Last local day, included")],
    site: Annotated[str | None, Query(pattern=ID_PATTERN, description="One site; default every site the "
                                                                      "viewer sees")] = None,
    till: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    cashier: Annotated[str | None, Query(pattern=CASHIER_PATTERN, max_length=64)] = None,
    film: Annotated[str | None, Query(pattern=FILM_PATTERN, max_length=120,
                                      description="A film's title (any case)")] = None,
    member: Annotated[str | None, Query(pattern=MEMBER_ID_PATTERN)] = None,
    format: Annotated[ExportFormat, Query()] = "csv",
) -> StreamingResponse:
    """Every sale of local days `from`..`to` (each site's own days), oldest first: local time, site, till,
    cashier, sale, films, tickets, revenue, bar, total, currency, masked card, member, points, fraud action."""
    if to < from_:
        raise RequestValidationError([{"loc": ("query", "to"), "msg": "must not be before from",
                                       "type": "value_error"}])
    if (to - from_).days >= MAX_DAYS:
        raise RequestValidationError([{"loc": ("query", "to"), "msg": f"at most {MAX_DAYS} days from from",
                                       "type": "value_error"}])
    query = ExportQuery(first_day=from_, last_day=to, sites=viewer.scope(site), till=till, cashier=cashier,
                        film=film, member=member)
    if not slots.take():
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "as many exports as this hub streams at once are "
                            "running: try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
    try:
        with engine.begin() as conn:
            scan = plan_scan(conn, query=query)
            expected = expected_rows(conn, query=query)
            record_action(conn, actor=viewer, action="export.transactions", target=f"{from_}..{to}", site_id=site,
                          detail={**query.audit_detail(), "format": format, "expected_rows": expected})
        chunks = export_chunks(export_pages(engine, query=query, scan=scan), format)
        name = f"marquee-transactions-{from_}-{to}{'-' + site if site else ''}.{format}"
        return _SlotResponse(chunks, slots=slots, media_type=MEDIA_TYPES[format], headers={
            "Content-Disposition": f'attachment; filename="{name}"', "X-Marquee-Rows-Estimate": str(expected),
            "X-Marquee-Rows-Estimate-Kind": "upper-bound" if query.narrowed else "exact"})
    except BaseException:
        slots.give_back()
        raise
