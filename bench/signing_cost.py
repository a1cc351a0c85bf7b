"""What authenticated events cost: Ed25519 signing on the box, verification at the hub, beside ingest.

Box: sign one batch (1 event, as for a live sale, or 200, as when catching up) and one status.
Hub: `verify_batch` (every event's hash re-checked, the signature verified) against the hash check alone
(what ingest did before signatures), then whole ingest of the same events through the MessageHandler
(decode, authenticate, store, rollups, commit) against the store step alone (no decode, no signature).
Run: .venv/bin/python bench/signing_cost.py [--events 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db.devices import register_device
from cloud.db.engine import make_engine, migrate
from cloud.ingest.handler import MessageHandler
from cloud.ingest.store import store_batch
from protocol.chain import check_hash, seal
from protocol.codec import encode
from protocol.events import GENESIS_HASH, Event, LineItem, LoyaltyOutcome, SaleRecorded
from protocol.ids import uuid7
from protocol.messages import DeviceStatus, EventBatch
from protocol.signing import public_key_text, sign_batch, sign_status, verify_batch
from protocol.topics import device_topic

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def sales(device_id: str, count: int) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for n in range(1, count + 1):
        item = LineItem(kind="ticket", sku="TKT", film=f"Film {n % 7}", hall="h1", showtime=T0, quantity=2,
                        unit_price=1250)
        sale = SaleRecorded(site_id="bench", till_id="t1", cashier_id="c1", sale_id=f"S-{n}", currency="EUR",
                            items=[item], total=2500, loyalty=LoyaltyOutcome(status="no_card"))
        event = seal(type="sale.recorded", device_id=device_id, seq=n, event_id=uuid7(n, os.urandom(10)),
                     occurred_at=T0 + timedelta(seconds=n), clock_ok=True, prev_hash=prev,
                     payload=sale.model_dump(mode="json"))
        events.append(event)
        prev = event.hash
    return events


def per_call(work: Callable[[], object], *, seconds: float = 1.0) -> float:
    """Mean seconds per call of `work`, repeated for about `seconds`."""
    work()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work()
        calls += 1
    return (time.perf_counter() - started) / calls


def micro(events: list[Event], key: Ed25519PrivateKey) -> None:
    public = key.public_key()
    status = DeviceStatus(site_id="bench", device_id="bench-box1", online=True, sent_at=T0, backlog=3,
                          counters={"sales": 1234}, peripherals={"t1-pos": "up"})
    print(f"box: sign a status: {per_call(lambda: sign_status(status, key)) * 1e6:,.0f} us")
    for size in (1, 200):
        batch = EventBatch(site_id="bench", device_id="bench-box1", events=events[:size])
        signed = sign_batch(batch, key)
        sign = per_call(lambda batch=batch: sign_batch(batch, key))  # type: ignore[misc]
        verify = per_call(lambda signed=signed: verify_batch(signed, public))  # type: ignore[misc]
        hashes = per_call(lambda batch=batch: [check_hash(e) for e in batch.events])  # type: ignore[misc]
        print(f"batch of {size:>3}: box signs in {sign * 1e6:,.0f} us ({sign / size * 1e6:,.1f} us/event); "
              f"hub verifies in {verify * 1e6:,.0f} us ({verify / size * 1e6:,.1f} us/event), of which the "
              f"signature {max(verify - hashes, 0) / size * 1e6:,.1f} us/event and the hash checks "
              f"{hashes / size * 1e6:,.1f} us/event (done before signatures too)")


def ingest(events: list[Event], key: Ed25519PrivateKey, url: str, batch_size: int) -> tuple[float, float]:
    """(events/s through the whole handler, events/s through the store step alone), fresh devices each."""
    engine = make_engine(url)
    migrate(engine)
    rates = []
    for mode, device in (("handler", f"bench-h{batch_size}"), ("store", f"bench-s{batch_size}")):
        with engine.begin() as conn:
            register_device(conn, site_id="bench", device_id=device, public_key=public_key_text(key), at=T0)
        chain = [e.model_copy(update={"device_id": device}) for e in events]
        # Re-seal under this device id (the id is hashed).
        prev, resealed = GENESIS_HASH, []
        for e in chain:
            sealed = seal(type=e.type, device_id=device, seq=e.seq, event_id=uuid7(e.seq, os.urandom(10)),
                          occurred_at=e.occurred_at, clock_ok=True, prev_hash=prev, payload=e.payload)
            resealed.append(sealed)
            prev = sealed.hash
        batches = [EventBatch(site_id="bench", device_id=device, events=resealed[i : i + batch_size])
                   for i in range(0, len(resealed), batch_size)]
        handler = MessageHandler(engine, lambda topic, payload: True)
        topic = device_topic("bench", device, "events")
        if mode == "handler":
            wires = [encode(sign_batch(batch, key)) for batch in batches]  # the box's work, not timed here
            started = time.perf_counter()
            for wire in wires:
                handler.handle(topic, wire)
        else:
            started = time.perf_counter()
            for batch in batches:
                with engine.begin() as conn:
                    store_batch(conn, batch=batch, site_id="bench", received_at=datetime.now(UTC))
        rates.append(len(resealed) / (time.perf_counter() - started))
    engine.dispose()
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--database-url", default=None, help="default: an SQLite file in a temporary folder")
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    events = sales("bench-box1", args.events)
    micro(events, key)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'hub.db'}"
        db = "SQLite" if args.database_url is None else url.split(":", 1)[0]
        for size in (200, 1):
            count = args.events if size > 1 else min(args.events, 1000)
            whole, store = ingest(events[:count], key, url, size)
            print(f"{db} ingest, batches of {size:>3}: {whole:,.0f} events/s through the handler (decode, "
                  f"verify, store, commit) against {store:,.0f} events/s for the store step alone")


if __name__ == "__main__":
    main()
