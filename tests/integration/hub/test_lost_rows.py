"""A journal row that no longer opens: the box sets it aside and goes on syncing; the hub shows the gap.

A real Mosquitto, the box's uplink and journal, the hub's ingest worker and database, and the hub's API.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.devices import register_device
from cloud.db.schema import devices, events
from cloud.db.users import add_user
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings
from edge.agent import Agent
from edge.store.bootstrap import open_identity
from edge.store.journal import Journal
from protocol.signing import public_key_text
from tests.edge_support import PEPPER, edge_settings, new_journal
from tests.integration.edge.test_uplink import append
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for

PASSWORD = "correct horse battery"


@pytest.fixture
def hub(mosquitto: Mosquitto, tmp_path: Path, engine: sa.Engine) -> Iterator[IngestWorker]:
    url = engine.url.render_as_string(hide_password=False)
    worker = IngestWorker(HubSettings(database_url=url, mqtt_port=mosquitto.port), engine)
    worker.start()
    wait_for(lambda: worker.subscribed, timeout=15, what="the hub subscribed")
    yield worker
    worker.stop()


def device_status(engine: sa.Engine) -> dict[str, object] | None:
    """The heartbeat the hub last stored for the box, as the box's agent built it."""
    with engine.connect() as conn:
        status: dict[str, object] | None = conn.execute(sa.select(devices.c.status)).scalar_one_or_none()
    return status


def corrupt(journal: Journal, seq: int) -> None:
    """A bit flipped on the SD card: the row's sealed body no longer authenticates."""
    conn = sqlite3.connect(journal.path)
    body = bytes(conn.execute("SELECT body FROM journal WHERE seq = ?", (seq,)).fetchone()[0])
    conn.execute("UPDATE journal SET body = ? WHERE seq = ?", (body[:20] + bytes([body[20] ^ 0x40]) + body[21:], seq))
    conn.commit()
    conn.close()


def test_a_corrupted_row_becomes_a_gap_with_its_reason_and_the_rows_after_it_sync(
    tmp_path: Path, mosquitto: Mosquitto, engine: sa.Engine, hub: IngestWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = edge_settings(tmp_path, mqtt={"port": mosquitto.port},
                             sync={"ack_timeout_s": 0.5, "heartbeat_s": 0.3})
    journal = new_journal(settings)
    identity = open_identity(settings, create=True)
    with engine.begin() as conn:
        register_device(conn, site_id="riverside", device_id="riverside-box1", public_key=public_key_text(identity),
                        at=datetime.now(UTC))
    append(journal, 5)
    corrupt(journal, 3)

    agent = Agent(settings, journal=journal, pepper=PEPPER.encode(), identity=identity)
    uplink = agent.uplink
    agent.start()
    try:
        wait_for(lambda: journal.stats().acked_seq == 5, timeout=20, what="everything acked, the lost row too")
        append(journal, 2)
        uplink.notify()
        wait_for(lambda: journal.stats().acked_seq == 7, timeout=20, what="later sales acked as usual")
        app = create_app(HubSettings(database_url=engine.url.render_as_string(hide_password=False)),
                         start_ingest=False)
        with TestClient(app) as client:
            with engine.begin() as conn:
                add_user(conn, username="ops", password_hash=hash_password(PASSWORD), role="analyst",
                         created_at=datetime.now(UTC))

            def reported() -> dict[str, object] | None:
                site = client.get("/api/v1/sites", auth=("ops", PASSWORD)).json()[0]
                device = site["devices"][0]
                quarantined = (device_status(engine) or {}).get("quarantined")
                return device if device["backlog"] == 0 and device["lost_events"] == 1 and quarantined == 1 else None

            device = wait_for(reported, timeout=10, what="the box's heartbeat with no backlog")
            page = client.get("/sites", auth=("ops", PASSWORD)).text
        assert 'data-device="riverside-box1"' in page and "1 lost event(s) (unreadable)" in page
        assert journal.stats().quarantined == 1 and uplink.counters["lost_sent"] >= 1
    finally:
        agent.stop()

    assert device["last_seq"] == 7 and device["chain_ok"] is True
    assert [(gap["seq"], gap["reason"]) for gap in device["recent_gaps"]] == [(3, "unreadable")]
    with engine.connect() as conn:
        held = conn.execute(sa.select(events.c.seq).order_by(events.c.seq)).scalars().all()
    assert held == [1, 2, 4, 5, 6, 7]
    box_errors = [r for r in caplog.records if r.name.startswith("edge") and r.levelno >= logging.ERROR]
    assert len(box_errors) == 1 and "#3" in box_errors[0].getMessage()  # once, not once per resend
