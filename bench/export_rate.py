"""The transaction export's rate and memory: `--sales` sales (50,000 by default) over `--sites` sites, exported
as CSV and as JSON Lines the way `GET /api/v1/exports/transactions` and `marquee-hub export transactions` do
(keyset pages along ix_events_time, a connection per page), timed; peak memory traced while exporting.

A fresh database (an SQLite file in a temporary directory, or `--db-url` for PostgreSQL: give it an empty
schema) gets the sales bulk-inserted into `events` with valid payloads (the hash chains are not: the export
does not read them) over 30 days of November 2026. The peak is Python's (tracemalloc, in a second pass, as
tracing slows the run), so it counts what the export holds, not the interpreter or the driver's C buffers.

Run: .venv/bin/python bench/export_rate.py [--sales 50000] [--sites 20] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cloud.db.engine import make_engine, migrate
from cloud.db.schema import devices, events, sites
from cloud.reports.export import ExportQuery, export_pages, plan_scan
from cloud.reports.export_files import ExportFormat, export_chunks

START = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 5_000
FILMS = [f"Film {n:02d}" for n in range(20)]


def _payload(site_id: str, n: int, rng: random.Random) -> dict[str, Any]:
    tickets, price = rng.randint(1, 4), rng.choice((900, 1200, 1500))
    items: list[dict[str, Any]] = [{"kind": "ticket", "sku": "adult", "film": rng.choice(FILMS), "hall": "1",
                                    "quantity": tickets, "unit_price": price}]
    if rng.random() < 0.6:
        items.append({"kind": "concession", "sku": "popcorn", "quantity": 1, "unit_price": 550})
    card = f"{rng.getrandbits(128):032x}" if rng.random() < 0.4 else None
    return {"site_id": site_id, "till_id": f"till-{n % 4}", "cashier_id": f"c-{n % 9}", "sale_id": f"s-{n}",
            "currency": "EUR", "items": items, "total": sum(item["quantity"] * item["unit_price"] for item in items),
            "card_token": card,
            "loyalty": {"status": "earned" if card else "no_card", "points_earned": tickets * 10 if card else 0}}


def seed(engine: sa.Engine, *, sales: int, site_count: int) -> None:
    rng = random.Random(7)
    with engine.begin() as conn:
        for index in range(site_count):
            conn.execute(sa.insert(sites).values(site_id=f"site-{index:03d}", timezone="Europe/Paris"))
            conn.execute(sa.insert(devices).values(device_id=f"box-{index:03d}", site_id=f"site-{index:03d}"))
    step = timedelta(days=29, hours=22) / sales  # every sale inside November in Paris too
    seqs = [0] * site_count
    rows: list[dict[str, Any]] = []
    for n in range(sales):
        index = n % site_count
        seqs[index] += 1
        seq, at, site_id = seqs[index], START + n * step, f"site-{index:03d}"
        rows.append({"device_id": f"box-{index:03d}", "seq": seq, "event_id": str(uuid.uuid4()),
                     "type": "sale.recorded", "site_id": site_id, "occurred_at": at, "received_at": at,
                     "clock_ok": True, "hash": f"{n:064x}", "prev_hash": f"{n - 1:064x}",
                     "body": {"schema": "marquee.event/1", "type": "sale.recorded", "seq": seq,
                              "occurred_at": at.isoformat(), "payload": _payload(site_id, n, rng)}})
        if len(rows) == CHUNK:
            with engine.begin() as conn:
                conn.execute(sa.insert(events), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(events), rows)


def export(engine: sa.Engine, format: ExportFormat) -> tuple[int, int, float]:
    """Rows and bytes of the whole month exported, and the seconds it took."""
    query = ExportQuery(first_day=date(2026, 11, 1), last_day=date(2026, 11, 30), sites=None)
    with engine.connect() as conn:
        scan = plan_scan(conn, query=query)
    started = time.perf_counter()
    lines = size = 0
    for chunk in export_chunks(export_pages(engine, query=query, scan=scan), format):
        lines += chunk.count(b"\n")
        size += len(chunk)
    return lines - (1 if format == "csv" else 0), size, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sales", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--db-url", help="an empty PostgreSQL schema (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.db_url or f"sqlite:///{Path(folder) / 'hub.db'}"
        engine = make_engine(url)
        migrate(engine)
        started = time.perf_counter()
        seed(engine, sales=args.sales, site_count=args.sites)
        print(f"seeded {args.sales:,} sales over {args.sites} sites in {time.perf_counter() - started:.1f} s "
              f"({engine.dialect.name})")
        for format in ("csv", "jsonl"):
            rows, size, seconds = export(engine, format)  # type: ignore[arg-type]
            print(f"{format}: {rows:,} rows, {size / 1e6:.1f} MB in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")
        tracemalloc.start()
        rows, _, _ = export(engine, "csv")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"peak Python memory while exporting {rows:,} rows as CSV: {peak / 1e6:.1f} MB (traced pass)")
        engine.dispose()


if __name__ == "__main__":
    main()
