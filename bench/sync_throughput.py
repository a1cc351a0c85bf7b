"""How fast a backlog drains: journal -> uplink (signed batches) -> Mosquitto -> hub ingest (signature,
commit, rollups) -> ack -> journal.

This is the catch-up after a site was offline. Starts its own Mosquitto (set_tcp_nodelay, large queues).
Run: .venv/bin/python bench/sync_throughput.py [--events 20000] [--batch 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.db.devices import register_device
from cloud.db.engine import make_engine, migrate
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings
from edge.settings import EdgeSettings
from edge.store.bootstrap import open_journal
from edge.store.journal import Journal
from edge.store.keys import create_identity_key
from edge.sync.uplink import Uplink
from protocol.events import LineItem, LoyaltyOutcome, SaleRecorded
from protocol.ids import uuid7
from protocol.messages import DeviceStatus
from protocol.signing import public_key_text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                    "max_queued_messages 100000\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit("mosquitto did not start")


def fill_journal(journal: Journal, events: int) -> None:
    """`events` ticket sales, committed a thousand at a time."""
    t0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    for first in range(1, events + 1, 1000):
        with journal.transaction() as tx:
            for n in range(first, min(first + 1000, events + 1)):
                item = LineItem(kind="ticket", sku="TKT", film=f"Film {n % 7}", hall="h1", showtime=t0,
                                quantity=2, unit_price=1250)
                sale = SaleRecorded(site_id="bench", till_id="t1", cashier_id="c1", sale_id=f"S-{n}",
                                    currency="EUR", items=[item], total=2500,
                                    loyalty=LoyaltyOutcome(status="no_card"))
                tx.append(type="sale.recorded", payload=sale.model_dump(mode="json"),
                          event_id=uuid7(n, os.urandom(10)), occurred_at=t0 + timedelta(seconds=n),
                          clock_ok=True, sale_key=f"t1:S-{n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: an SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        try:
            settings = EdgeSettings.model_validate({
                "site_id": "bench", "device_id": "bench-box1", "data_dir": work / "edge",
                "pepper": "bench-pepper-0123456789", "mqtt": {"port": port},
                "sync": {"batch_max_events": args.batch, "ack_timeout_s": 30},
            })
            journal = open_journal(settings, create_key=True)
            fill_started = time.perf_counter()
            fill_journal(journal, args.events)
            fill = time.perf_counter() - fill_started
            url = args.database_url or f"sqlite:///{work / 'hub.db'}"
            engine = make_engine(url)
            migrate(engine)
            identity = create_identity_key(settings.identity_path)
            with engine.begin() as conn:
                register_device(conn, site_id="bench", device_id="bench-box1", public_key=public_key_text(identity),
                                at=datetime.now(UTC), replace_key=True)
            hub = IngestWorker(HubSettings(database_url=url, mqtt_port=port), engine)
            hub.start()
            deadline = time.monotonic() + 30
            while not hub.subscribed and time.monotonic() < deadline:
                time.sleep(0.01)

            def status(online: bool) -> DeviceStatus:
                return DeviceStatus(site_id="bench", device_id="bench-box1", online=online)

            uplink = Uplink(settings=settings, journal=journal, status=status, identity=identity)
            started = time.perf_counter()
            uplink.start()
            deadline = time.monotonic() + 600
            while journal.stats().backlog and time.monotonic() < deadline:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            uplink.stop()
            hub.stop()
            backlog = journal.stats().backlog
            journal.close()
            engine.dispose()
        finally:
            broker.terminate()
            broker.wait()
    db = "SQLite" if args.database_url is None else url.split(":", 1)[0]
    print(f"journal fill: {args.events} events in {fill:.2f}s = {args.events / fill:,.0f} events/s")
    print(f"backlog drain ({db} hub, batches of {args.batch}): {args.events - backlog} events acked in "
          f"{elapsed:.2f}s = {(args.events - backlog) / elapsed:,.0f} events/s; left unacked: {backlog}")


if __name__ == "__main__":
    main()
