"""The box-office rollups kept on ingest, in the batch's transaction: what each grain holds and who reads it.

A dashboard request must not scan events, nor more rollup rows than it can sum in a few tens of milliseconds
(PostgreSQL sums about 3 million narrow rows a second here): 30 days of 200 sites is 6,000 site-days, so a
chain-wide grain may hold a few tens of rows per site and day. Hence one grain per question:

| table | key (days and hours: the site's local ones) | read by |
|---|---|---|
| sales_hourly | site, sale day, hour, film, hall, currency | a site's day by hour and film; reports |
| sales_daily | site, sale day, film, hall, currency | box office by film and hall; a film's trend |
| site_hourly | site, sale day, hour, currency | box office by hour |
| site_dayparts | site, sale day, day part, currency | by site, day, weekday, day part; today's live totals |
| show_sales | site, hall, showtime, film, currency (+ show day, hour) | occupancy per show |
| show_daily | site, show day, film, hall: shows, tickets | occupancy by film, hall, site, day |
| show_dayparts | site, show day, day part, hall: shows, tickets | occupancy by day part |
| sales_monthly | site, sale month, film, hall, currency | whole months of box office by film and hall; reports |
| site_hours_monthly | site, sale month, hour, currency | whole months of box office by hour |
| site_dayparts_monthly | site, sale month, day part, currency | whole months of box office by site and day part |
| show_monthly | site, show month, film, hall: shows, tickets | whole months of occupancy by film, hall, site; reports |
| show_dayparts_monthly | site, show month, day part, hall: shows, tickets | whole months of occupancy by day part |

The month grains are the daily ones summed by month (`cloud.analytics.grains`): a year by film reads 11 month
rows and 31 day rows per film and hall, not 365. Days and weekdays read days.

Seats are never copied into a rollup: occupancy joins `halls` when read (the occupancy rollups keep the hall),
so a corrected seat count applies to every past show at once. A show (a film in a hall at a start time) counts
once, when its first ticket is stored: a `show_sales` row always holds at least one ticket, so a row whose tickets
after the upsert equal the batch's own was new. A site sells in one currency; a show sold in two would count
twice.

Every table takes one bulk upsert per batch, keys sorted (concurrent writers lock rows in one order). Ingest
holds the site's row lock first (`cloud.db.ingest.lock_site`), so a site's writers queue; events archived by a
conflict resolution are taken back out (`remove_sales`), and rows left empty are deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloud.analytics.dayparts import day_part
from cloud.analytics.grains import fold_months
from cloud.analytics.localtime import sale_time, site_zone
from cloud.analytics.sale_deltas import Amounts, Deltas, ShowAmounts, ShowKey
from cloud.db.analytics_tables import (
    AMOUNTS,
    SHOW_AMOUNTS,
    sales_daily,
    sales_hourly,
    sales_monthly,
    show_daily,
    show_dayparts,
    show_dayparts_monthly,
    show_monthly,
    show_sales,
    site_dayparts,
    site_dayparts_monthly,
    site_hourly,
    site_hours_monthly,
)
from cloud.db.dialect import upsert_add
from protocol.events import Event, SaleRecorded

ROLLUPS_OPTION = "marquee_analytics_rollups"
"""An engine execution option: False turns the rollups off on ingest (`analytics_rollups` setting; the ingest
bench's comparison only: the dashboard then shows nothing new until `marquee-hub analytics rebuild`)."""

SALES_GRAINS: tuple[tuple[sa.Table, tuple[str, ...], str], ...] = (
    (sales_hourly, ("site_id", "day", "hour", "film", "hall", "currency"), "hourly"),
    (sales_daily, ("site_id", "day", "film", "hall", "currency"), "daily"),
    (site_hourly, ("site_id", "day", "hour", "currency"), "site_hours"),
    (site_dayparts, ("site_id", "day", "daypart", "currency"), "site_parts"),
)
"""Each sales rollup, its key columns, and the `Deltas` attribute holding its rows."""
SHOW_KEY = ("site_id", "hall", "showtime", "film", "currency")
SHOW_GRAINS: tuple[tuple[sa.Table, tuple[str, ...]], ...] = (
    (show_daily, ("site_id", "day", "film", "hall")),
    (show_dayparts, ("site_id", "day", "daypart", "hall")),
)
ShowCounts = dict[tuple[str, date, str, str], list[int]]
"""A show grain's rows: key -> [shows, tickets]."""
SALES_MONTHS: tuple[tuple[sa.Table, tuple[str, ...], str], ...] = (
    (sales_monthly, ("site_id", "month", "film", "hall", "currency"), "daily"),
    (site_hours_monthly, ("site_id", "month", "hour", "currency"), "site_hours"),
    (site_dayparts_monthly, ("site_id", "month", "daypart", "currency"), "site_parts"),
)
"""Each sales month grain, its key columns, and the `Deltas` attribute of the daily rows it sums."""
SHOW_MONTHS: tuple[tuple[sa.Table, tuple[str, ...]], ...] = (
    (show_monthly, ("site_id", "month", "film", "hall")),
    (show_dayparts_monthly, ("site_id", "month", "daypart", "hall")),
)
"""The month grains of `SHOW_GRAINS`, in their order."""


def add_sales(conn: sa.Connection, *, stored: Sequence[tuple[Event, object]], site_id: str,
              received_at: datetime) -> None:
    """Add the batch's sales to the rollups, in the site's local days and hours."""
    if conn.get_execution_options().get(ROLLUPS_OPTION, True) is False:
        return
    sales = [(event, payload) for event, payload in stored if isinstance(payload, SaleRecorded)]
    if not sales:
        return
    zone = site_zone(conn, site_id=site_id)
    deltas = Deltas()
    for event, sale in sales:
        deltas.add_sale(site_id=site_id, sale=sale, at=sale_time(event, received_at), zone=zone)
    write_deltas(conn, deltas)


def remove_sales(conn: sa.Connection, *, archived: Sequence[tuple[Event, object, datetime]], site_id: str) -> None:
    """Take sales back out of the rollups (events a conflict resolution archived; each with when the hub
    received it), counted as ingest counted them (the site's time zone as it is now)."""
    sales = [(event, payload, received) for event, payload, received in archived
             if isinstance(payload, SaleRecorded)]
    if not sales:
        return
    zone = site_zone(conn, site_id=site_id)
    deltas = Deltas()
    for event, sale, received_at in sales:
        deltas.add_sale(site_id=site_id, sale=sale, at=sale_time(event, received_at), zone=zone)
    write_deltas(conn, deltas, sign=-1)


def write_deltas(conn: sa.Connection, deltas: Deltas, *, sign: int = 1) -> None:
    """Add `deltas` (sign -1: take them out, then delete the rows left empty) onto every rollup."""
    sales: list[tuple[sa.Table, tuple[str, ...], Mapping[Any, Amounts]]] = [
        (table, key, getattr(deltas, attr)) for table, key, attr in SALES_GRAINS]
    sales += [(table, key, {month: _summed(days) for month, days in fold_months(getattr(deltas, attr)).items()})
              for table, key, attr in SALES_MONTHS]
    for table, key, rows in sales:
        upsert_add(conn, table, [_row(key, each, rows[each].values(sign)) for each in sorted(rows)], key=key,
                   add=AMOUNTS)
    counted = _write_show_sales(conn, deltas.shows, sign)
    grains = show_grains(deltas.shows, counted, sign)
    shows: list[tuple[sa.Table, tuple[str, ...], ShowCounts]] = [
        (table, key, grain) for (table, key), grain in zip(SHOW_GRAINS, grains, strict=True)]
    shows += [(table, key, {month: [sum(row[0] for row in days), sum(row[1] for row in days)]
                            for month, days in fold_months(grain).items()})
              for (table, key), grain in zip(SHOW_MONTHS, grains, strict=True)]
    for table, key, grain in shows:
        upsert_add(conn, table, [_row(key, each, {"shows": grain[each][0], "tickets": grain[each][1]})
                                 for each in sorted(grain)], key=key, add=SHOW_AMOUNTS)
        if sign < 0:
            _delete_empty(conn, table, key, grain, SHOW_AMOUNTS)
    if sign < 0:
        for table, key, rows in sales:
            _delete_empty(conn, table, key, rows, AMOUNTS)


def show_grains(shows: Mapping[ShowKey, ShowAmounts], counted: Mapping[ShowKey, int],
                sign: int = 1) -> tuple[ShowCounts, ShowCounts]:
    """The `show_daily` and `show_dayparts` rows of `shows`: their tickets (times `sign`), and the shows
    `counted` (+1 a show first seen, -1 a show whose last ticket was taken out; a rebuild counts each once)."""
    daily: ShowCounts = {}
    parts: ShowCounts = {}
    for key in sorted(shows):
        site_id, hall, _, film, _ = key
        show = shows[key]
        delta = (counted.get(key, 0), sign * show.amounts.tickets)
        for grain, grain_key in ((daily, (site_id, show.day, film, hall)),
                                 (parts, (site_id, show.day, day_part(show.hour), hall))):
            row = grain.setdefault(grain_key, [0, 0])
            row[0] += delta[0]
            row[1] += delta[1]
    return daily, parts


def _add_returning(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str],
                   add: Sequence[str], returning: Sequence[str]) -> list[sa.Row[Any]]:
    """Like `upsert_add`, with the `returning` columns of each row as it is after the statement."""
    insert = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    stmt = insert.on_conflict_do_update(index_elements=list(key),
                                        set_={column: table.c[column] + insert.excluded[column] for column in add})
    return list(conn.execute(stmt.returning(*[table.c[column] for column in returning]), list(rows)))


def _write_show_sales(conn: sa.Connection, shows: Mapping[ShowKey, ShowAmounts], sign: int) -> dict[ShowKey, int]:
    """Upsert the show rows; the shows this counted: +1 each new one, -1 each one emptied (then deleted)."""
    if not shows:
        return {}
    keys = sorted(shows)
    rows = [{**_row(SHOW_KEY, key, shows[key].amounts.values(sign)), "show_day": shows[key].day,
             "show_hour": shows[key].hour} for key in keys]
    written = _add_returning(conn, show_sales, rows, key=SHOW_KEY, add=AMOUNTS, returning=(*SHOW_KEY, "tickets"))
    after = {(row.site_id, row.hall, row.showtime, row.film, row.currency): int(row.tickets) for row in written}
    if sign > 0:
        # Every show row holds a ticket (the ticket lines make them): equal to the batch's own means new.
        return {key: 1 for key in keys if after.get(key) == shows[key].amounts.tickets}
    emptied = [key for key in keys if after.get(key) == 0]
    for start in range(0, len(emptied), 500):
        chunk = emptied[start:start + 500]
        conn.execute(sa.delete(show_sales).where(
            sa.tuple_(*[show_sales.c[column] for column in SHOW_KEY]).in_(chunk),
            show_sales.c.tickets == 0, show_sales.c.sales == 0))
    return {key: -1 for key in emptied}


def _delete_empty(conn: sa.Connection, table: sa.Table, key: tuple[str, ...], rows: Mapping[Any, object],
                  amounts: tuple[str, ...]) -> None:
    """Delete the rows of `rows`' keys whose amounts are all zero (taken back out entirely)."""
    keys = sorted(rows)
    for start in range(0, len(keys), 500):
        conn.execute(sa.delete(table).where(
            sa.tuple_(*[table.c[column] for column in key]).in_(keys[start:start + 500]),
            *[table.c[column] == 0 for column in amounts]))


def _summed(rows: Sequence[Amounts]) -> Amounts:
    total = Amounts()
    for row in rows:
        total.add(row)
    return total


def _row(columns: tuple[str, ...], key: tuple[Any, ...], values: Mapping[str, int]) -> dict[str, Any]:
    return {**dict(zip(columns, key, strict=True)), **values}
