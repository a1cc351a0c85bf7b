"""The blocklist through the API: admins list and unlist cards and members, each change published retained and
signed on the real broker (or kept, saying it was not published, when the broker is down); refusals never
repeat a card number."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import create_signing_key, load_signing_key
from cloud.db.users import add_user
from cloud.settings import HubSettings
from protocol.cards import CardScheme, card_token, printed_id
from protocol.signing import verify_blocklist
from tests.support.brokers import Mosquitto, free_port
from tests.support.hub_users import hq_actions
from tests.unit.hub.factories import T0
from tests.unit.hub.test_blocklist import Retained

ADMIN = ("ada", "admin pass phrase")
ANALYST = ("ann", "analyst pass phrase")
PEPPER = "chain-pepper-for-tests-0123456789"
FOB = "0003887558"
PAN = "4111111111111111"
FOB_TOKEN = card_token(PEPPER.encode(), printed_id("em4100", FOB, CardScheme()))


def make_client(db_url: str, tmp_path: Path, port: int, *, key: bool = True) -> TestClient:
    if key:
        create_signing_key(tmp_path / "rules.key")
    settings = HubSettings(database_url=db_url, pepper=SecretStr(PEPPER), mqtt_port=port,
                           rules_key_file=tmp_path / "rules.key",
                           member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    return TestClient(create_app(settings, start_ingest=False))


def users(client: TestClient) -> None:
    with client.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
        add_user(conn, username=ANALYST[0], password_hash=hash_password(ANALYST[1]), role="analyst", created_at=T0)


@pytest.fixture
def client(db_url: str, tmp_path: Path, mosquitto: Mosquitto) -> Iterator[TestClient]:
    with make_client(db_url, tmp_path, mosquitto.port) as client:
        users(client)
        yield client


def hub_key(tmp_path: Path) -> Ed25519PublicKey:
    return load_signing_key(tmp_path / "rules.key").public_key()


def test_listing_a_card_and_a_member_reaches_the_broker_signed_and_an_analyst_reads_it(
        client: TestClient, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    member = client.post("/api/v1/members", auth=ADMIN, json={"cards": [{"kind": "em4100", "number": "0001234567"}]})
    member_id = member.json()["member_id"]
    listed = client.post("/api/v1/blocklist", auth=ADMIN,
                         json={"kind": "card", "card": FOB, "family": "em4100", "reason": "stolen fob"})
    assert listed.status_code == 201, listed.text
    assert listed.json() == {"version": 1, "kind": "card", "value": FOB_TOKEN, "published": True, "detail": None}
    assert client.post("/api/v1/blocklist", auth=ADMIN, json={"kind": "member", "member_id": member_id,
                                                               "reason": "chargebacks"}).json()["version"] == 2
    reader = Retained(mosquitto.port)
    try:
        got = reader.latest(2)
    finally:
        reader.close()
    verify_blocklist(got, hub_key(tmp_path))
    assert got.lists(FOB_TOKEN, None) and got.lists("ab" * 32, member_id)

    seen = client.get("/api/v1/blocklist", auth=ANALYST)
    assert seen.status_code == 200
    assert seen.json()["version"] == 2
    assert [(e["kind"], e["value"], e["reason"], e["added_by"]) for e in seen.json()["entries"]] == [
        ("card", FOB_TOKEN, "stolen fob", "ada"), ("member", member_id, "chargebacks", "ada")]
    assert FOB not in seen.text and FOB not in caplog.text

    removed = client.delete(f"/api/v1/blocklist/card/{FOB_TOKEN}", auth=ADMIN)
    assert removed.status_code == 200 and removed.json()["version"] == 3 and removed.json()["published"]
    masked = f"card:{FOB_TOKEN[:8]}…"  # a card by its masked token in the HQ audit log
    assert hq_actions(client.app.state.engine, "blocklist.") == [  # type: ignore[attr-defined]
        ("blocklist.add", masked, "ada"), ("blocklist.add", f"member:{member_id}", "ada"),
        ("blocklist.remove", masked, "ada")]
    reader = Retained(mosquitto.port)
    try:
        assert not reader.latest(3).lists(FOB_TOKEN, None)
    finally:
        reader.close()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v1/blocklist", {"kind": "card", "token": "ab" * 32, "reason": "x"}),
    ("DELETE", "/api/v1/blocklist/card/" + "ab" * 32, None),
])
def test_only_an_admin_changes_the_blocklist(client: TestClient, method: str, path: str, body: Any) -> None:
    assert client.request(method, path, json=body, auth=ANALYST).status_code == 403
    assert client.request(method, path, json=body).status_code == 401
    assert client.get("/api/v1/blocklist", auth=ANALYST).json() == {"version": 0, "issued_at": None, "entries": []}


@pytest.mark.parametrize("body", [
    {"kind": "card", "card": PAN, "reason": "no family"},
    {"kind": "card", "card": PAN, "family": "magstripe", "token": "ab" * 32, "reason": "both"},
    {"kind": "member", "member_id": "m1", "card": PAN, "family": "magstripe", "reason": "a card for a member"},
    {"kind": "card", "card": PAN, "family": "magstripe"},                    # no reason
    {"kind": "card", "card": PAN[:-1] + "2", "family": "magstripe", "reason": "check digit"},
    {"kind": "card", "card": PAN, "family": "magstripe", "reason": "r", "cvv": "123"},
])
def test_a_bad_listing_is_refused_with_422_never_repeating_the_number(
        client: TestClient, caplog: pytest.LogCaptureFixture, body: dict[str, Any]) -> None:
    caplog.set_level(logging.DEBUG)
    refused = client.post("/api/v1/blocklist", auth=ADMIN, json=body)
    assert refused.status_code == 422, refused.text
    assert body["card"] not in refused.text and body["card"] not in caplog.text
    assert body["card"][-4:] not in refused.text
    assert client.get("/api/v1/blocklist", auth=ADMIN).json()["version"] == 0


def test_listed_twice_is_a_conflict_and_unlisting_what_is_not_listed_is_not_found(client: TestClient) -> None:
    body = {"kind": "card", "token": "ab" * 32, "reason": "x"}
    assert client.post("/api/v1/blocklist", auth=ADMIN, json=body).status_code == 201
    assert client.post("/api/v1/blocklist", auth=ADMIN, json=body).status_code == 409
    assert client.delete("/api/v1/blocklist/member/m0000000000000000", auth=ADMIN).status_code == 404
    assert client.delete("/api/v1/blocklist/staff/c-7", auth=ADMIN).status_code == 422
    unknown = client.post("/api/v1/blocklist", auth=ADMIN, json={"kind": "member", "member_id": "m0", "reason": "x"})
    assert unknown.status_code == 422 and "no such member" in unknown.text


def test_with_the_broker_down_the_change_is_kept_and_said_unpublished(db_url: str, tmp_path: Path) -> None:
    with make_client(db_url, tmp_path, free_port()) as client:
        users(client)
        answer = client.post("/api/v1/blocklist", auth=ADMIN, json={"kind": "card", "token": "ab" * 32, "reason": "x"})
        assert answer.status_code == 201
        assert answer.json()["published"] is False and "kept but not published" in answer.json()["detail"]
        assert [e["value"] for e in client.get("/api/v1/blocklist", auth=ADMIN).json()["entries"]] == ["ab" * 32]


def test_without_the_signing_key_nothing_changes(db_url: str, tmp_path: Path) -> None:
    with make_client(db_url, tmp_path, free_port(), key=False) as client:
        users(client)
        answer = client.post("/api/v1/blocklist", auth=ADMIN, json={"kind": "card", "token": "ab" * 32, "reason": "x"})
        assert answer.status_code == 503 and "signing key" in answer.json()["detail"]
        assert client.get("/api/v1/blocklist", auth=ADMIN).json()["entries"] == []
