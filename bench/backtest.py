"""The backtest over a chain's stored sales: a full proposed bundle (3 tiers, 20 sponsored film campaigns, day
parts, expiry, burn, a monthly bonus, the birthday ticket, a pass) replayed beside a simple recorded one.

A fresh database (an SQLite file in a temporary directory, or `--db-url` for PostgreSQL: give it an empty
schema) gets `--sales` sales (1,000,000 by default) of `--members` members (one card each) over `--sites`
sites (one box each) spread over 90 days from 1 January 2025, bulk-inserted with valid payloads (the hash
chains are not, the replay does not read them) and their ledger rows (what the replay reads members' history
from). Then the last `--period-days` days (30) are replayed, timed: sales replayed per second, and the moves
of the members' earlier sales folded to start their accounts (the keyset pages use the hub's index on events
(occurred_at, device_id, seq)).

Run: .venv/bin/python bench/backtest.py [--sales 1000000] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.backtest.run import run_backtest
from cloud.bundles import publish_draft
from cloud.db.engine import make_engine, migrate
from cloud.db.schema import devices, events, member_cards, member_ledger, members, sites
from protocol.ids import uuid7
from protocol.rules import RuleBundle

START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 90
CHUNK = 10_000
FILMS = [(f"Film {n:02d}", ("drama", "action", "family", "horror", "sci-fi")[n % 5], f"distributor-{n % 6}")
         for n in range(20)]
FORMATS = (("2d", 1100), ("3d", 1400), ("imax", 1800))
RATE = 10
BASELINE = {"currency": "EUR", "timezone": "Europe/London",
            "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
            "redemption": {"enabled": True, "points_per_unit": RATE}}


def proposed_draft(start: datetime, end: datetime) -> dict[str, Any]:
    """A full bundle: what a chain would try."""
    return {
        "currency": "EUR", "timezone": "Europe/London",
        "redemption": {"enabled": True, "points_per_unit": RATE},
        "day_parts": [{"day_part_id": "matinee", "start": "10:00", "end": "17:00",
                       "days": ["mon", "tue", "wed", "thu", "fri"]},
                      {"day_part_id": "late", "start": "22:00", "end": "02:00"}],
        "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000, "day_parts": {"matinee": 50}},
                    {"rule_id": "premium", "kind": "ticket", "formats": ["imax"], "basis_points": 1500},
                    {"rule_id": "snacks", "kind": "concession", "basis_points": 500}],
        "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                             {"tier_id": "silver", "name": "Silver", "min_visits": 6, "min_spend": 20_000,
                              "bonus_percent": 10, "discount_bp": 500},
                             {"tier_id": "gold", "name": "Gold", "min_visits": 12, "min_spend": 50_000,
                              "bonus_percent": 25, "discount_bp": 1000, "free_upgrade": True}],
                  "window_months": 12, "review": "monthly", "demotion": "one_level"},
        "discount": {"min_bp": 0, "max_bp": 1500, "steps": [{"lifetime_spend": 30_000, "discount_bp": 300}]},
        "expiry": {"shelf_life_months": 1}, "burn": {"inactive_days": 60},
        "monthly_bonus": {"min_visits": 4, "points": 200}, "birthday": {"max_amount": 1500},
        "passes": [{"pass_id": "monthly", "name": "Monthly pass", "sku": "pass-monthly", "validity_days": 30,
                    "films_per_week": 2}],
        "caps": {"earning_sales_per_day": 5, "points_per_day": 5_000},
        "films": [{"title": title, "genres": [genre], "distributor": sponsor} for title, genre, sponsor in FILMS],
        "campaigns": [{"campaign_id": f"film-{n:02d}", "name": f"{title} bonus", "starts_at": start.isoformat(),
                       "ends_at": end.isoformat(), "match": {"films": [title]}, "bonus_percent": 50 + 10 * (n % 6),
                       "sponsor": sponsor} for n, (title, _, sponsor) in enumerate(FILMS)],
    }


def token(member: int) -> str:
    return hashlib.sha256(f"member-{member}".encode()).hexdigest()[:32]


def setup(engine: sa.Engine, rng: random.Random, *, members_count: int, sites_count: int) -> None:
    with engine.begin() as conn:
        publish_draft(conn, BASELINE, Ed25519PrivateKey.generate(), at=START - timedelta(days=1))
        conn.execute(sites.insert(), [{"site_id": f"site-{n:02d}"} for n in range(sites_count)])
        conn.execute(devices.insert(), [{"device_id": f"site-{n:02d}-box1", "site_id": f"site-{n:02d}",
                                         "public_key": "ed25519:" + "A" * 43, "registered_at": START}
                                        for n in range(sites_count)])
        for first in range(0, members_count, CHUNK):
            numbers = range(first, min(first + CHUNK, members_count))
            conn.execute(members.insert(), [
                {"member_id": f"m{n:07d}", "programme": "default", "status": "active", "created_at": START,
                 "updated_at": START, "balance": 0, "redeemed": 0,
                 "birthday_md": f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if n % 5 else None}
                for n in numbers])
            conn.execute(member_cards.insert(), [
                {"card_token": token(n), "member_id": f"m{n:07d}", "state": "active", "label": "bench",
                 "added_at": START, "state_at": START} for n in numbers])


def sales(rng: random.Random, count: int, *, members_count: int, sites_count: int) -> Iterator[dict[str, Any]]:
    """Sale events in time order, each with the ledger rows ingest would have written."""
    balance = [0] * members_count
    seqs = [0] * sites_count
    per_day = count // DAYS + 1
    made = 0
    for day in range(DAYS):
        stamps = sorted(rng.random() * 86_400 for _ in range(min(per_day, count - made)))
        for offset in stamps:
            at = START + timedelta(days=day, seconds=offset)
            member, site = rng.randrange(members_count), rng.randrange(sites_count)
            seqs[site] += 1
            title = FILMS[min(int(rng.expovariate(0.25)), len(FILMS) - 1)][0]
            fmt, price = rng.choice(FORMATS)
            quantity = rng.choice((1, 2, 2, 2, 3, 4))
            items: list[dict[str, Any]] = [{"kind": "ticket", "sku": f"adult-{fmt}", "film": title,
                                            "hall": str(rng.randint(1, 8)), "format": fmt,
                                            "showtime": (at + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                            "quantity": quantity, "unit_price": price}]
            if rng.random() < 0.6:
                items.append({"kind": "concession", "sku": "popcorn-l", "category": "popcorn", "quantity": 1,
                              "unit_price": 650})
            if rng.random() < 0.005:
                items.append({"kind": "concession", "sku": "pass-monthly", "quantity": 1, "unit_price": 1999})
            tickets = quantity * price
            redeemed = 1000 if balance[member] >= 1000 and rng.random() < 0.05 else 0
            earned = (tickets - redeemed // RATE) // 10
            balance[member] += earned - redeemed
            total = sum(item["quantity"] * item["unit_price"] for item in items)
            device, seq = f"site-{site:02d}-box1", seqs[site]
            payload = {"site_id": f"site-{site:02d}", "till_id": "till-1", "cashier_id": "c-1",
                       "sale_id": f"s-{seq}", "currency": "EUR", "items": items, "total": total,
                       "card_token": token(member), "loyalty": {
                           "status": "earned", "points_earned": earned, "points_redeemed": redeemed,
                           "amount_redeemed": redeemed // RATE, "hold_id": f"h{seq:016x}" if redeemed else None,
                           "balance": balance[member], "rule_id": "tickets", "rules_version": 1,
                           "earned_by": [{"rule": "tickets", "points": earned}],
                           "spend": total - redeemed // RATE, "visit": True}}
            yield {"device_id": device, "seq": seq, "at": at, "site_id": f"site-{site:02d}", "member": member,
                   "payload": payload, "earned": earned, "redeemed": redeemed}
            made += 1


def insert(engine: sa.Engine, rng: random.Random, count: int, *, members_count: int, sites_count: int) -> None:
    fake_hash = "0" * 64
    event_rows: list[dict[str, Any]] = []
    ledger_rows: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(events.insert(), event_rows)
            conn.execute(member_ledger.insert(), ledger_rows)
        event_rows.clear()
        ledger_rows.clear()

    for sale in sales(rng, count, members_count=members_count, sites_count=sites_count):
        at, payload = sale["at"], sale["payload"]
        event_id = str(uuid7(int(at.timestamp() * 1000), rng.randbytes(10)))
        body = {"schema": "marquee.event/1", "type": "sale.recorded", "device_id": sale["device_id"],
                "seq": sale["seq"], "event_id": event_id, "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "clock_ok": True, "prev_hash": fake_hash, "hash": fake_hash, "payload": payload}
        event_rows.append({"device_id": sale["device_id"], "seq": sale["seq"], "event_id": event_id,
                           "type": "sale.recorded", "site_id": sale["site_id"], "occurred_at": at, "received_at": at,
                           "clock_ok": True, "hash": fake_hash, "prev_hash": fake_hash, "body": body})
        common = {"member_id": f"m{sale['member']:07d}", "card_token": payload["card_token"], "occurred_at": at,
                  "recorded_at": at, "site_id": sale["site_id"], "device_id": sale["device_id"], "seq": sale["seq"],
                  "sale_id": payload["sale_id"], "rules_version": 1}
        # What ingest keeps on an earn row (cloud.members.accounts.move_detail): the backtest folds histories from it.
        detail = {"spend": payload["loyalty"]["spend"], "visit": True, "earning_sale": sale["earned"] > 0,
                  "pass_uses": [], "passes_bought": [], "birthday_year": None}
        ledger_rows.append({**common, "kind": "earn", "points": sale["earned"], "detail": detail})
        if sale["redeemed"]:
            ledger_rows.append({**common, "kind": "redeem", "points": -sale["redeemed"], "detail": None})
        if len(event_rows) >= CHUNK:
            flush()
    if event_rows:
        flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--period-days", type=int, default=30)
    parser.add_argument("--db-url", default=None, help="an empty PostgreSQL schema (default: SQLite in a temp dir)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.db_url or f"sqlite:///{Path(tmp) / 'hub.db'}", pool_size=5, max_overflow=5)
        migrate(engine)
        setup(engine, rng, members_count=args.members, sites_count=args.sites)
        started = time.perf_counter()
        insert(engine, rng, args.sales, members_count=args.members, sites_count=args.sites)
        inserted = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
        end = START + timedelta(days=DAYS)
        start = end - timedelta(days=args.period_days)
        proposed = RuleBundle.model_validate({**proposed_draft(start, end), "version": 2, "published_at": start})
        pages: list[float] = []
        started = time.perf_counter()
        result = run_backtest(engine, proposed, start=start, end=end,
                              progress=lambda done, total: pages.append(time.perf_counter()))
        elapsed = time.perf_counter() - started
        engine.dispose()
    chain = result["chain"]
    print(json.dumps({
        "database": engine.dialect.name, "sales_stored": args.sales,
        "members": args.members, "sites": args.sites, "insert_s": round(inserted, 1),
        "insert_sales_per_s": round(args.sales / inserted),
        "period_days": args.period_days, "sales_replayed": result["sales_read"],
        "history_moves_folded": result["history_moves"], "members_met": result["members"],
        "replay_s": round(elapsed, 1), "sales_per_s": round(result["sales_read"] / elapsed),
        "events_per_s_with_history": round((result["sales_read"] + result["history_moves"]) / elapsed),
        "slowest_page_s": round(max((b - a for a, b in zip(pages, pages[1:], strict=False)), default=0), 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "chain_difference": {name: chain["difference"][name] for name in (
            "points_issued", "points_redeemed", "redemptions_declined")},
        "tiers": chain["tiers"], "time_rules": chain["time_rules"]["difference"],
        "sponsors_proposed": chain["proposed"]["sponsors"],
    }, indent=2))


if __name__ == "__main__":
    main()
