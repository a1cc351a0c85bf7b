"""Rules from HQ on a real broker: a signed bundle published retained runs on the box within seconds and
decides its sales; a forged one is refused and reported; a box restarted offline runs the last good one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agent import Agent
from edge.settings import EdgeSettings
from protocol.events import Event
from protocol.rules import Earning, RuleBundle
from protocol.signing import public_key_text, sign_bundle
from protocol.topics import site_topic
from tests.edge_support import PEPPER, edge_settings, fob, new_journal
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for

HUB = Ed25519PrivateKey.generate()
SALE = json.dumps({
    "type": "sale", "sale_id": "S-1", "till": "t1", "cashier": "c01", "currency": "EUR",
    "items": [{"kind": "ticket", "sku": "TKT-STD", "film": "Harbour of Glass", "hall": "h1",
               "showtime": "2026-11-25T20:00:00Z", "qty": 2, "price": 1250}],
}).encode()


def publish_bundle(broker: Mosquitto, version: int, basis_points: int, key: Ed25519PrivateKey = HUB) -> None:
    """What the hub does: sign the bundle and publish it retained on the site's rules topic."""
    bundle = RuleBundle(version=version, published_at=datetime(2026, 11, 25, tzinfo=UTC), currency="EUR",
                        earning=(Earning(rule_id="tickets-20", kind="ticket", basis_points=basis_points),))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hub-{version}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(site_topic("riverside", "rules"),
                              sign_bundle(bundle, key).model_dump_json(by_alias=True), qos=1, retain=True)
        info.wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def settings_for(tmp_path: Path, port: int) -> EdgeSettings:
    return edge_settings(tmp_path, hub_public_key=public_key_text(HUB), mqtt={"port": port})


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Agent]:
    settings = settings_for(tmp_path, mosquitto.port)
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    box.start()
    yield box
    box.stop()


def test_a_published_bundle_runs_within_seconds_and_decides_the_next_sale(agent: Agent, mosquitto: Mosquitto) -> None:
    assert agent.status(True).rules_version == 0  # the built-in default until the hub's bundle arrives
    publish_bundle(mosquitto, 3, 2000)
    wait_for(lambda: agent.status(True).rules_version == 3, timeout=10, what="bundle 3 running")
    agent.present_card("t1", fob("67003B51C6"), now=1.0)
    agent.handle_sale("t1", SALE, now=2.0)
    (event,) = [e for e in agent.journal.read_outbox(from_seq=1, limit=10) if isinstance(e, Event)]
    loyalty = event.payload["loyalty"]
    assert (loyalty["points_earned"], loyalty["rules_version"], loyalty["rule_id"]) == (500, 3, "tickets-20")


def test_a_forged_bundle_is_refused_and_reported_and_the_good_one_keeps_running(
    agent: Agent, mosquitto: Mosquitto
) -> None:
    publish_bundle(mosquitto, 3, 2000)
    wait_for(lambda: agent.status(True).rules_version == 3, timeout=10, what="bundle 3 running")
    publish_bundle(mosquitto, 4, 10_000, key=Ed25519PrivateKey.generate())
    status = wait_for(lambda: (s := agent.status(True)).rules_refusal and s, timeout=10, what="the refusal")
    assert status.rules_version == 3 and "signature" in str(status.rules_refusal)


def test_a_box_restarted_offline_runs_the_last_good_bundle(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = settings_for(tmp_path, mosquitto.port)
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    box.start()
    try:
        publish_bundle(mosquitto, 5, 1500)
        wait_for(lambda: box.status(True).rules_version == 5, timeout=10, what="bundle 5 running")
    finally:
        box.stop()
    mosquitto.stop()  # the site's internet is down when the box comes back
    offline = settings_for(tmp_path, mosquitto.port)
    again = Agent(offline, journal=new_journal(offline), pepper=PEPPER.encode())
    try:
        assert again.status(True).rules_version == 5 and again.rules.current.earning[0].basis_points == 1500
    finally:
        again.journal.close()
