"""The occupancy section, from the `show_daily` and `show_monthly` rollups (shows and tickets by each show's local
day and month) and the halls catalogue (seats are joined when read, so a corrected seat count applies to every
past show)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from cloud.analytics.grains import ranged
from cloud.db.analytics_tables import SHOW_AMOUNTS, halls, show_daily, show_monthly
from cloud.reports.model import Occupancy, OccupancyLine


@dataclass(slots=True)
class _Sums:
    shows: int = 0
    tickets: int = 0
    shows_with_seats: int = 0
    tickets_with_seats: int = 0
    seats_offered: int = 0

    def add(self, other: _Sums) -> None:
        self.shows += other.shows
        self.tickets += other.tickets
        self.shows_with_seats += other.shows_with_seats
        self.tickets_with_seats += other.tickets_with_seats
        self.seats_offered += other.seats_offered

    def line(self, *, site_id: str | None = None, hall: str | None = None, hall_name: str | None = None,
             seats: int | None = None) -> OccupancyLine:
        occupancy = self.tickets_with_seats / self.seats_offered if self.seats_offered else None
        return OccupancyLine(site_id=site_id, hall=hall, hall_name=hall_name, seats=seats, shows=self.shows,
                             tickets=self.tickets, shows_with_seats=self.shows_with_seats,
                             tickets_with_seats=self.tickets_with_seats, seats_offered=self.seats_offered,
                             occupancy=occupancy)


def _halls(conn: sa.Connection, *, first: date, last: date,
           sites: frozenset[str] | None) -> list[tuple[str, str, str | None, int | None, _Sums]]:
    source = ranged(first, last, daily=show_daily, monthly=show_monthly, columns=("site_id", "hall"),
                    sums=SHOW_AMOUNTS, sites=sites)
    query = (sa.select(source.c.site_id, source.c.hall, halls.c.name, halls.c.seats,
                       sa.func.sum(source.c.shows).label("shows"), sa.func.sum(source.c.tickets).label("tickets"))
             .select_from(source.outerjoin(halls, sa.and_(halls.c.site_id == source.c.site_id,
                                                            halls.c.hall == source.c.hall)))
             .where(source.c.hall != "")
             .group_by(source.c.site_id, source.c.hall, halls.c.name, halls.c.seats)
             .order_by(source.c.site_id, source.c.hall))
    lines = []
    for row in conn.execute(query):
        count, tickets = int(row.shows or 0), int(row.tickets or 0)
        seats = int(row.seats) if row.seats is not None else None
        known = seats is not None
        sums = _Sums(shows=count, tickets=tickets, shows_with_seats=count if known else 0,
                     tickets_with_seats=tickets if known else 0, seats_offered=count * seats if seats else 0)
        lines.append((row.site_id, row.hall, row.name, seats, sums))
    return lines


def occupancy_section(conn: sa.Connection, *, first: date, last: date, previous: tuple[date, date],
                      sites: frozenset[str] | None) -> Occupancy:
    """Shows, tickets and seats offered by hall and by site over local days first..last, with the totals of the
    `previous` days for comparison."""
    by_hall = _halls(conn, first=first, last=last, sites=sites)
    per_site: dict[str, _Sums] = {}
    totals = _Sums()
    for site_id, _, _, _, sums in by_hall:
        per_site.setdefault(site_id, _Sums()).add(sums)
        totals.add(sums)
    before = _Sums()
    for *_, sums in _halls(conn, first=previous[0], last=previous[1], sites=sites):
        before.add(sums)
    return Occupancy(
        totals=totals.line(), previous=before.line(),
        by_site=[per_site[site].line(site_id=site) for site in sorted(per_site)],
        by_hall=[sums.line(site_id=site, hall=hall, hall_name=name, seats=seats)
                 for site, hall, name, seats, sums in by_hall],
    )
