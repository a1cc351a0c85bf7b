"""Box-office queries over the sales rollups (never the events): sums by site, film, hall, day, hour, day part
or weekday over a range of local days, a film's days, and each site's today for the live overview."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import sqlalchemy as sa

from cloud.analytics.dayparts import DAY_PART_NAMES
from cloud.analytics.grains import ranged
from cloud.analytics.localtime import site_zones
from cloud.db.analytics_tables import (
    AMOUNTS,
    sales_daily,
    sales_monthly,
    site_dayparts,
    site_dayparts_monthly,
    site_hourly,
    site_hours_monthly,
)
from cloud.db.scoping import site_filter

BoxOfficeGroup = Literal["site", "film", "hall", "day", "hour", "daypart", "weekday"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class BoxOfficeRow:
    """One key's sums in one currency (money in minor units)."""

    key: str
    currency: str
    tickets: int
    ticket_revenue: int
    concession_revenue: int
    concession_items: int
    sales: int
    member_sales: int
    site_id: str | None = None
    """The site, when grouped by site or by hall (a hall is a site's)."""

    @property
    def attach_rate(self) -> float | None:
        """Concession items per ticket (None without tickets)."""
        return round(self.concession_items / self.tickets, 4) if self.tickets else None

    @property
    def spend_per_head(self) -> float | None:
        """Tickets and concessions per ticket, in minor units (None without tickets)."""
        return round((self.ticket_revenue + self.concession_revenue) / self.tickets, 2) if self.tickets else None


@dataclass(frozen=True, slots=True)
class SiteToday:
    """A site's sales so far on its local day (money in minor units of `currency`)."""

    site_id: str
    name: str | None
    day: date
    currency: str
    tickets: int
    ticket_revenue: int
    concession_revenue: int
    sales: int


def box_office(conn: sa.Connection, *, group: BoxOfficeGroup, sites: frozenset[str] | None, first: date,
               last: date) -> list[BoxOfficeRow]:
    """Sums over local days first..last (inclusive) of `sites` (None: every site), by `group` and currency.

    Site, day, weekday and day part read `site_dayparts`; film and hall `sales_daily`; hour `site_hourly`:
    a few rows per site and day each; every group but day and weekday reads a range's whole months from its month
    grain. Sorted by key (hours, day parts and weekdays in their day's order)."""
    table = {"film": sales_daily, "hall": sales_daily, "hour": site_hourly}.get(group, site_dayparts)
    names = {"site": ("site_id",), "hall": ("site_id", "hall"), "weekday": ("day",)}.get(group, (group,))
    monthly = {"film": sales_monthly, "hall": sales_monthly, "hour": site_hours_monthly,
               "site": site_dayparts_monthly, "daypart": site_dayparts_monthly}.get(group)
    source = ranged(first, last, daily=table, monthly=monthly, columns=(*names, "currency"), sums=AMOUNTS,
                    sites=sites)
    columns = [source.c[name] for name in names]
    stmt = (sa.select(*columns, source.c.currency, *[sa.func.sum(source.c[name]).label(name) for name in AMOUNTS])
            .group_by(*columns, source.c.currency))
    rows = [_box_row(group, row) for row in conn.execute(stmt)]
    if group == "weekday":
        rows = _merged(rows)
    order = _order(group)
    return sorted(rows, key=lambda row: (order(row.key), row.currency))


def film_days(conn: sa.Connection, *, film: str, sites: frozenset[str] | None, first: date,
              last: date) -> list[BoxOfficeRow]:
    """A film's sums by local day (of the sale) and currency, from `sales_daily`."""
    table = sales_daily
    stmt = (sa.select(table.c.day, table.c.currency, *[sa.func.sum(table.c[name]).label(name) for name in AMOUNTS])
            .where(table.c.film == film, table.c.day >= first, table.c.day <= last, site_filter(table.c.site_id, sites))
            .group_by(table.c.day, table.c.currency).order_by(table.c.day, table.c.currency))
    return [_box_row("day", row) for row in conn.execute(stmt)]


def today_by_site(conn: sa.Connection, *, sites: frozenset[str] | None, now: datetime) -> list[SiteToday]:
    """Each site's totals for its local day at `now` (None: every site), by site id.

    A site that sold nothing yet today has one row of zeros with currency ''."""
    zones = site_zones(conn, sites_in=sites)
    today = {site_id: now.astimezone(zone).date() for site_id, (_, zone) in zones.items()}
    if not today:
        return []
    table = site_dayparts
    stmt = (sa.select(table.c.site_id, table.c.day, table.c.currency,
                      *[sa.func.sum(table.c[name]).label(name)
                        for name in ("tickets", "ticket_revenue", "concession_revenue", "sales")])
            .where(table.c.day.in_(sorted(set(today.values()))), site_filter(table.c.site_id, sites))
            .group_by(table.c.site_id, table.c.day, table.c.currency))
    found: dict[str, list[SiteToday]] = {}
    for row in conn.execute(stmt):
        if today.get(row.site_id) != row.day:
            continue
        found.setdefault(row.site_id, []).append(SiteToday(
            row.site_id, zones[row.site_id][0], row.day, row.currency, int(row.tickets), int(row.ticket_revenue),
            int(row.concession_revenue), int(row.sales)))
    result: list[SiteToday] = []
    for site_id, (name, _) in zones.items():
        rows = sorted(found.get(site_id, []), key=lambda each: each.currency)
        result.extend(rows or [SiteToday(site_id, name, today[site_id], "", 0, 0, 0, 0)])
    return result


def _box_row(group: str, row: Any) -> BoxOfficeRow:
    amounts = [int(getattr(row, name) or 0) for name in AMOUNTS]
    site_id: str | None = None
    if group == "site":
        key = site_id = str(row.site_id)
    elif group == "hall":
        site_id = str(row.site_id)
        key = f"{site_id}/{row.hall}"
    elif group == "hour":
        key = f"{int(row.hour):02d}"
    elif group == "weekday":
        key = WEEKDAYS[row.day.weekday()]
    elif group == "day":
        key = row.day.isoformat()
    else:
        key = str(getattr(row, "film" if group == "film" else "daypart"))
    return _made(key, str(row.currency), amounts, site_id)


def _made(key: str, currency: str, amounts: list[int], site_id: str | None = None) -> BoxOfficeRow:
    """A row from the sums in `AMOUNTS` order."""
    tickets, ticket_revenue, concession_revenue, concession_items, sales, member_sales = amounts
    return BoxOfficeRow(key, currency, tickets, ticket_revenue, concession_revenue, concession_items, sales,
                        member_sales, site_id)


def _merged(rows: list[BoxOfficeRow]) -> list[BoxOfficeRow]:
    """Rows of equal key and currency summed (days into their weekday)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        total = sums.setdefault((row.key, row.currency), [0] * len(AMOUNTS))
        for index, name in enumerate(AMOUNTS):
            total[index] += getattr(row, name)
    return [_made(key, currency, amounts) for (key, currency), amounts in sums.items()]


def _order(group: str) -> Callable[[str], Any]:
    if group == "weekday":
        return WEEKDAYS.index
    if group == "daypart":
        return lambda key: (DAY_PART_NAMES.index(key) if key in DAY_PART_NAMES else len(DAY_PART_NAMES), key)
    return lambda key: key
