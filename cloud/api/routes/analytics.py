"""/api/v1/analytics: box office and occupancy by film, hall, day part, hour, day and site, a film's days, and
each site's today (docs/analytics.md).

Read from the rollups kept on ingest, never the events. Days are the sites' local days (`from` and `to`
inclusive; default the 30 days up to today). A site manager sees their sites only: lists are limited to them,
and `site` naming another site is 403."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cloud.analytics.box_office import BoxOfficeGroup, BoxOfficeRow, box_office, film_days, today_by_site
from cloud.analytics.occupancy import OccupancyGroup, OccupancyRow, film_show_days, occupancy
from cloud.api.deps import ConnDep, ViewerDep
from cloud.api.params import IsoDate
from cloud.api.schemas import ErrorOut
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/analytics", tags=["analytics"])

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
MAX_DAYS = 3 * 366
"""The longest range one request may sum (about three years)."""
DEFAULT_DAYS = 30
FILM_PATTERN = r"^[^\x00-\x1f\x7f]+$"

DAY_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
"""Days of 2000 to 2100, as the OpenAPI document states them (the API checks the calendar and the range)."""


class ProblemOut(BaseModel):
    """One thing wrong with a request: where (`["query", "from"]`) and what, never the value sent."""

    loc: list[str | int]
    msg: str


class InvalidRequestOut(BaseModel):
    """422: the request's problems, by parameter."""

    detail: list[ProblemOut]


INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": InvalidRequestOut, "description": "A parameter is not valid (each problem by parameter), or "
                                                     "`from` is after `to`, or the range spans more than 1,098 days."}}
"""The 422 answer of the analytics and halls routes, as the hub's validation handler writes it."""
_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The site is not one of this site manager's."}, **INVALID}

Site = Annotated[str | None, Query(pattern=ID_PATTERN, description="One site; default every site the viewer sees")]
From = Annotated[IsoDate | None, Query(alias="from", json_schema_extra={"pattern": DAY_PATTERN},
                                       description="First local day included, YYYY-MM-DD (default: 29 days before "
                                                   "`to`)")]
To = Annotated[IsoDate | None, Query(alias="to", json_schema_extra={"pattern": DAY_PATTERN},
                                     description="Last local day included, YYYY-MM-DD; a range spans at most 1,098 "
                                                 "days (default: today, the latest calendar day anywhere)")]


class BoxOfficeSumOut(BaseModel):
    """One key's sums in one currency over the range: money in minor units; a sale counts under its first
    ticket line, its concessions too. `attach_rate`: concession items per ticket; `spend_per_head`: ticket and
    concession revenue per ticket (null without tickets). `site_id`: the site, grouped by site or hall."""

    key: str
    currency: str
    tickets: int
    ticket_revenue: int
    concession_revenue: int
    concession_items: int
    sales: int
    member_sales: int
    attach_rate: float | None
    spend_per_head: float | None
    site_id: str | None = None


class OccupancyOut(BaseModel):
    """Shows of one key (a show: a film in a hall at a start time) on the range's local days, their tickets,
    the seats they offered (each show its hall's seats; null when no show had a known capacity), occupancy
    (tickets of the shows with a known capacity over those seats; null without) and how many shows had no
    known capacity. By show: the show's site, hall, film and start (UTC)."""

    key: str
    shows: int
    tickets: int
    seats: int | None
    occupancy: float | None
    shows_without_capacity: int
    site_id: str | None = None
    hall: str | None = None
    film: str | None = None
    showtime: datetime | None = None


class SiteTodayOut(BaseModel):
    """A site's sales so far on its local `day`, in one currency ('' and zeros: nothing sold yet today)."""

    site_id: str
    name: str | None
    day: date
    currency: str
    tickets: int
    ticket_revenue: int
    concession_revenue: int
    sales: int


class FilmTrendOut(BaseModel):
    """A film's days: its box office by the sale's local day (and currency), its occupancy by the show's."""

    film: str
    box_office: list[BoxOfficeSumOut]
    occupancy: list[OccupancyOut]


def day_range(date_from: date | None, date_to: date | None, *, now: datetime | None = None) -> tuple[date, date]:
    """The inclusive range of local days asked for, defaults filled in; 422 (by parameter) when it is not sane."""
    problems = [{"loc": ["query", name], "msg": f"must be between {EARLIEST} and {LATEST}"}
                for name, value in (("from", date_from), ("to", date_to))
                if value is not None and not EARLIEST <= value <= LATEST]
    if problems:
        raise HTTPException(422, problems)  # the status name differs across Starlette versions
    # "Today" where it is latest (UTC+14), so that every site's local today is in the default range.
    today = ((now or datetime.now(UTC)) + timedelta(hours=14)).date()
    if date_to is None and date_from is not None:  # from a day on: up to today, within the longest range
        last = min(max(today, date_from), date_from + timedelta(days=MAX_DAYS - 1))
    else:
        last = date_to or today
    first = date_from or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        problems.append({"loc": ["query", "from"], "msg": "must not be after to"})
    elif (last - first).days >= MAX_DAYS:
        problems.append({"loc": ["query", "to"], "msg": f"a range spans at most {MAX_DAYS} days"})
    if problems:
        raise HTTPException(422, problems)
    return first, last


@router.get("/box-office", response_model=list[BoxOfficeSumOut], responses=_RESPONSES)
def get_box_office(
    conn: ConnDep,
    viewer: ViewerDep,
    group: Annotated[BoxOfficeGroup, Query(description="site, film, hall (a site's: key site/hall), day, hour "
                                                       "(00-23, of the sale), daypart (of the show's start, else "
                                                       "the sale's hour) or weekday")] = "site",
    site: Site = None,
    date_from: From = None,
    date_to: To = None,
) -> list[BoxOfficeSumOut]:
    """Tickets, revenue, concessions, sales and member sales by `group` and currency over local days."""
    first, last = day_range(date_from, date_to)
    rows = box_office(conn, group=group, sites=viewer.scope(site), first=first, last=last)
    return [_box_out(row) for row in rows]


@router.get("/occupancy", response_model=list[OccupancyOut], responses=_RESPONSES)
def get_occupancy(
    conn: ConnDep,
    viewer: ViewerDep,
    group: Annotated[OccupancyGroup, Query(description="show, film, hall (a site's: key site/hall), daypart "
                                                       "(of the show's start), site or day (the show's)")] = "film",
    site: Site = None,
    date_from: From = None,
    date_to: To = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="By show: the first this many, by start")] = 500,
) -> list[OccupancyOut]:
    """Shows, tickets, seats offered and occupancy by `group` over the shows' local days."""
    first, last = day_range(date_from, date_to)
    rows = occupancy(conn, group=group, sites=viewer.scope(site), first=first, last=last, limit=limit)
    return [_occupancy_out(row) for row in rows]


@router.get("/today", response_model=list[SiteTodayOut], responses=_RESPONSES)
def get_today(conn: ConnDep, viewer: ViewerDep, site: Site = None) -> list[SiteTodayOut]:
    """Each site's sales so far on its own local day (every site the viewer sees, or `site`), by site id."""
    rows = today_by_site(conn, sites=viewer.scope(site), now=datetime.now(UTC))
    return [SiteTodayOut(site_id=row.site_id, name=row.name, day=row.day, currency=row.currency,
                         tickets=row.tickets, ticket_revenue=row.ticket_revenue,
                         concession_revenue=row.concession_revenue, sales=row.sales) for row in rows]


@router.get("/film-trend", response_model=FilmTrendOut, responses=_RESPONSES)
def get_film_trend(
    conn: ConnDep,
    viewer: ViewerDep,
    film: Annotated[str, Query(min_length=1, max_length=120, pattern=FILM_PATTERN,
                               description="The film's title as tills send it")],
    site: Site = None,
    date_from: From = None,
    date_to: To = None,
) -> FilmTrendOut:
    """A film's tickets, revenue and sales per local day, and its shows' occupancy per day."""
    first, last = day_range(date_from, date_to)
    sites = viewer.scope(site)
    return FilmTrendOut(
        film=film,
        box_office=[_box_out(row) for row in film_days(conn, film=film, sites=sites, first=first, last=last)],
        occupancy=[_occupancy_out(row)
                   for row in film_show_days(conn, film=film, sites=sites, first=first, last=last)],
    )


def _box_out(row: BoxOfficeRow) -> BoxOfficeSumOut:
    return BoxOfficeSumOut(key=row.key, currency=row.currency, tickets=row.tickets,
                           ticket_revenue=row.ticket_revenue, concession_revenue=row.concession_revenue,
                           concession_items=row.concession_items, sales=row.sales, member_sales=row.member_sales,
                           attach_rate=row.attach_rate, spend_per_head=row.spend_per_head, site_id=row.site_id)


def _occupancy_out(row: OccupancyRow) -> OccupancyOut:
    return OccupancyOut(key=row.key, shows=row.shows, tickets=row.tickets, seats=row.seats,
                        occupancy=row.occupancy, shows_without_capacity=row.shows_without_capacity,
                        site_id=row.site_id, hall=row.hall, film=row.film, showtime=row.showtime)
