"""Occupancy queries: shows, tickets and the seats they offered, by show, film, hall, day part, site or the
show's local day, from the show rollups joined with the halls catalogue (never the events).

Seats are the capacity offered: each show counts its hall's seats as the catalogue has them now; a show whose
hall is not in the catalogue (or that names no hall) counts in `shows_without_capacity`, and occupancy divides
only the tickets of shows with a capacity by those seats. Tickets sold without a showtime are in no show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from cloud.analytics.dayparts import DAY_PART_NAMES
from cloud.analytics.grains import reads
from cloud.db.analytics_tables import (
    halls,
    show_daily,
    show_dayparts,
    show_dayparts_monthly,
    show_monthly,
    show_sales,
)
from cloud.db.scoping import site_filter

OccupancyGroup = Literal["show", "film", "hall", "daypart", "site", "day"]


@dataclass(frozen=True, slots=True)
class OccupancyRow:
    """Shows of one key: their tickets, the seats they offered (None: no show with a known capacity)."""

    key: str
    shows: int
    tickets: int
    seats: int | None
    seated_tickets: int
    """The tickets of the shows whose capacity is known (what occupancy divides)."""
    shows_without_capacity: int
    site_id: str | None = None
    hall: str | None = None
    film: str | None = None
    showtime: datetime | None = None

    @property
    def occupancy(self) -> float | None:
        """Tickets over seats offered, for the shows with a known capacity (None without one)."""
        return round(self.seated_tickets / self.seats, 4) if self.seats else None


def occupancy(conn: sa.Connection, *, group: OccupancyGroup, sites: frozenset[str] | None, first: date,
              last: date, limit: int = 500) -> list[OccupancyRow]:
    """Occupancy of the shows on local days first..last of `sites` (None: every site), by `group`.

    By show: the first `limit` shows in start order (each show's currencies summed). Otherwise sorted by key
    (day parts in their day's order); a hall is its site's (`site/hall`)."""
    if group == "show":
        return _shows(conn, sites=sites, first=first, last=last, limit=limit)
    table = show_dayparts if group == "daypart" else show_daily
    monthly = show_dayparts_monthly if group == "daypart" else None if group == "day" else show_monthly
    names = {"site": ("site_id",), "hall": ("site_id", "hall")}.get(group, (group,))
    # Each table read is joined with the catalogue and summed by the group on its own (a few hundred rows at
    # most), then the parts are summed: no grouping by hall and film over a year of rows first.
    parts = [sa.select(*[read.c[name] for name in names], *_measures(read.c.shows, read.c.tickets))
             .select_from(read.outerjoin(halls, sa.and_(halls.c.site_id == read.c.site_id,
                                                        halls.c.hall == read.c.hall)))
             .where(*where).group_by(*[read.c[name] for name in names])
             for read, where in reads(first, last, daily=table, sites=sites, monthly=monthly)]
    if len(parts) == 1:
        stmt = parts[0]
    else:
        union = sa.union_all(*parts).subquery()
        stmt = (sa.select(*[union.c[name] for name in names],
                          *[sa.func.sum(union.c[name]).label(name) for name in MEASURES])
                .group_by(*[union.c[name] for name in names]))
    rows = [_row(group, row) for row in conn.execute(stmt)]
    return sorted(rows, key=_order(group))


def film_show_days(conn: sa.Connection, *, film: str, sites: frozenset[str] | None, first: date,
                   last: date) -> list[OccupancyRow]:
    """A film's occupancy by the show's local day."""
    table = show_daily
    stmt = (sa.select(table.c.day, *_measures(table.c.shows, table.c.tickets))
            .select_from(table.outerjoin(halls, sa.and_(halls.c.site_id == table.c.site_id,
                                                        halls.c.hall == table.c.hall)))
            .where(table.c.film == film, table.c.day >= first, table.c.day <= last, site_filter(table.c.site_id, sites))
            .group_by(table.c.day).order_by(table.c.day))
    return [_row("day", row) for row in conn.execute(stmt)]


def _shows(conn: sa.Connection, *, sites: frozenset[str] | None, first: date, last: date,
           limit: int) -> list[OccupancyRow]:
    table = show_sales
    columns = [table.c.showtime, table.c.site_id, table.c.hall, table.c.film]
    tickets = sa.func.sum(table.c.tickets)
    # A local day lies within a day of its UTC date: the showtime bounds let the index on showtime feed the
    # groups in start order, so the first `limit` shows are found without sorting the whole range.
    earliest = datetime.combine(first - timedelta(days=1), time(0), tzinfo=UTC)
    latest = datetime.combine(last + timedelta(days=2), time(0), tzinfo=UTC)
    per_show = (sa.select(*columns, tickets.label("tickets"))
                .where(table.c.showtime >= earliest, table.c.showtime < latest, table.c.show_day >= first,
                       table.c.show_day <= last, site_filter(table.c.site_id, sites))
                .group_by(*columns).order_by(*columns).limit(limit).subquery())
    stmt = (sa.select(per_show, halls.c.seats)
            .select_from(per_show.outerjoin(halls, sa.and_(halls.c.site_id == per_show.c.site_id,
                                                           halls.c.hall == per_show.c.hall)))
            .order_by(per_show.c.showtime, per_show.c.site_id, per_show.c.hall, per_show.c.film))
    result = []
    for row in conn.execute(stmt):
        tickets_sold, seats = int(row.tickets), row.seats
        showtime: datetime = row.showtime
        result.append(OccupancyRow(
            key=f"{row.site_id}/{row.hall}/{showtime.strftime('%Y-%m-%dT%H:%MZ')}/{row.film}", shows=1,
            tickets=tickets_sold, seats=int(seats) if seats is not None else None,
            seated_tickets=tickets_sold if seats is not None else 0,
            shows_without_capacity=0 if seats is not None else 1, site_id=row.site_id, hall=row.hall,
            film=row.film, showtime=showtime))
    return result


MEASURES = ("shows", "tickets", "seats", "seated_tickets", "shows_without_capacity")


def _measures(shows: sa.ColumnElement[Any], tickets: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
    known = halls.c.seats.is_not(None)
    return [
        sa.func.sum(shows).label("shows"),
        sa.func.sum(tickets).label("tickets"),
        sa.func.sum(sa.case((known, shows * halls.c.seats))).label("seats"),
        sa.func.sum(sa.case((known, tickets), else_=0)).label("seated_tickets"),
        sa.func.sum(sa.case((known, 0), else_=shows)).label("shows_without_capacity"),
    ]


def _row(group: str, row: Any) -> OccupancyRow:
    site_id = hall = film = None
    if group == "site":
        key = site_id = str(row.site_id)
    elif group == "hall":
        site_id, hall = str(row.site_id), str(row.hall)
        key = f"{site_id}/{hall}"
    elif group == "day":
        key = row.day.isoformat()
    elif group == "film":
        key = film = str(row.film)
    else:
        key = str(row.daypart)
    return OccupancyRow(key=key, shows=int(row.shows or 0), tickets=int(row.tickets or 0),
                        seats=int(row.seats) if row.seats is not None else None,
                        seated_tickets=int(row.seated_tickets or 0),
                        shows_without_capacity=int(row.shows_without_capacity or 0), site_id=site_id, hall=hall,
                        film=film)


def _order(group: str) -> Callable[[OccupancyRow], Any]:
    if group == "daypart":
        return lambda row: (DAY_PART_NAMES.index(row.key) if row.key in DAY_PART_NAMES else 99, row.key)
    return lambda row: row.key
