"""The hub sends the member directory: a member enrolled through the API reaches every site as a signed
delta within seconds; a registered box that asks gets a snapshot or the deltas it lacks; a stranger gets
nothing."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import SecretStr

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import create_signing_key
from cloud.db.users import add_user
from protocol.codec import decode, encode
from protocol.directory import DirectoryPage, DirectoryRequest
from protocol.signing import verify_directory_page
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0, Chain

ADMIN = ("ada", "admin pass phrase")
PEPPER = "chain-pepper-for-tests-0123456789"


class SiteListener:
    """Every page published on the sites' members topics, by site."""

    def __init__(self, port: int) -> None:
        self.pages: list[tuple[str, DirectoryPage]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="site-listener",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda client, *_: client.subscribe("marquee/v1/+/members", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(subscribed.is_set, timeout=10, what="the members subscription")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.pages.append((msg.topic.split("/")[2], decode(DirectoryPage, msg.payload)))

    def seen(self) -> list[tuple[str, DirectoryPage]]:
        with self._lock:
            return list(self.pages)

    def ask(self, site: str, device: str, have: int) -> None:
        self.client.publish(f"marquee/v1/{site}/{device}/directory", encode(DirectoryRequest(have=have)),
                            qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def hub(tmp_path: Path, mosquitto: Mosquitto, db_url: str) -> Iterator[tuple[TestClient, Ed25519PrivateKey]]:
    key = create_signing_key(tmp_path / "rules.key")
    settings = dict(database_url=db_url, mqtt_port=mosquitto.port,
                    rules_key_file=tmp_path / "rules.key", pepper=SecretStr(PEPPER),
                    member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    from cloud.settings import HubSettings

    app = create_app(HubSettings(**settings))  # type: ignore[arg-type]
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
        for site in ("riverside", "harbour"):
            Chain(site, f"{site}-box1").register(app.state.engine)
        wait_for(lambda: app.state.worker.subscribed, timeout=10, what="the hub's subscriptions")
        yield client, key.public_key()  # type: ignore[misc]


def enrol(client: TestClient, number: str) -> dict[str, Any]:
    response = client.post("/api/v1/members", json={"profile": {"name": "Ottoline Marsh", "birthday": "1991-07-04"},
                                                    "cards": [{"kind": "em4100", "number": number}]}, auth=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def test_an_enrolled_member_reaches_every_site_as_a_signed_delta(hub: tuple[TestClient, Any],
                                                                 mosquitto: Mosquitto) -> None:
    client, public_key = hub
    listener = SiteListener(mosquitto.port)
    try:
        member = enrol(client, "0003887558")
        pages = wait_for(lambda: [p for p in listener.seen() if p[1].entries] if len(listener.seen()) >= 2 else None,
                         timeout=10, what="the delta at both sites")
        assert sorted(site for site, _ in pages) == ["harbour", "riverside"]
        for _, page in pages:
            verify_directory_page(page, public_key)
            assert page.kind == "delta" and page.for_device is None
            [entry] = page.entries
            assert (entry.token, entry.member_id, entry.status, entry.balance, entry.birthday) == (
                member["cards"][0]["token"], member["member_id"], "active", 0, "07-04")
        # Erasure travels the same way: the boxes are told to forget the card.
        client.delete(f"/api/v1/members/{member['member_id']}", auth=ADMIN)
        removal = wait_for(lambda: [p for _, p in listener.seen() if p.removed], timeout=10, what="the removal")
        assert removal[0].removed == [member["cards"][0]["token"]] and removal[0].version_from == pages[0][1].version
    finally:
        listener.close()


def test_a_box_that_asks_gets_a_snapshot_or_the_deltas_it_lacks_and_a_stranger_nothing(
        hub: tuple[TestClient, Any], mosquitto: Mosquitto) -> None:
    client, public_key = hub
    for number in ("0003887558", "0000000042", "0000000043"):
        enrol(client, number)
    listener = SiteListener(mosquitto.port)
    try:
        listener.ask("riverside", "riverside-box1", 0)
        snapshot = wait_for(lambda: [p for _, p in listener.seen() if p.kind == "snapshot"], timeout=10,
                            what="a snapshot")
        [page] = snapshot
        verify_directory_page(page, public_key)
        assert (page.for_device, page.version, page.pages, len(page.entries)) == ("riverside-box1", 3, 1, 3)

        listener.ask("harbour", "harbour-box1", 1)
        deltas = wait_for(lambda: [p for _, p in listener.seen() if p.for_device == "harbour-box1"], timeout=10,
                          what="the missing deltas")
        assert [(p.kind, p.version_from, p.version, len(p.entries)) for p in deltas] == [("delta", 1, 3, 2)]

        before = len(listener.seen())
        listener.ask("riverside", "stranger-box", 0)  # not registered: no answer
        listener.ask("harbour", "riverside-box1", 0)  # registered for another site: no answer
        worker = client.app.state.worker  # type: ignore[attr-defined]
        wait_for(lambda: worker.directory.counters["requests_refused"] >= 2, timeout=10, what="two refusals")
        assert len(listener.seen()) == before
    finally:
        listener.close()


def test_an_entry_boxes_could_not_take_is_left_out_and_the_others_still_go(hub: tuple[TestClient, Any],
                                                                            mosquitto: Mosquitto) -> None:

    from cloud.db.schema import members
    from cloud.members.directory import publish_member

    client, public_key = hub
    odd = enrol(client, "0003887558")
    engine = client.app.state.engine  # type: ignore[attr-defined]
    listener = SiteListener(mosquitto.port)
    try:
        with engine.begin() as conn:  # a balance beyond what a directory entry carries
            conn.execute(members.update().where(members.c.member_id == odd["member_id"]).values(balance=10**13))
            publish_member(conn, odd["member_id"], T0)
        fine = enrol(client, "0000000042")
        wait_for(lambda: any(entry.member_id == fine["member_id"] for _, page in listener.seen()
                             for entry in page.entries), timeout=10, what="the next member's delta")
        # The odd entry never went out (at most its earlier, valid one, published before it changed).
        assert all(entry.balance == 0 for _, page in listener.seen() for entry in page.entries)
        worker = client.app.state.worker  # type: ignore[attr-defined]
        assert worker.directory.counters["entries_refused"] >= 1
    finally:
        listener.close()
