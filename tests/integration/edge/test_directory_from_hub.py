"""The member directory from HQ on a real broker: a box asks for it at start and at each reconnect, and a
signed delta sets the balance its next sale builds on; a member's other cards and this box's events since
the directory's watermark count too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agent import Agent
from edge.devices.pos import PosFrameParser, SaleAnswer, parse_answer
from edge.settings import EdgeSettings
from protocol.cards import card_token
from protocol.codec import decode
from protocol.directory import DirectoryPage, DirectoryRequest
from protocol.signing import public_key_text
from protocol.topics import device_topic, site_topic
from tests.edge_support import PEPPER, edge_settings, fob, new_journal
from tests.support.brokers import Mosquitto
from tests.support.directory_pages import delta, entry, wire
from tests.support.waiting import wait_for

HUB = Ed25519PrivateKey.generate()
CARD, OTHER_CARD = "67003B51C6", "0A00B1C2D3"
TOKEN, OTHER_TOKEN = card_token(PEPPER.encode(), fob(CARD)), card_token(PEPPER.encode(), fob(OTHER_CARD))
REQUESTS = device_topic("riverside", "riverside-box1", "directory")


def sale(sale_id: str, *, tickets: int = 2, price: int = 1250) -> bytes:
    """A ticket sale: the default rules earn 10 percent of ticket prices (250 points for 2 x 12.50)."""
    return json.dumps({"type": "sale", "sale_id": sale_id, "till": "t1", "cashier": "c07", "currency": "EUR",
                       "items": [{"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
                                  "showtime": "2026-11-23T19:30:00Z", "qty": tickets, "price": price}]}).encode()


def answer_of(frame: bytes) -> SaleAnswer:
    (item,) = PosFrameParser().feed(frame)
    return parse_answer(item.payload)  # type: ignore[union-attr]


class Hub:
    """What the hub does on the broker for the directory: hears the boxes' requests, publishes pages."""

    def __init__(self, broker: Mosquitto) -> None:
        self.requests: list[DirectoryRequest] = []
        # A kept session: what a box publishes while this client reconnects waits for it at the broker.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-hub", clean_session=False)
        self.client.on_message = lambda client, userdata, message: self.requests.append(
            decode(DirectoryRequest, message.payload))
        self.subscribed = False
        self.client.on_subscribe = lambda *args: setattr(self, "subscribed", True)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        result, mid = self.client.subscribe(REQUESTS, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS

    def publish(self, page: DirectoryPage) -> None:
        self.client.publish(site_topic("riverside", "members"), wire(page), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def hub(mosquitto: Mosquitto) -> Iterator[Hub]:
    hub = Hub(mosquitto)
    wait_for(lambda: hub.subscribed, timeout=10, what="the hub listening to the boxes' requests")
    yield hub
    hub.close()


def settings_for(tmp_path: Path, port: int) -> EdgeSettings:
    return edge_settings(tmp_path, hub_public_key=public_key_text(HUB), mqtt={"port": port})


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto, hub: Hub) -> Iterator[Agent]:
    settings = settings_for(tmp_path, mosquitto.port)
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    box.start()
    yield box
    box.stop()


def test_a_box_with_an_empty_directory_asks_for_it_at_start_and_at_each_reconnect(
    agent: Agent, hub: Hub, mosquitto: Mosquitto
) -> None:
    wait_for(lambda: hub.requests, timeout=10, what="the box's directory request")
    assert hub.requests == [DirectoryRequest(have=0)] and agent.status(True).directory_version == 0
    hub.publish(delta(0, 4, [entry("card-x")], key=HUB))
    wait_for(lambda: agent.directory.version == 4, timeout=10, what="delta 4 applied")
    mosquitto.restart()  # deltas published while the box is away are not kept for it
    wait_for(lambda: DirectoryRequest(have=4) in hub.requests, timeout=30, what="the box asking again")


def test_a_signed_delta_sets_the_balance_the_next_sale_builds_on(agent: Agent, hub: Hub) -> None:
    wait_for(lambda: hub.requests, timeout=10, what="the box subscribed and asking")
    hub.publish(delta(0, 1, [entry("card-x", balance=1), entry("card-y")], key=HUB))  # another member
    hub.publish(delta(1, 2, [entry("card-x", balance=5), entry("card-y")], key=HUB).model_copy(
        update={"entries": [entry("card-x")]}))  # altered after signing: refused
    page = delta(1, 2, key=HUB, entries=[
        entry("unused", balance=0).model_copy(update={"token": TOKEN, "member_id": "m-42", "balance": 5000,
                                                       "seen": {"riverside-box1": 0}})])
    hub.publish(page)
    status = wait_for(lambda: (s := agent.status(True)).directory_version == 2 and s, timeout=10,
                      what="delta 2 applied")
    assert status.counters["directory_pages_refused"] == 1 and status.counters["directory_pages_applied"] == 2
    agent.present_card("t1", fob(CARD), now=1.0)
    answer = answer_of(agent.handle_sale("t1", sale("S-1"), now=2.0))
    assert answer.loyalty is not None and (answer.loyalty.points, answer.loyalty.balance) == (250, 5250)


def test_a_members_other_cards_and_this_boxs_events_since_the_watermark_count(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path, hub_public_key=public_key_text(HUB))
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())  # offline: pages handed in
    try:
        box.present_card("t1", fob(CARD), now=1.0)
        assert answer_of(box.handle_sale("t1", sale("S-1"), now=2.0)).loyalty.balance == 250  # type: ignore[union-attr]
        box.present_card("t1", fob(OTHER_CARD), now=3.0)
        assert answer_of(box.handle_sale("t1", sale("S-2", tickets=1), now=4.0)).loyalty.balance == 125  # type: ignore[union-attr]
        # The hub has this box's seq 1 (the 250 points) in the member's balance, not yet seq 2.
        both = [entry("unused").model_copy(update={"token": token, "member_id": "m-42", "balance": 1250,
                                                   "seen": {"riverside-box1": 1, "riverside-box2": 77}})
                for token in (TOKEN, OTHER_TOKEN)]
        assert box.directory.offer(wire(delta(0, 1, both, key=HUB))) == "applied"
        box.present_card("t1", fob(CARD), now=5.0)
        answer = answer_of(box.handle_sale("t1", sale("S-3"), now=6.0))
        assert answer.loyalty is not None and (answer.loyalty.points, answer.loyalty.balance) == (250, 1250 + 125 + 250)
    finally:
        box.journal.close()
        box.directory.close()
