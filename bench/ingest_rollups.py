"""What the analytics rollups cost on ingest: events per second stored with them on against off, in the same run,
on the same PostgreSQL schema, batch by batch alternately.

Each site gets a new box with its own Ed25519 key and a hash chain of sales (a ticket for a show, a bar item in
three sales of five, a member's card in `--member-share` of them, earning points); the batches are signed as the box
signs them, then each is verified (`verify_batch`, as the hub does before storing) and stored with
`cloud.ingest.store.ingest_batch` in its own transaction, through one of two engines: one as the hub has it, one with
the `analytics_rollups` setting off (`ROLLUPS_OPTION`, as `cloud.api.app` sets it). A box's batches alternate
between the two, so both see the same sites, tables and load. What the option turns off: the box-office and
occupancy rollups (`cloud.analytics.rollups.add_sales`); both keep the rest of ingest (events, the points ledger,
the fraud rules, members' activity, the tickets' feedback codes, the skeleton's box-office rollup).

A fresh schema by default (its `--members` members and cards set up in SQL, dropped at the end), or `--schema` a
schema `bench/hq_scale.py --keep` seeded: its rollups then hold a year of a chain (the upserts meet big tables);
the events stored are left in it.

Run: .venv/bin/python bench/ingest_rollups.py [--sites 20] [--batches 30] [--batch-size 100] [--schema hq_bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.analytics.rollups import ROLLUPS_OPTION
from cloud.db.devices import register_device
from cloud.db.engine import make_engine, migrate
from cloud.ingest.store import ingest_batch
from protocol.chain import seal
from protocol.events import GENESIS_HASH, Event
from protocol.ids import uuid7
from protocol.messages import EventBatch
from protocol.signing import public_key_text, sign_batch, verify_batch

ADMIN_URL = os.environ.get("MARQUEE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHOWS = (11, 14, 17, 20, 22)
MEMBERS_SQL = """
INSERT INTO members (member_id, programme, status, created_at, updated_at, enrolled_at, balance)
SELECT 'm' || lpad(to_hex(n), 16, '0'), 'default', 'active', :at, :at, :at, 0 FROM generate_series(0, :members - 1) n;
INSERT INTO member_cards (card_token, member_id, state, label, added_at, state_at)
SELECT md5('bench-card-' || n), 'm' || lpad(to_hex(n), 16, '0'), 'active', 'em4100:******' || right(md5('bench-card-'
       || n), 4), :at, :at FROM generate_series(0, :members - 1) n
"""


@dataclass
class Box:
    """A site's new box: its key and its chain of sales."""

    site_id: str
    device_id: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    events: list[Event] = field(default_factory=list)

    def sell(self, payload: dict[str, Any], at: datetime) -> None:
        seq = len(self.events) + 1
        self.events.append(seal(type="sale.recorded", device_id=self.device_id, seq=seq,
                                event_id=uuid7(int(at.timestamp() * 1000), os.urandom(10)), occurred_at=at,
                                clock_ok=True, prev_hash=self.events[-1].hash if self.events else GENESIS_HASH,
                                payload=payload))

    def batches(self, size: int) -> list[EventBatch]:
        return [sign_batch(EventBatch(site_id=self.site_id, device_id=self.device_id,
                                      events=self.events[start:start + size]), self.key)
                for start in range(0, len(self.events), size)]


def sale(site_id: str, n: int, at: datetime, rng: random.Random, members: int, member_share: float) -> dict[str, Any]:
    """A sale at `at`: tickets for one of today's shows of a hall, maybe a bar item, maybe a member's card."""
    hall = rng.randint(1, 8)
    start = min(SHOWS, key=lambda hour: (hour < at.hour, hour))
    showtime = at.replace(hour=start, minute=(hall * 10) % 60, second=0, microsecond=0)
    tickets = rng.choice((1, 1, 2, 2, 2, 3, 4))
    items: list[dict[str, Any]] = [{
        "kind": "ticket", "sku": "adult", "film": f"Film {(hall * 5 + start) % 12:03d}", "hall": str(hall),
        "showtime": showtime.isoformat(), "quantity": tickets, "unit_price": 1250}]
    if rng.random() < 0.6:
        items.append({"kind": "concession", "sku": "popcorn", "quantity": rng.randint(1, 3), "unit_price": 480})
    card = rng.random() < member_share
    loyalty: dict[str, Any] = {"status": "no_card"}
    if card:
        loyalty = {"status": "earned", "points_earned": 10 * tickets, "rules_version": 0,
                   "earned_by": [{"rule": "tickets", "points": 10 * tickets}]}
    # A card of a member the hub knows (`bench-card-<n>`), else one it has never seen (an anonymous account).
    token = (hashlib.md5(f"bench-card-{rng.randrange(members)}".encode()).hexdigest() if members
             else uuid.UUID(int=rng.getrandbits(128)).hex)
    return {"site_id": site_id, "till_id": f"till-{n % 4}", "cashier_id": f"c-{n % 9}", "sale_id": f"s-{n}",
            "currency": "EUR", "items": items, "total": sum(item["quantity"] * item["unit_price"] for item in items),
            "card_token": token if card else None, "loyalty": loyalty}


def prepare(engine: sa.Engine, args: argparse.Namespace, now: datetime) -> tuple[list[str], int]:
    """The sites the boxes sell at, and how many members have a `bench-card-<n>` card."""
    with engine.begin() as conn:
        if args.schema is None:
            conn.execute(sa.text(MEMBERS_SQL.split(";\n")[0]), {"at": now, "members": args.members})
            conn.execute(sa.text(MEMBERS_SQL.split(";\n")[1]), {"at": now, "members": args.members})
            return [f"site-{n:04d}" for n in range(args.sites)], args.members
        sites = list(conn.execute(sa.text("SELECT site_id FROM sites ORDER BY site_id LIMIT :n"),
                                  {"n": args.sites}).scalars())
        # What hq_scale.py seeded, as it noted on the schema: its members hold the cards `bench-card-0`, `-1`, ...
        seeded = conn.execute(sa.text("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                      "WHERE nspname = current_schema()")).scalar()
        return sites, int(json.loads(seeded)["members"]) if seeded else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--batches", type=int, default=30, help="batches per site")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--members", type=int, default=20_000, help="members in a fresh schema")
    parser.add_argument("--member-share", type=float, default=0.4)
    parser.add_argument("--schema", help="a schema bench/hq_scale.py --keep seeded (default: a fresh one)")
    args = parser.parse_args()
    schema = args.schema or f"ingest_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL)
    if args.schema is None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = f"{ADMIN_URL}?options=-csearch_path%3D{schema}"
    on = make_engine(url)
    off = on.execution_options(**{ROLLUPS_OPTION: False})
    try:
        migrate(on)
        now = datetime.now(UTC).replace(microsecond=0)
        sites, members = prepare(on, args, now)
        rng = random.Random(7)
        boxes = [Box(site_id, f"bench-ingest-{uuid.uuid4().hex[:8]}") for site_id in sites]
        per_box = args.batches * args.batch_size
        first = now - timedelta(hours=12)
        for box in boxes:
            with on.begin() as conn:
                register_device(conn, site_id=box.site_id, device_id=box.device_id,
                                public_key=public_key_text(box.key), at=now)
            for n in range(per_box):
                at = first + (now - first) * n / per_box
                box.sell(sale(box.site_id, n, at, rng, members, args.member_share), at)
        signed = [box.batches(args.batch_size) for box in boxes]
        print(f"{len(boxes)} boxes x {args.batches} signed batches of {args.batch_size} sales "
              f"({members:,} members' cards, {args.member_share:.0%} of sales with one) into {schema}; load average "
              f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
        spent = {"on": 0.0, "off": 0.0}
        stored = {"on": 0, "off": 0}
        verifying = 0.0
        for round_ in range(args.batches):
            for index, box in enumerate(boxes):
                batch = signed[index][round_]
                started = time.perf_counter()
                verify_batch(batch, box.key.public_key())  # as the hub does before storing; the same either way
                verifying += time.perf_counter() - started
                mode = "on" if (round_ + index) % 2 == 0 else "off"
                started = time.perf_counter()
                with (on if mode == "on" else off).begin() as conn:
                    ack = ingest_batch(conn, batch=batch, site_id=box.site_id, received_at=datetime.now(UTC))
                if round_ > 0:  # the first round warms up (first rows of each box, caches)
                    spent[mode] += time.perf_counter() - started
                    stored[mode] += len(batch.events)
                assert ack.acked_seq == batch.events[-1].seq, "a batch was not stored"
        rates = {mode: stored[mode] / spent[mode] for mode in spent}
        verify_each = verifying / (len(boxes) * per_box)
        for mode in ("off", "on"):
            whole = 1 / (1 / rates[mode] + verify_each)
            print(f"rollups {mode:>3}: {stored[mode]:,} events in {spent[mode]:.1f} s = {rates[mode]:,.0f} events/s "
                  f"stored ({whole:,.0f} events/s with the signature checks, {verify_each * 1e6:.0f} us/event)")
        print(f"with the rollups: {rates['on'] / rates['off']:.2f} of the rate without "
              f"({(spent['on'] / stored['on'] - spent['off'] / stored['off']) * 1e6:,.0f} us more per event); "
              f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    finally:
        on.dispose()
        if args.schema is None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    main()
