"""Staff and the blocklist from HQ to a box, on real parts: the hub (API, ingest, directory publisher) and a box over
a real Mosquitto. A staff member HQ creates with a badge and their own membership, and a card HQ blocklists, are
known at the box within seconds, and still after the box restarts with the broker gone."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
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
from edge.settings import EdgeSettings
from protocol.cards import CardScheme, card_token, printed_id
from protocol.signing import public_key_text
from tests.edge_support import PEPPER, edge_settings, new_journal
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0

ADMIN = ("ada", "admin pass phrase")
BADGE, OWN_CARD, STOLEN = "0003887558", "0001234567", "0007654321"  # numbers printed on EM4100 fobs


def token_of(number: str) -> str:
    return card_token(PEPPER.encode(), printed_id("em4100", number, CardScheme()))


def start_box(config: EdgeSettings, identity: Ed25519PrivateKey) -> Agent:
    box = Agent(config, journal=new_journal(config), pepper=PEPPER.encode(), identity=identity)
    box.start()
    return box


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> Iterator[dict[str, Any]]:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "rules.key"
    hub_key = create_signing_key(key_file)
    settings = HubSettings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", mqtt_port=mosquitto.port,
                           rules_key_file=key_file, pepper=SecretStr(PEPPER),
                           member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    app = create_app(settings)
    with TestClient(app) as client:
        identity = Ed25519PrivateKey.generate()
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
            register_device(conn, site_id="riverside", device_id="riverside-box1",
                            public_key=public_key_text(identity), at=T0, replace_key=True)
        config = edge_settings(tmp_path / "box", site_id="riverside", device_id="riverside-box1",
                               hub_public_key=public_key_text(hub_key), mqtt={"port": mosquitto.port},
                               sync={"heartbeat_s": 1, "ack_timeout_s": 2})
        boxes = [start_box(config, identity)]
        try:
            yield {"client": client, "boxes": boxes, "config": config, "identity": identity, "tmp": tmp_path}
        finally:
            boxes[-1].stop()


def test_a_staff_member_and_a_blocklisted_card_reach_the_box(chain: dict[str, Any], mosquitto: Mosquitto,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    client, box = chain["client"], chain["boxes"][0]
    wait_for(lambda: box.uplink.connected, timeout=10, what="the box on the broker")
    member = client.post("/api/v1/members", auth=ADMIN, json={"cards": [{"kind": "em4100", "number": OWN_CARD}]})
    assert member.status_code == 201, member.text
    member_id = member.json()["member_id"]
    created = client.put("/api/v1/staff/c-7", auth=ADMIN,
                         json={"role": "supervisor", "sites": ["riverside"], "member_id": member_id})
    assert created.status_code == 201, created.text
    badged = client.post("/api/v1/staff/c-7/badges", auth=ADMIN, json={"card": BADGE, "family": "em4100"})
    assert badged.status_code == 201, badged.text
    listed = client.post("/api/v1/blocklist", auth=ADMIN,
                         json={"kind": "card", "card": STOLEN, "family": "em4100", "reason": "stolen fob"})
    assert listed.status_code == 201 and listed.json()["published"] is True, listed.text

    supervisor = wait_for(lambda: box.directory.badge(token_of(BADGE)), timeout=15, what="the badge at the box")
    assert (supervisor.staff_id, supervisor.role, supervisor.member_id) == ("c-7", "supervisor", member_id)
    assert supervisor.works_at("riverside") and box.directory.staff("c-7") == supervisor
    assert box.directory.staff_of_member(member_id) == supervisor
    assert box.directory.member(token_of(OWN_CARD))[0] is not None  # the membership's card came in order too
    wait_for(lambda: box.blocklist.lists(token_of(STOLEN), None), timeout=15, what="the blocklist at the box")
    assert not box.blocklist.lists(token_of(BADGE), None)
    assert box.status(True).counters["blocklist_version"] == 1

    # HQ takes the badge back: the box stops taking it.
    assert client.delete(f"/api/v1/staff/c-7/badges/{token_of(BADGE)}", auth=ADMIN).status_code == 200
    wait_for(lambda: box.directory.badge(token_of(BADGE)) is None, timeout=15, what="the badge taken back")
    assert box.directory.staff("c-7") is not None

    # The box restarts with the broker gone: what it verified is still what it applies.
    box.stop()
    mosquitto.stop()
    again = start_box(chain["config"], chain["identity"])
    chain["boxes"].append(again)
    assert again.blocklist.lists(token_of(STOLEN), None) and again.directory.staff_of_member(member_id) is not None
    mosquitto.start()

    written = b"".join(path.read_bytes() for path in chain["tmp"].rglob("*") if path.is_file())
    for number in (BADGE, STOLEN, OWN_CARD):
        assert number.encode() not in written, number
        assert number not in caplog.text, number
