"""What only the hub can see, on real parts (the hub's API and ingest, boxes over a real Mosquitto): a box's
journal edited with the sqlite3 tool (one row altered; one event deleted) raises a tamper alert and a gap
alert for that box; the same card at two sites 300 km apart within an hour raises one alert."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import create_signing_key
from cloud.db.devices import register_device
from cloud.db.users import add_user
from cloud.settings import HubSettings
from edge.agent import Agent
from protocol.signing import public_key_text
from tests.edge_support import PEPPER, edge_settings, fob, new_journal
from tests.support.brokers import Mosquitto
from tests.support.redeeming import answer, request
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0

ADMIN = ("ada", "admin pass phrase")
CARD = fob("67003B51C6")
PLACES = {"paris": (48.8566, 2.3522), "east": (48.8566, 6.4452)}  # 300 km apart, due east


@pytest.fixture
def hub(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[dict[str, Any]]:
    key_file = tmp_path / "rules.key"
    hub_key = create_signing_key(key_file)
    settings = HubSettings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", mqtt_port=mosquitto.port,
                           rules_key_file=key_file, pepper=SecretStr(PEPPER), rules_clock_s=3600,
                           member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    app = create_app(settings)
    boxes: list[Agent] = []

    def box(site: str, *, start: bool = True) -> Agent:
        identity = Ed25519PrivateKey.generate()
        with app.state.engine.begin() as conn:
            register_device(conn, site_id=site, device_id=f"{site}-box1", public_key=public_key_text(identity),
                            at=T0, replace_key=True)
        config = edge_settings(tmp_path / site, site_id=site, device_id=f"{site}-box1",
                               hub_public_key=public_key_text(hub_key), mqtt={"port": mosquitto.port},
                               sync={"heartbeat_s": 1, "ack_timeout_s": 2})
        agent = Agent(config, journal=new_journal(config), pepper=PEPPER.encode(), identity=identity)
        boxes.append(agent)
        if start:
            agent.start()
        return agent

    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
        try:
            yield {"client": client, "box": box}
        finally:
            for agent in boxes:
                agent.stop()


def sell(box: Agent, sale_id: str, at: datetime) -> None:
    box.desk.wall = lambda: at.timestamp()
    tick = at.timestamp() - 1_700_000_000
    box.present_card("t1", CARD, now=tick)
    assert answer(box.handle_sale("t1", request("sale", sale_id), now=tick + 0.1))["status"] == "ok"


def cases(client: TestClient, **query: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/alerts", params=query, auth=ADMIN)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def sqlite3_tool(database: Path, sql: str) -> None:
    """The sqlite3 command-line tool, as someone with a shell on the box would use it."""
    subprocess.run(["sqlite3", str(database), sql], check=True, capture_output=True, timeout=30)


@pytest.mark.parametrize(("sql", "code"), [
    ("UPDATE journal SET body = randomblob(length(body)) WHERE seq = 3", "journal_altered"),
    ("DELETE FROM journal WHERE seq = 3", "chain_gap"),
], ids=["a row altered: tamper alert", "an event deleted: gap alert"])
def test_a_journal_edited_with_the_sqlite3_tool_raises_an_alert_for_that_box(hub: dict[str, Any], sql: str,
                                                                              code: str) -> None:
    client = hub["client"]
    box = hub["box"]("riverside", start=False)  # the sales wait in its journal, not sent yet
    now = datetime.now(UTC) - timedelta(hours=1)
    for n in range(5):
        sell(box, f"S-{n}", now + timedelta(minutes=n))
    sqlite3_tool(box.journal.path, sql)
    box.start()
    wait_for(lambda: cases(client, code=code), timeout=20, what=f"a {code} case at HQ")
    [case] = cases(client, code=code)
    assert (case["device_id"], case["site_id"], case["severity"], case["source"]) == (
        "riverside-box1", "riverside", "critical", "hub")
    assert case["figures"]["first_seq"] == 3
    # The rest of the journal still reached the hub, in order, after the lost event.
    wait_for(lambda: box.uplink.acked_seq == box.journal.last_seq, timeout=20, what="every event acked")
    sites = client.get("/api/v1/sites", auth=ADMIN).json()
    [device] = [device for site in sites for device in site["devices"] if device["device_id"] == "riverside-box1"]
    assert device["lost_events"] == 1


def test_the_same_card_at_two_sites_300_km_apart_within_an_hour_raises_one_alert(hub: dict[str, Any]) -> None:
    client = hub["client"]
    paris, east = hub["box"]("paris"), hub["box"]("east")
    for site, (latitude, longitude) in PLACES.items():
        response = client.put(f"/api/v1/sites/{site}", json={"name": site.title(), "latitude": latitude,
                                                              "longitude": longitude}, auth=ADMIN)
        assert response.status_code == 200, response.text
    start = datetime.now(UTC) - timedelta(hours=3)
    sell(paris, "P-1", start)
    sell(east, "E-1", start + timedelta(minutes=50))  # 300 km in 50 minutes: 360 km/h
    sell(east, "E-2", start + timedelta(minutes=55))
    sell(paris, "P-2", start + timedelta(hours=2, minutes=50))  # back in Paris after 2 hours: a drive
    wait_for(lambda: cases(client, code="impossible_travel"), timeout=20, what="the impossible travel case")
    wait_for(lambda: all(box.uplink.acked_seq == box.journal.last_seq for box in (paris, east)), timeout=20,
             what="every sale at the hub")
    [case] = cases(client, code="impossible_travel")
    assert case["site_id"] == "east" and 295 <= case["figures"]["km"] <= 305
    assert case["figures"]["kmh"] >= 300
