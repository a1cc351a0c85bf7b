"""A small chain for the report and export tests: two sites (one in Paris), November 2024 and around it.

Figures worked out by hand (see `seed_chain`):
- November 2024, each site's local days: site-a sells 4 (7 tickets, 80.00, bar 13.50 in 3 items, 3 with a card),
  site-b 2 (6 tickets, 54.00, bar 4.00 in 2 items, 2 with a card). site-a's sale at 23:30 UTC on 30 November is
  1 December in Paris: not November's. October: site-b sold 1 ticket (10.00).
- Shows in November: site-a hall 1 (100 seats) one show with 6 tickets, hall 2 (seats unknown) one with 1;
  site-b hall 1 (50 seats) one with 6: occupancy 12 / 150.
- Cards: X at both sites in November, Y at site-b, Z in October; X also on 30 November (UTC) and 2 December.
- Complaints about food in November: site-a's answered after 6 hours and resolved after 24, site-b's never answered
  (overdue: due in 24 hours); one about noise at site-b in October.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.db.analytics_tables import halls
from cloud.db.schema import members, sites
from cloud.feedback.complaints import open_complaint, transition
from cloud.ingest.store import ingest_batch
from tests.unit.hub.factories import Chain, sale_payload

CARD_X, CARD_Y, CARD_Z = "0a" * 16, "0b" * 16, "0c" * 16
RECEIVED = datetime(2024, 12, 3, tzinfo=UTC)
NOVEMBER_END = datetime(2024, 12, 1, tzinfo=UTC)
"""The end of November in the chain's time zone (the built-in bundle's: UTC)."""


def sale(site_id: str, sale_id: str, *, film: str, hall: str, showtime: datetime, tickets: int, price: int,
         concession: int = 0, card: str | None = None, **extra: Any) -> dict[str, Any]:
    """A sale payload with a showtime on its ticket line, paid with `card` (10 points) or no card."""
    payload = sale_payload(site_id, film=film, hall=hall, tickets=tickets, ticket_price=price,
                           concession=concession, sale_id=sale_id)
    payload["items"][0]["showtime"] = showtime.isoformat().replace("+00:00", "Z")
    payload["card_token"] = card
    if card is None:
        payload["loyalty"] = {"status": "no_card"}
    payload.update(extra)
    return payload


def seed_chain(engine: sa.Engine) -> tuple[Chain, Chain]:
    """Ingest the two sites' sales, and set site-a's time zone, the halls and three enrolments."""
    a, b = Chain("site-a", "box-a"), Chain("site-b", "box-b")
    a.register(engine)
    b.register(engine)
    with engine.begin() as conn:
        # Before ingest: the rollups count each sale in its site's time zone as it is when stored.
        conn.execute(sa.update(sites).where(sites.c.site_id == "site-a").values(timezone="Europe/Paris"))
        conn.execute(sa.insert(halls), [
            {"site_id": "site-a", "hall": "1", "name": "Grand", "seats": 100, "updated_at": RECEIVED},
            {"site_id": "site-b", "hall": "1", "name": None, "seats": 50, "updated_at": RECEIVED}])
        for member_id, enrolled in (("m-1", datetime(2024, 11, 3, tzinfo=UTC)),
                                    ("m-2", datetime(2024, 11, 30, 22, tzinfo=UTC)),
                                    ("m-3", datetime(2024, 10, 9, tzinfo=UTC))):
            conn.execute(sa.insert(members).values(member_id=member_id, programme="default", status="active",
                                                   created_at=enrolled, updated_at=enrolled, enrolled_at=enrolled))
    evening = datetime(2024, 11, 10, 18, tzinfo=UTC)
    for n in range(3):
        a.add(sale("site-a", f"a-{n + 1}", film="Dune", hall="1", showtime=datetime(2024, 11, 10, 19, tzinfo=UTC),
                   tickets=2, price=1200, concession=450, card=CARD_X), occurred_at=evening + timedelta(minutes=n))
    a.add(sale("site-a", "a-4", film="Up", hall="2", showtime=datetime(2024, 11, 11, 19, tzinfo=UTC), tickets=1,
               price=800), occurred_at=datetime(2024, 11, 11, 18, tzinfo=UTC))
    a.add(sale("site-a", "a-5", film="Dune", hall="1", showtime=datetime(2024, 12, 1, 10, tzinfo=UTC), tickets=1,
               price=1200, card=CARD_X), occurred_at=datetime(2024, 11, 30, 23, 30, tzinfo=UTC))
    a.add(sale("site-a", "a-6", film="Dune", hall="1", showtime=datetime(2024, 12, 2, 14, tzinfo=UTC), tickets=1,
               price=1200, card=CARD_X), occurred_at=datetime(2024, 12, 2, 12, tzinfo=UTC))
    b.add(sale("site-b", "b-1", film="Dune", hall="1", showtime=datetime(2024, 10, 20, 19, tzinfo=UTC), tickets=1,
               price=1000, card=CARD_Z), occurred_at=datetime(2024, 10, 20, 18, tzinfo=UTC))
    for n, card in enumerate((CARD_X, CARD_Y)):
        b.add(sale("site-b", f"b-{n + 2}", film="Up", hall="1", showtime=datetime(2024, 11, 12, 20, tzinfo=UTC),
                   tickets=3, price=900, concession=200, card=card),
              occurred_at=datetime(2024, 11, 12, 19, n, tzinfo=UTC))
    with engine.begin() as conn:
        ingest_batch(conn, batch=a.batch(1, len(a.events)), site_id="site-a", received_at=RECEIVED)
        ingest_batch(conn, batch=b.batch(1, len(b.events)), site_id="site-b", received_at=RECEIVED)
        opened = datetime(2024, 11, 5, 10, tzinfo=UTC)
        handled = open_complaint(conn, site_id="site-a", category="food", source="hq", at=opened,
                                 response_hours=24, by="alice")
        transition(conn, complaint_id=handled, to_state="answered", by="alice", note=None, owner=None,
                   at=opened + timedelta(hours=6))
        transition(conn, complaint_id=handled, to_state="resolved", by="alice", note=None, owner=None,
                   at=opened + timedelta(hours=24))
        open_complaint(conn, site_id="site-b", category="food", source="hq", at=datetime(2024, 11, 20, tzinfo=UTC),
                       response_hours=24, by="alice")
        open_complaint(conn, site_id="site-b", category="noise", source="hq", at=datetime(2024, 10, 9, tzinfo=UTC),
                       response_hours=24, by="alice")
    return a, b


def rollup_sums(conn: sa.Connection, *, first: date, last: date, site_id: str | None = None) -> dict[str, int]:
    """The sales rollup summed by hand over local days first..last: what a report's totals must equal."""
    from cloud.db.analytics_tables import sales_hourly

    where = [sales_hourly.c.day >= first, sales_hourly.c.day <= last]
    if site_id is not None:
        where.append(sales_hourly.c.site_id == site_id)
    names = ("tickets", "ticket_revenue", "concession_revenue", "concession_items", "sales")
    row = conn.execute(sa.select(*[sa.func.coalesce(sa.func.sum(sales_hourly.c[name]), 0) for name in names])
                       .where(*where)).one()
    return dict(zip(names, (int(value) for value in row), strict=True))


def insert_sales(engine: sa.Engine, *, site_id: str, device_id: str, count: int, first_at: datetime,
                 step: timedelta, first_seq: int = 1) -> None:
    """Store `count` sales of one box straight into `events` (no chain, no rollups): volume for the export's
    paging and memory tests, which read `events` only. The box must be registered."""
    from cloud.db.schema import events

    rows = []
    for n in range(count):
        seq, at = first_seq + n, first_at + n * step
        payload = sale_payload(site_id, sale_id=f"v-{seq}", film="Dune" if seq % 2 else "Up")
        rows.append({"device_id": device_id, "seq": seq, "event_id": str(uuid.uuid4()), "type": "sale.recorded",
                     "site_id": site_id, "occurred_at": at, "received_at": at, "clock_ok": True,
                     "hash": f"{seq:064x}", "prev_hash": f"{seq - 1:064x}",
                     "body": {"schema": "marquee.event/1", "type": "sale.recorded", "device_id": device_id,
                              "seq": seq, "occurred_at": at.isoformat(), "clock_ok": True, "payload": payload}})
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(events), rows[start:start + 5000])
