"""Staff accounts through the API: admins change them, any signed-in role reads them; refusals say where and
what, never the card number, in the answer or in the log."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.devices import register_device
from cloud.db.users import add_user
from cloud.members.directory import changes_after
from cloud.settings import HubSettings
from protocol.cards import CardScheme, card_token, printed_id
from protocol.signing import public_key_text
from tests.support.hub_users import hq_actions
from tests.unit.hub.factories import T0

ADMIN = ("ada", "admin pass phrase")
ANALYST = ("ann", "analyst pass phrase")
PEPPER = "chain-pepper-for-tests-0123456789"
FOB = "0003887558"


def token_of(number: str) -> str:
    return card_token(PEPPER.encode(), printed_id("em4100", number, CardScheme()))


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    settings = HubSettings(database_url=db_url, pepper=SecretStr(PEPPER),
                           member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    app = create_app(settings, start_ingest=False)
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
            add_user(conn, username=ANALYST[0], password_hash=hash_password(ANALYST[1]), role="analyst",
                     created_at=T0)
            for site in ("riverside", "harbour"):
                register_device(conn, site_id=site, device_id=f"{site}-box1", at=T0,
                                public_key=public_key_text(Ed25519PrivateKey.generate()))
        yield client


def engine_of(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def put(client: TestClient, staff_id: str = "c-7", auth: tuple[str, str] = ADMIN, **body: Any) -> Any:
    return client.put(f"/api/v1/staff/{staff_id}", json={"role": "cashier", **body}, auth=auth)


def test_an_admin_creates_an_account_with_a_badge_and_a_linked_member_and_an_analyst_reads_it(
        client: TestClient) -> None:
    member = client.post("/api/v1/members", auth=ADMIN, json={"cards": [{"kind": "em4100", "number": "0001234567"}]})
    assert member.status_code == 201, member.text
    member_id = member.json()["member_id"]
    created = put(client, sites=["riverside"], member_id=member_id)
    assert created.status_code == 201, created.text
    assert created.json()["sites"] == ["riverside"] and created.json()["member_id"] == member_id
    badged = client.post("/api/v1/staff/c-7/badges", json={"card": FOB, "family": "em4100"}, auth=ADMIN)
    assert badged.status_code == 201, badged.text
    assert [(b["token"], b["label"]) for b in badged.json()["badges"]] == [(token_of(FOB), "em4100:******7558")]
    assert FOB not in badged.text

    seen = client.get("/api/v1/staff/c-7", auth=ANALYST)
    assert seen.status_code == 200 and seen.json()["badges"][0]["token"] == token_of(FOB)
    assert [s["staff_id"] for s in client.get("/api/v1/staff?site=riverside", auth=ANALYST).json()] == ["c-7"]
    assert client.get("/api/v1/staff?site=harbour", auth=ANALYST).json() == []
    updated = put(client, status="left")
    assert updated.status_code == 200 and updated.json()["status"] == "left" and updated.json()["sites"] == []
    assert client.get("/api/v1/staff?status=active", auth=ANALYST).json() == []

    with engine_of(client).connect() as conn:  # the boxes' directory got each change
        [change] = [c for c in changes_after(conn, 0, limit=100) if c.staff_id == "c-7"]
    assert change.entry is not None and change.entry["status"] == "left" and change.entry["badges"] == [token_of(FOB)]

    gone = client.delete(f"/api/v1/staff/c-7/badges/{token_of(FOB)}", auth=ADMIN)
    assert gone.status_code == 200 and gone.json()["badges"] == []
    assert client.delete("/api/v1/staff/c-7", auth=ADMIN).status_code == 204
    assert client.get("/api/v1/staff/c-7", auth=ADMIN).status_code == 404
    assert hq_actions(engine_of(client), "staff.") == [
        (action, "c-7", "ada") for action in ("staff.create", "staff.badge_add", "staff.update", "staff.badge_remove",
                                              "staff.delete")]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/api/v1/staff/c-7", {"role": "cashier"}),
    ("POST", "/api/v1/staff/c-7/badges", {"card": FOB, "family": "em4100"}),
    ("DELETE", f"/api/v1/staff/c-7/badges/{token_of(FOB)}", None),
    ("DELETE", "/api/v1/staff/c-7", None),
])
def test_only_an_admin_changes_staff(client: TestClient, method: str, path: str, body: Any) -> None:
    assert put(client).status_code == 201
    refused = client.request(method, path, json=body, auth=ANALYST)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert client.request(method, path, json=body).status_code == 401
    assert client.get("/api/v1/staff", auth=ANALYST).status_code == 200
    assert client.get("/api/v1/staff").status_code == 401


@pytest.mark.parametrize(("body", "where"), [
    ({"card": "12AB34XY", "family": "em4100"}, "card"),              # not an EM4100 number
    ({"card": "4111111111111112", "family": "magstripe"}, "card"),    # a PAN that fails its check digit
    ({"card": "0003887558", "family": "em4100", "pin": "1234"}, "pin"),  # an unknown field
    ({"card": "0003887558\n", "family": "em4100"}, "card"),           # a control character
    ({"card": "0003887558", "family": "visa"}, "family"),
])
def test_a_bad_badge_is_refused_with_422_naming_the_field_never_the_number(
        client: TestClient, caplog: pytest.LogCaptureFixture, body: dict[str, Any], where: str) -> None:
    caplog.set_level(logging.DEBUG)
    assert put(client).status_code == 201
    refused = client.post("/api/v1/staff/c-7/badges", json=body, auth=ADMIN)
    assert refused.status_code == 422, refused.text
    assert where in refused.text
    for secret in (body["card"].strip(), *(["1234"] if "pin" in body else [])):
        assert secret not in refused.text and secret not in caplog.text


@pytest.mark.parametrize(("body", "status", "where"), [
    ({"role": "boss"}, 422, "role"),
    ({"role": "cashier", "sites": ["atlantis"]}, 422, "sites"),
    ({"role": "cashier", "member_id": "m0000000000000000"}, 422, "member_id"),
    ({"role": "cashier", "status": "fired"}, 422, "status"),
    ({"role": "cashier", "sites": ["riverside"]}, 201, None),
])
def test_an_account_is_refused_by_field(client: TestClient, body: dict[str, Any], status: int,
                                        where: str | None) -> None:
    answer = client.put("/api/v1/staff/c-7", json=body, auth=ADMIN)
    assert answer.status_code == status, answer.text
    if where is not None:
        assert where in answer.text


@pytest.mark.parametrize(("staff_id", "status"), [("c" * 32, 201), ("c" * 33, 422), ("-c7", 422)])
def test_the_cashier_code_in_the_url_is_checked(client: TestClient, staff_id: str, status: int) -> None:
    assert put(client, staff_id).status_code == status


def test_missing_and_conflicting_badges(client: TestClient) -> None:
    assert client.get("/api/v1/staff/nobody", auth=ADMIN).status_code == 404
    lost = client.post("/api/v1/staff/nobody/badges", json={"card": FOB, "family": "em4100"}, auth=ADMIN)
    assert lost.status_code == 404
    put(client, "c-7")
    put(client, "c-8")
    first = client.post("/api/v1/staff/c-7/badges", json={"card": FOB, "family": "em4100"}, auth=ADMIN)
    assert first.status_code == 201
    twice = client.post("/api/v1/staff/c-8/badges", json={"card": f"em4100:{FOB}", "family": "read"}, auth=ADMIN)
    assert twice.status_code == 409 and FOB not in twice.text
    member = client.post("/api/v1/members", auth=ADMIN, json={"cards": [{"kind": "em4100", "number": "0001234567"}]})
    assert member.status_code == 201
    theirs = client.post("/api/v1/staff/c-8/badges", json={"card": "0001234567", "family": "em4100"}, auth=ADMIN)
    assert theirs.status_code == 409 and "member" in theirs.json()["detail"]
    assert client.delete("/api/v1/staff/c-8/badges/" + "ab" * 32, auth=ADMIN).status_code == 404
