"""Recomputing a site's rollups from its stored events: after its time zone was corrected, for events stored
before the rollups existed, or after ingest ran with the rollups off.

Safe while ingest runs. The site's events are first read without any lock, in pages per device up to each
device's chain head at the start. Then one transaction takes the site's row lock (the one ingest takes first, so
that site's batches wait meanwhile) and its devices' row locks (a conflict resolution holds one while it archives),
reads the events stored since, and replaces the site's rows of the chosen days. Had a device's chain changed
below the head read first (a resolution archived events), or the site's time zone changed, every event is read
again under the lock. Nothing is lost or counted twice; a site's batches wait for about as long as it takes to
read what arrived during the first pass and to write the site's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cloud.analytics.grains import refresh_months
from cloud.analytics.localtime import sale_time, site_zone
from cloud.analytics.rollups import SALES_GRAINS, SHOW_GRAINS, SHOW_KEY, show_grains
from cloud.analytics.sale_deltas import Deltas
from cloud.db import ingest as db
from cloud.db.analytics_tables import show_sales
from cloud.db.schema import devices, events, sites
from cloud.errors import RegistryError
from cloud.ingest.store import check_payload
from protocol.events import Event, SaleRecorded

PAGE = 2000
"""Events read per query."""
WRITE_CHUNK = 1000
"""Rollup rows inserted per statement."""

Progress = Callable[[str, int], None]
"""Told the site and how many sales it has read so far, after each page."""


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a site's rebuild did: sales read, rollup rows written, and whether it read everything under lock."""

    site_id: str
    sales: int
    rows: int
    reread: bool


def site_ids(conn: sa.Connection, *, site_id: str | None = None) -> list[str]:
    """The sites to rebuild: `site_id` (RegistryError when the hub does not know it), else every site."""
    stmt = sa.select(sites.c.site_id).order_by(sites.c.site_id)
    if site_id is not None:
        stmt = stmt.where(sites.c.site_id == site_id)
    found = list(conn.execute(stmt).scalars())
    if site_id is not None and not found:
        raise RegistryError(f"site {site_id} is not registered")
    return found


def rebuild_site(engine: sa.Engine, *, site_id: str, first: date | None = None, last: date | None = None,
                 progress: Progress | None = None, page: int = PAGE) -> Rebuilt:
    """Recompute the site's rollups of local days first..last (None: unbounded) from its stored events."""
    scan = _Scan(site_id, progress, page)
    with engine.connect() as conn:
        zone = site_zone(conn, site_id=site_id)
        heads = {row.device_id: (int(row.last_seq), row.last_hash) for row in conn.execute(
            sa.select(devices.c.device_id, devices.c.last_seq, devices.c.last_hash)
            .where(devices.c.site_id == site_id).order_by(devices.c.device_id))}
    deltas = Deltas()
    for device_id, (head, _) in heads.items():
        start = 0
        while start < head:  # a short read per page: no long transaction while ingest runs
            with engine.connect() as conn:
                start = scan.page(conn, deltas, zone, device_id=device_id, after=start, upto=head)
    with engine.begin() as conn:
        db.lock_site(conn, site_id=site_id, seen_at=None)
        now = {row.device_id: int(row.last_seq) for row in conn.execute(
            sa.select(devices.c.device_id, devices.c.last_seq).where(devices.c.site_id == site_id)
            .order_by(devices.c.device_id).with_for_update())}
        changed = site_zone(conn, site_id=site_id) != zone or any(
            device not in now or now[device] < head
            or (head and db.hash_at(conn, device_id=device, seq=head) != held)
            for device, (head, held) in heads.items())
        if changed:
            deltas, zone, heads = Deltas(), site_zone(conn, site_id=site_id), {}
            scan.sales = 0
        for device_id, head_now in now.items():
            start = heads.get(device_id, (0, None))[0]
            while start < head_now:
                start = scan.page(conn, deltas, zone, device_id=device_id, after=start, upto=head_now)
        rows = replace_days(conn, site_id=site_id, deltas=deltas, first=first, last=last)
    return Rebuilt(site_id, scan.sales, rows, changed)


def replace_days(conn: sa.Connection, *, site_id: str, deltas: Deltas, first: date | None,
                 last: date | None) -> int:
    """Replace the site's rollup rows of days first..last with `deltas` (rows of other days are ignored), then sum
    the months they touch from the daily rows again; the number of rows written."""
    def within(day: date) -> bool:
        return (first is None or day >= first) and (last is None or day <= last)

    written = 0
    for table, key, attr in SALES_GRAINS:
        grain = getattr(deltas, attr)
        conn.execute(sa.delete(table).where(table.c.site_id == site_id, *_range(table.c.day, first, last)))
        written += _insert(conn, table, ({**dict(zip(key, each, strict=True)), **grain[each].values()}
                                         for each in sorted(grain) if within(each[1])))
    shows = {key: show for key, show in deltas.shows.items() if within(show.day)}
    conn.execute(sa.delete(show_sales).where(show_sales.c.site_id == site_id,
                                             *_range(show_sales.c.show_day, first, last)))
    written += _insert(conn, show_sales, ({**dict(zip(SHOW_KEY, key, strict=True)), "show_day": shows[key].day,
                                           "show_hour": shows[key].hour, **shows[key].amounts.values()}
                                          for key in sorted(shows)))
    for (table, key), grain in zip(SHOW_GRAINS, show_grains(shows, dict.fromkeys(shows, 1)), strict=True):
        conn.execute(sa.delete(table).where(table.c.site_id == site_id, *_range(table.c.day, first, last)))
        written += _insert(conn, table, ({**dict(zip(key, each, strict=True)), "shows": grain[each][0],
                                          "tickets": grain[each][1]} for each in sorted(grain)))
    return written + refresh_months(conn, site_id=site_id, first=first, last=last)


class _Scan:
    """Reads a site's sales in pages, adding them to deltas."""

    def __init__(self, site_id: str, progress: Progress | None, page: int) -> None:
        self.site_id = site_id
        self.progress = progress
        self.size = page
        self.sales = 0

    def page(self, conn: sa.Connection, deltas: Deltas, zone: ZoneInfo, *, device_id: str, after: int,
             upto: int) -> int:
        """Add the device's sales with seq in (after, upto], at most a page of events; the next `after`."""
        rows = conn.execute(
            sa.select(events.c.seq, events.c.body, events.c.received_at)
            .where(events.c.device_id == device_id, events.c.seq > after, events.c.seq <= upto,
                   events.c.type == SaleRecorded.event_type, events.c.site_id == self.site_id)
            .order_by(events.c.seq).limit(self.size)).all()
        for row in rows:
            if "payload_refused" in row.body:  # kept without its payload: ingest counted nothing
                continue
            event = Event.model_validate(row.body)
            sale = check_payload(event, site_id=self.site_id)
            if isinstance(sale, SaleRecorded):
                deltas.add_sale(site_id=self.site_id, sale=sale, at=sale_time(event, row.received_at), zone=zone)
                self.sales += 1
        if self.progress is not None:
            self.progress(self.site_id, self.sales)
        return int(rows[-1].seq) if len(rows) == self.size else upto


def _range(column: sa.ColumnElement[Any], first: date | None, last: date | None) -> list[sa.ColumnElement[bool]]:
    return [*([column >= first] if first is not None else []), *([column <= last] if last is not None else [])]


def _insert(conn: sa.Connection, table: sa.Table, rows: Iterable[dict[str, Any]]) -> int:
    written, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) == WRITE_CHUNK:
            conn.execute(sa.insert(table), chunk)
            written, chunk = written + len(chunk), []
    if chunk:
        conn.execute(sa.insert(table), chunk)
        written += len(chunk)
    return written
