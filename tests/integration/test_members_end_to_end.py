"""Members end to end on real parts: the hub (API, ingest, directory publisher) and two boxes over one real
Mosquitto. A member enrolled at HQ is known at the tills within seconds; a redemption shows at the hub; two
boxes cut off from the broker spend the same points, and on reconnect the hub's balance is right and one
overdraft appears, bounded by the cap; after erasure the member's name, phone and e-mail are in no file
either side wrote, nor in the logs."""

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
from protocol.cards import card_token
from protocol.signing import public_key_text
from tests.edge_support import PEPPER, edge_settings, fob, new_journal
from tests.support.brokers import Mosquitto
from tests.support.redeeming import answer, request
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0

ADMIN = ("ada", "admin pass phrase")
NAME, PHONE, EMAIL = "Philomena Strand-Oakes", "+44 20 7946 0777", "philomena.so@example.org"
CARD = fob("67003B51C6")  # printed 0003887558
TOKEN = card_token(PEPPER.encode(), CARD)
RULES = {"currency": "EUR",
         "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000},
                     {"rule_id": "bar", "kind": "concession", "basis_points": 1000}],
         "redemption": {"enabled": True, "points_per_unit": 10, "kinds": ["ticket"], "offline_daily_cap": 3000}}


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> Iterator[dict[str, Any]]:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "rules.key"
    hub_key = create_signing_key(key_file)
    settings = HubSettings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", mqtt_port=mosquitto.port,
                           rules_key_file=key_file, pepper=SecretStr(PEPPER),
                           member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    app = create_app(settings)
    boxes: list[Agent] = []
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
        for site in ("riverside", "harbour"):
            identity = Ed25519PrivateKey.generate()
            with app.state.engine.begin() as conn:
                register_device(conn, site_id=site, device_id=f"{site}-box1", public_key=public_key_text(identity),
                                at=T0, replace_key=True)
            config = edge_settings(tmp_path / site, site_id=site, device_id=f"{site}-box1",
                                   hub_public_key=public_key_text(hub_key), mqtt={"port": mosquitto.port},
                                   sync={"heartbeat_s": 1, "ack_timeout_s": 2})
            box = Agent(config, journal=new_journal(config), pepper=PEPPER.encode(), identity=identity)
            box.start()
            boxes.append(box)
        response = client.post("/api/v1/rules", json=RULES, auth=ADMIN)
        assert response.status_code == 201, response.text
        for box in boxes:
            wait_for(lambda box=box: box.rules.current.version == 1, timeout=10, what="the bundle on every box")
        yield {"client": client, "boxes": boxes, "tmp": tmp_path, "app": app}
        for box in boxes:
            box.stop()


def sell(box: Agent, kind: str, sale_id: str, at: float, **extra: Any) -> dict[str, Any]:
    box.present_card("t1", CARD, now=at)
    return answer(box.handle_sale("t1", request(kind, sale_id, **extra), now=at + 0.1))


def member(client: TestClient, member_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/v1/members/{member_id}", auth=ADMIN).json()
    return body


def test_members_from_enrolment_to_overdraft_to_erasure(chain: dict[str, Any], mosquitto: Mosquitto,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    client, (riverside, harbour) = chain["client"], chain["boxes"]
    created = client.post("/api/v1/members", auth=ADMIN, json={
        "profile": {"name": NAME, "phone": PHONE, "email": EMAIL, "birthday": "1988-05-17"},
        "consent": {"given_at": "2026-11-01T10:00:00Z", "purposes": ["loyalty"]},
        "cards": [{"kind": "em4100", "number": "0003887558"}], "opening_balance": 4000})
    assert created.status_code == 201, created.text
    member_id = created.json()["member_id"]

    # Known at every till within seconds, with the balance HQ holds.
    for box in (riverside, harbour):
        wait_for(lambda box=box: box.directory.member(TOKEN)[0] is not None, timeout=10, what="the member at a box")
        assert box.directory.member(TOKEN)[0].member_id == member_id  # type: ignore[union-attr]
    sold = sell(riverside, "sale", "R-1", 1.0, ticket=1000, popcorn=0)
    assert (sold["loyalty"]["points"], sold["loyalty"]["balance"]) == (100, 4100)

    # Redeemed and confirmed at riverside: it shows at the hub.
    held = sell(riverside, "redeem", "R-2", 2.0, points=1000)
    assert (held["status"], held["points"]) == ("authorised", 1000)
    captured = answer(riverside.handle_sale("t1", request("sale", "R-2", hold_id=held["hold_id"]), now=2.2))
    assert captured["loyalty"]["redeemed"] == 1000
    # 1000 points paid 100 cents of the ticket; 10 % of the rest (1150 + 650) earned.
    assert (captured["loyalty"]["points"], captured["loyalty"]["balance"]) == (180, 4100 - 1000 + 180)
    wait_for(lambda: member(client, member_id)["balance"] == 3280, timeout=15, what="the redemption at the hub")
    ledger = client.get(f"/api/v1/members/{member_id}/ledger", auth=ADMIN).json()
    assert ("redeem", -1000, "riverside") in [(row["kind"], row["points"], row["site_id"]) for row in ledger]
    balance = 3280
    for box in (riverside, harbour):  # the directory's balance reaches both boxes
        wait_for(lambda box=box: box.directory.member(TOKEN)[0].balance == balance,  # type: ignore[union-attr]
                 timeout=10, what="the new balance in every box's directory")

    # Both boxes cut off from the broker (and so from the hub and each other) spend the same points.
    mosquitto.stop()
    spent = 0
    for box, site in ((riverside, "R"), (harbour, "H")):
        held = sell(box, "redeem", f"{site}-3", 3.0, points=30_000, ticket=3000, popcorn=0)
        assert held["status"] == "authorised" and held["points"] == 3000  # the offline cap, not the balance
        done = answer(box.handle_sale("t1", request("sale", f"{site}-3", hold_id=held["hold_id"], ticket=3000,
                                                    popcorn=0), now=3.2))
        spent += done["loyalty"]["redeemed"]
        assert done["loyalty"]["points"] == 270  # 10 % of the 2,700 cents paid with money
    assert spent == 6000
    mosquitto.start()
    expected = balance - 6000 + 2 * 270  # -2180: the same points spent twice
    wait_for(lambda: member(client, member_id)["balance"] == expected, timeout=40, what="both sites' events at the hub")
    [overdraft] = client.get("/api/v1/overdrafts?open=true", auth=ADMIN).json()
    assert overdraft["member_id"] == member_id and overdraft["amount"] == 2180 <= 3000  # bounded by the cap
    assert overdraft["sites"] == ["harbour", "riverside"] and overdraft["balance"] == -2180
    # The day's redemptions, each with its site, box and seq: the earlier one online, the two offline.
    assert sorted((event["site_id"], event["points"]) for event in overdraft["events"]) == [
        ("harbour", 3000), ("riverside", 1000), ("riverside", 3000)]

    # Erasure: the boxes forget the card; the person is in no file either side wrote, nor in the logs.
    assert client.delete(f"/api/v1/members/{member_id}", auth=ADMIN).status_code == 200
    for box in (riverside, harbour):
        wait_for(lambda box=box: box.directory.member(TOKEN)[0] is None, timeout=10, what="the card forgotten")
    assert member(client, member_id)["status"] == "erased"
    written = b"".join(path.read_bytes() for path in chain["tmp"].rglob("*") if path.is_file())
    logs = caplog.text.encode()
    for secret in (NAME, PHONE, EMAIL, "Philomena", "7946 0777", "philomena.so"):
        assert secret.encode() not in written, secret
        assert secret.encode() not in logs, secret
