"""The transaction export: one row per sale, read from `events` in pages, never the whole range in memory.

Pages follow the `ix_events_time` index, (occurred_at, device_id, seq), by keyset: each page starts after the
last row of the one before, on a connection of its own, so a slow download holds no connection and no
snapshot between pages (a sale stored meanwhile inside the range is exported if its place is still ahead).
The days asked are each site's local days: the scan covers the instants any site's days span, and each row is
kept when its own site's local day is inside. How many rows to expect comes from the `sales_daily` rollup,
not from a count over `events`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.analytics.localtime import chain_zone_name, site_zones
from cloud.db.analytics_tables import sales_daily
from cloud.db.schema import events, member_cards
from cloud.db.scoping import site_filter
from cloud.db.types import UtcDateTime
from cloud.fraud.report import masked_card
from protocol.calendar import start_of_day, zone

PAGE_SIZE = 1000
COLUMNS = ("local_time", "site", "till", "cashier", "sale_id", "films", "tickets", "ticket_revenue", "concessions",
           "total", "currency", "card", "member_id", "points_earned", "points_redeemed", "fraud_action", "device_id",
           "seq")
MONEY_COLUMNS = frozenset({"ticket_revenue", "concessions", "total"})
"""In minor units of `currency`; the CSV writes them as amounts (12.50), JSON Lines as the API does (1250)."""

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """What to export: sales on local days first..last (inclusive) at `sites` (None: every site), optionally
    only one till, cashier, film or member's."""

    first_day: date
    last_day: date
    sites: frozenset[str] | None
    till: str | None = None
    cashier: str | None = None
    film: str | None = None
    member: str | None = None

    @property
    def narrowed(self) -> bool:
        """True when a filter beyond days and sites applies (the rollup's count is then an upper bound)."""
        return any(value is not None for value in (self.till, self.cashier, self.film, self.member))

    def audit_detail(self) -> dict[str, Any]:
        """The filters, for the HQ audit log (ids and titles only)."""
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(),
                "sites": sorted(self.sites) if self.sites is not None else None, "till": self.till,
                "cashier": self.cashier, "film": self.film, "member": self.member}


@dataclass(frozen=True, slots=True)
class Scan:
    """The instants to read and how to place each row in its site's local day."""

    start: datetime
    end: datetime
    zones: dict[str, str]
    default_zone: str
    cards: frozenset[str] | None
    """The member's cards, when the export is one member's."""

    def zone_of(self, site_id: str) -> str:
        return self.zones.get(site_id, self.default_zone)


def plan_scan(conn: sa.Connection, *, query: ExportQuery) -> Scan:
    """The UTC range covering `query`'s local days at every site it covers, and each site's time zone."""
    default = chain_zone_name(conn)
    zones = {site_id: tz.key for site_id, (_, tz) in site_zones(conn, sites_in=query.sites).items()}
    used = set(zones.values()) | {default}
    after = query.last_day + timedelta(days=1)
    start = min(start_of_day(query.first_day, tz) for tz in used)
    end = max(start_of_day(after, tz) for tz in used)
    cards = None
    if query.member is not None:
        cards = frozenset(conn.execute(sa.select(member_cards.c.card_token)
                                       .where(member_cards.c.member_id == query.member)).scalars())
    return Scan(start=start, end=end, zones=zones, default_zone=default, cards=cards)


def expected_rows(conn: sa.Connection, *, query: ExportQuery) -> int:
    """The sales the rollup holds for `query`'s days and sites: the rows the export writes, unless a till,
    cashier, film or member filter applies (then at most this many)."""
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(sales_daily.c.sales), 0))
                         .where(sales_daily.c.day >= query.first_day, sales_daily.c.day <= query.last_day,
                                site_filter(sales_daily.c.site_id, query.sites))).scalar_one()
    return int(total)


Key = tuple[datetime, str, int]


def read_page(conn: sa.Connection, *, query: ExportQuery, scan: Scan, after: Key | None,
              limit: int = PAGE_SIZE) -> tuple[list[Row], Key | None]:
    """The export's rows among the next `limit` sales after `after` (None: from the start), and the key to
    continue after (None: the range is done)."""
    where = [events.c.type == "sale.recorded", events.c.occurred_at >= scan.start, events.c.occurred_at < scan.end,
             site_filter(events.c.site_id, query.sites)]
    if after is not None:
        where.append(sa.tuple_(events.c.occurred_at, events.c.device_id, events.c.seq)
                     > sa.tuple_(sa.literal(after[0], UtcDateTime), sa.literal(after[1]), sa.literal(after[2])))
    found = conn.execute(sa.select(events.c.occurred_at, events.c.device_id, events.c.seq, events.c.site_id,
                                   events.c.body).where(*where)
                         .order_by(events.c.occurred_at, events.c.device_id, events.c.seq).limit(limit)).all()
    rows = [row for row in (_row(found_row, query, scan) for found_row in found) if row is not None]
    tokens = sorted({row["card"] for row in rows if row["card"]})
    owners: dict[str, str] = {}
    if tokens:
        owners = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)
                                   .where(member_cards.c.card_token.in_(tokens))).all())
    for row in rows:
        token = row["card"]
        row["member_id"] = owners.get(token) if token else None
        row["card"] = masked_card(token) if token else None
    last = found[-1] if len(found) == limit else None
    return rows, (last.occurred_at, last.device_id, last.seq) if last is not None else None


def export_pages(engine: sa.Engine, *, query: ExportQuery, scan: Scan,
                 page_size: int = PAGE_SIZE) -> Iterator[list[Row]]:
    """The export's rows page by page, each page read on a connection of its own."""
    after: Key | None = None
    while True:
        with engine.connect() as conn:
            rows, after = read_page(conn, query=query, scan=scan, after=after, limit=page_size)
        if rows:
            yield rows
        if after is None:
            return


def _row(found: Any, query: ExportQuery, scan: Scan) -> Row | None:
    body = found.body if isinstance(found.body, dict) else {}
    payload = body.get("payload")
    if not isinstance(payload, dict) or body.get("payload_refused"):
        return None  # a sale whose payload was refused at ingest: nothing to export but its place in the chain
    local = found.occurred_at.astimezone(zone(scan.zone_of(found.site_id)))
    if not query.first_day <= local.date() <= query.last_day:
        return None
    card = payload.get("card_token")
    if query.till is not None and payload.get("till_id") != query.till:
        return None
    if query.cashier is not None and payload.get("cashier_id") != query.cashier:
        return None
    if scan.cards is not None and card not in scan.cards:
        return None
    tickets = ticket_revenue = concessions = 0
    films: list[str] = []
    for item in payload.get("items") or ():
        amount = int(item.get("unit_price", 0)) * int(item.get("quantity", 1))
        if item.get("kind") == "ticket":
            tickets += int(item.get("quantity", 1))
            ticket_revenue += amount
            film = item.get("film")
            if film and film not in films:
                films.append(film)
        else:
            concessions += amount
    if query.film is not None and query.film.casefold() not in {film.casefold() for film in films}:
        return None
    loyalty = payload.get("loyalty") or {}
    fraud = payload.get("fraud") or {}
    return {"local_time": local.isoformat(timespec="seconds"), "site": found.site_id,
            "till": payload.get("till_id"), "cashier": payload.get("cashier_id"), "sale_id": payload.get("sale_id"),
            "films": ";".join(films), "tickets": tickets, "ticket_revenue": ticket_revenue,
            "concessions": concessions, "total": payload.get("total"), "currency": payload.get("currency"),
            "card": card, "member_id": None, "points_earned": loyalty.get("points_earned", 0),
            "points_redeemed": loyalty.get("points_redeemed", 0), "fraud_action": fraud.get("action"),
            "device_id": found.device_id, "seq": found.seq}
