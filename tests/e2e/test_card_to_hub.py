"""A card read on a serial port reaches the HQ hub, end to end, on real parts."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.devices.pos import SaleAnswer, encode_frame
from tests.e2e.conftest import Site, present_card
from tests.support.brokers import Mosquitto
from tests.support.processes import Hub, edge_status
from tests.support.waiting import wait_for

CARD = "67003B51C6"


def sale(sale_id: str, *, film: str = "The Long Night", tickets: int = 2, price: int = 1250) -> bytes:
    return json.dumps({
        "type": "sale", "sale_id": sale_id, "till": "t1", "cashier": "c07", "currency": "EUR",
        "items": [
            {"kind": "ticket", "sku": "TKT-STD", "film": film, "hall": "h2", "showtime": "2026-11-23T19:30:00Z",
             "qty": tickets, "price": price},
            {"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": 650},
        ],
    }).encode()


def rows_by_key(hub: Hub, group_by: str) -> dict[str, dict[str, object]]:
    return {row["key"]: row for row in hub.get("/api/v1/stats/box-office", group_by=group_by)}


@pytest.mark.e2e
def test_a_card_and_a_sale_on_serial_lines_reach_the_hub_and_are_acked(
    hub: Hub, make_site: Callable[..., Site]
) -> None:
    site = make_site()
    wait_for(lambda: any(s["site_id"] == "riverside" and s["online"] for s in hub.get("/api/v1/sites")),
             timeout=30, what="the site online at the hub")
    present_card(site, CARD)
    # The card frame may still be on its way when the first sale goes: the till then sells without
    # loyalty, as at a real counter, and the next sale (a new sale id) picks the card up.
    attempts: list[int] = []

    def sale_with_card() -> SaleAnswer | None:
        attempts.append(len(attempts) + 1)
        answer = site.pos.sale(sale(f"S-{len(attempts)}"))
        return answer if answer.card else None

    answer = wait_for(sale_with_card, timeout=10, interval=0.1, what="an answer that used the card")
    assert answer.status == "ok" and answer.loyalty is not None
    assert (answer.loyalty.status, answer.loyalty.points, answer.loyalty.balance) == ("earned", 250, 250)
    assert answer.card == "******7558"
    n = len(attempts)

    films = wait_for(lambda: rows_by_key(hub, "film").get("The Long Night"), timeout=10, what="box office row")
    wait_for(lambda: rows_by_key(hub, "site")["riverside"]["sales"] == n, timeout=10, what="every sale")
    films = rows_by_key(hub, "film")["The Long Night"]
    assert (films["tickets"], films["revenue"], films["currency"]) == (2 * n, 2500 * n, "EUR")
    assert rows_by_key(hub, "site")["riverside"]["revenue"] == 3150 * n
    wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=10, what="the box's backlog empty")
    assert edge_status(site.config)["acked_seq"] == n
    assert CARD not in site.program.log() and CARD not in (hub.program.log() if hub.program else "")

    site.program.stop(signal.SIGKILL)  # a power cut: the broker's last will tells the hub
    wait_for(lambda: not next(s for s in hub.get("/api/v1/sites") if s["site_id"] == "riverside")["online"],
             timeout=30, what="the site offline after its box died")


@pytest.mark.e2e
def test_a_broker_restart_mid_stream_delivers_every_sale_exactly_once(
    hub: Hub, make_site: Callable[..., Site], mosquitto: Mosquitto
) -> None:
    site = make_site()
    total = 60
    for n in range(1, total + 1):
        if n == total // 2:
            mosquitto.restart()
        answer = site.pos.sale(sale(f"S-{n}", film=f"Film {n % 3}", tickets=1, price=1000))
        assert answer.status == "ok", answer  # the till is answered whether the broker is up or not

    def held() -> bool:
        rows = rows_by_key(hub, "site")
        return "riverside" in rows and rows["riverside"]["sales"] >= total

    wait_for(held, timeout=60, what="every sale at the hub")
    wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=30, what="the box's backlog empty")
    rows = rows_by_key(hub, "site")
    assert rows["riverside"]["sales"] == total  # exactly once: no sale counted twice
    assert rows["riverside"]["tickets"] == total
    sites = {s["site_id"]: s for s in hub.get("/api/v1/sites")}
    assert sites["riverside"]["events_held"] == total
    assert sum(row["tickets"] for row in rows_by_key(hub, "film").values()) == total

    # The box loses its record of the acks (as after a crash between the hub's commit and the box's):
    # it publishes everything again, and the hub must count none of it twice.
    site.program.stop()
    with sqlite3.connect(site.settings.journal_path) as conn:
        conn.execute("UPDATE state SET value = '0' WHERE key = 'acked_seq'")
    duplicates_before = hub.counters()["duplicates"]
    site.program.start()
    wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=30, what="everything acked again")
    assert hub.counters()["duplicates"] >= duplicates_before + total
    assert rows_by_key(hub, "site")["riverside"]["sales"] == total
    assert {s["site_id"]: s for s in hub.get("/api/v1/sites")}["riverside"]["events_held"] == total


def test_the_edge_refuses_a_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    import subprocess

    from tests.support.processes import BIN

    config = tmp_path / "edge.toml"
    config.write_text('site_id = "Bad Site"\ndevice_id = "b1"\ndata_dir = "/tmp/x"\npepper = "short"\n')
    result = subprocess.run([str(BIN / "marquee-edge"), "run", "--config", str(config)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0
    assert "site_id" in result.stderr and "pepper" in result.stderr


@pytest.mark.e2e
def test_a_box_killed_mid_sale_loses_nothing_and_counts_nothing_twice(
    hub: Hub, make_site: Callable[..., Site]
) -> None:
    site = make_site()
    total = 40
    for n in range(1, total + 1):
        body = sale(f"S-{n}", tickets=1, price=1000)
        if n % 10 == 0:
            # Power cut while the box writes this sale: killed the moment its journal's WAL starts to
            # grow, so the commit is cut part way or has just ended, before the till got its answer.
            wal = site.settings.journal_path.with_name("journal.db-wal")
            before = _written(wal)
            site.pos.pty.write(encode_frame(body))
            deadline = time.monotonic() + 5
            while _written(wal) == before and time.monotonic() < deadline:
                pass  # spin: a sleep here would let the commit finish
            site.program.stop(signal.SIGKILL)
            site.program.start()
        answer = site.pos.sale(body)  # the POS sends the sale (again) until the box answers
        assert answer.status == "ok" and answer.sale_id == f"S-{n}"
    wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=60, what="the box's backlog empty")
    rows = rows_by_key(hub, "site")
    assert rows["riverside"]["sales"] == total and rows["riverside"]["tickets"] == total
    device = next(s for s in hub.get("/api/v1/sites") if s["site_id"] == "riverside")["devices"][0]
    assert device["last_seq"] == total and device["chain_ok"]


def _written(path: Path) -> tuple[int, int]:
    """Size and modification time of a file, (0, 0) while it does not exist."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (info.st_size, info.st_mtime_ns)
