"""Members through the API: enrol, read, search, cards, erasure, the ledger; personal data sealed at rest."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.schema import directory_changes, members, pii_access
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from protocol.cards import CardScheme, card_token, printed_id
from tests.support.hub_users import hq_actions
from tests.unit.hub.factories import T0, Chain, sale_payload

ADMIN = ("ada", "admin pass phrase")
ANALYST = ("ann", "analyst pass phrase")
PEPPER = "chain-pepper-for-tests-0123456789"
NAME, PHONE, EMAIL = "Zebulon Quartermaine", "+44 20 7946 0321", "Zebulon.Q@example.org"
FOB = "0003887558"  # printed on an EM4100 fob


def token_of(kind: str, number: str) -> str:
    return card_token(PEPPER.encode(), printed_id(kind, number, CardScheme()))  # type: ignore[arg-type]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    key = SecretStr(base64.b64encode(os.urandom(32)).decode())
    app = create_app(HubSettings(database_url=db_url, member_key=key, pepper=SecretStr(PEPPER)), start_ingest=False)
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
            add_user(conn, username=ANALYST[0], password_hash=hash_password(ANALYST[1]), role="analyst",
                     created_at=T0)
        yield client


def engine_of(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def enrol(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"profile": {"name": NAME, "phone": PHONE, "email": EMAIL, "birthday": "1990-12-24"},
            "consent": {"given_at": "2026-11-01T10:00:00Z", "purposes": ["loyalty"]},
            "cards": [{"kind": "em4100", "number": FOB}], **extra}
    response = client.post("/api/v1/members", json=body, auth=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def test_an_enrolled_member_is_read_whole_by_an_admin_and_without_personal_data_by_an_analyst(
        client: TestClient) -> None:
    member = enrol(client)
    assert member["status"] == "active" and member["profile"]["name"] == NAME
    assert [card["label"] for card in member["cards"]] == ["em4100:******7558"]
    assert member["cards"][0]["token"] == token_of("em4100", FOB)

    seen = client.get(f"/api/v1/members/{member['member_id']}", auth=ANALYST).json()
    assert seen["profile"] is None and seen["profile_visible"] is False and seen["consent"] is None
    assert seen["balance"] == 0 and seen["cards"][0]["state"] == "active"
    assert client.get(f"/api/v1/members/{member['member_id']}", auth=ADMIN).json()["profile"]["email"] == EMAIL
    with engine_of(client).connect() as conn:
        actions = conn.execute(sa.select(pii_access.c.username, pii_access.c.action)
                               .where(pii_access.c.member_id == member["member_id"]).order_by(pii_access.c.id)).all()
    # The creation (its answer shows the profile: a read) and the admin's read are recorded; the analyst
    # saw nothing personal.
    assert [tuple(row) for row in actions] == [("ada", "create"), ("ada", "read"), ("ada", "read")]


def test_search_finds_a_member_by_card_in_either_form_phone_as_typed_and_email_in_any_case(
        client: TestClient) -> None:
    member_id = enrol(client)["member_id"]

    def search(body: dict[str, Any], auth: tuple[str, str] = ADMIN) -> list[str]:
        response = client.post("/api/v1/members/search", json=body, auth=auth)
        assert response.status_code == 200, response.text
        return [found["member_id"] for found in response.json()]

    assert search({"card": {"kind": "read", "number": f"em4100:{FOB}"}}) == [member_id]
    assert search({"card": {"kind": "em4100", "number": FOB}}, auth=ANALYST) == [member_id]
    assert search({"phone": "+442079460321"}) == [member_id]
    assert search({"email": " zebulon.q@EXAMPLE.org"}) == [member_id]
    assert search({"email": "someone.else@example.org"}) == []
    assert client.post("/api/v1/members/search", json={"phone": PHONE}, auth=ANALYST).status_code == 403


def test_personal_data_is_nowhere_in_clear_in_the_database(client: TestClient, db_url: str, tmp_path: Path) -> None:
    enrol(client)
    with engine_of(client).connect() as conn:
        row = conn.execute(sa.select(members)).one()
        dumped = repr(tuple(row)).encode() + b"".join(
            repr(tuple(change)).encode() for change in conn.execute(sa.select(directory_changes)))
    files = b"".join(path.read_bytes() for path in tmp_path.glob("hub.db*")) if db_url.startswith("sqlite") else b""
    for secret in (NAME, PHONE, EMAIL, "Zebulon", "7946", "1990", FOB):
        assert secret.encode() not in dumped + files, secret
    assert row.phone_hash and row.email_hash and row.birthday_md == "12-24"


def test_a_card_seen_at_a_till_starts_an_anonymous_account_that_enrolment_claims_with_its_history(
        client: TestClient) -> None:
    chain = Chain("s1", "s1-box1")
    chain.register(engine_of(client))
    payload = sale_payload("s1", sale_id="s-1") | {"card_token": token_of("em4100", FOB),
                                                    "loyalty": {"status": "earned", "points_earned": 240}}
    chain.add(payload)
    with engine_of(client).begin() as conn:
        ingest_batch(conn, batch=chain.batch(1, 1), site_id="s1", received_at=T0)
    found = client.post("/api/v1/members/search", json={"card": {"kind": "em4100", "number": FOB}}, auth=ADMIN).json()
    assert [(m["status"], m["balance"], m["profile"]) for m in found] == [("anonymous", 240, None)]

    member = enrol(client)
    assert member["member_id"] == found[0]["member_id"] and member["balance"] == 240
    ledger = client.get(f"/api/v1/members/{member['member_id']}/ledger", auth=ANALYST).json()
    assert [(row["kind"], row["points"], row["site_id"], row["seq"], row["sale_id"]) for row in ledger] == [
        ("earn", 240, "s1", 1, "s-1")]


def test_a_card_another_member_holds_is_refused_and_values_never_echo(client: TestClient) -> None:
    enrol(client)
    response = client.post("/api/v1/members", json={"cards": [{"kind": "em4100", "number": FOB}]}, auth=ADMIN)
    assert response.status_code == 409
    bad = client.post("/api/v1/members", json={"profile": {"email": "not-an-address-7946"},
                                               "cards": [{"kind": "em4100", "number": "12345"}]}, auth=ADMIN)
    assert bad.status_code == 422 and "7946" not in bad.text
    typo = client.post("/api/v1/members", json={"cards": [{"kind": "em4100", "number": "000388755"}]}, auth=ADMIN)
    assert typo.status_code == 422 and "000388755" not in typo.text and "10 digits" in typo.text
    assert client.post("/api/v1/members", json={"cards": []}, auth=ANALYST).status_code == 403


def test_a_blocked_card_stays_on_the_member_and_boxes_get_it_as_blocked(client: TestClient) -> None:
    member = enrol(client)
    token = member["cards"][0]["token"]
    response = client.put(f"/api/v1/members/{member['member_id']}/cards/{token}",
                          json={"state": "lost", "reason": "reported at the box office"}, auth=ADMIN)
    assert response.status_code == 200
    assert [(card["state"], card["reason"]) for card in response.json()["cards"]] == [
        ("lost", "reported at the box office")]
    with engine_of(client).connect() as conn:
        latest = conn.execute(sa.select(directory_changes.c.entry).where(directory_changes.c.card_token == token)
                              .order_by(directory_changes.c.version.desc())).scalars().first()
    assert latest["status"] == "blocked" and latest["member_id"] == member["member_id"]
    assert hq_actions(engine_of(client), "member.")[-1] == ("member.card_state", member["member_id"], "ada")


def test_erasure_destroys_the_key_forgets_the_cards_and_answers_as_erased(client: TestClient) -> None:
    member = enrol(client, opening_balance=500)
    member_id, token = member["member_id"], member["cards"][0]["token"]
    response = client.delete(f"/api/v1/members/{member_id}", auth=ADMIN)
    assert response.status_code == 200
    erased = client.get(f"/api/v1/members/{member_id}", auth=ADMIN).json()
    assert (erased["status"], erased["profile"], erased["cards"], erased["balance"]) == ("erased", None, [], 500)
    assert erased["erased_at"] is not None
    assert client.post("/api/v1/members/search", json={"email": EMAIL}, auth=ADMIN).json() == []
    assert client.patch(f"/api/v1/members/{member_id}", json={"profile": {"name": "X"}}, auth=ADMIN).status_code == 410
    with engine_of(client).connect() as conn:
        row = conn.execute(sa.select(members).where(members.c.member_id == member_id)).one()
        changes = conn.execute(sa.select(directory_changes.c.entry)
                               .where(directory_changes.c.card_token == token)).scalars().all()
    assert (row.wrapped_key, row.profile, row.phone_hash, row.email_hash, row.birthday_md) == (None,) * 5
    assert changes == [None]  # boxes are told to forget the card; no earlier entry of it is left to send
    assert [action for action, target, _ in hq_actions(engine_of(client), "member.") if target == member_id] == [
        "member.create", "member.erase"]


def test_an_update_changes_the_profile_and_a_phone_search_follows(client: TestClient) -> None:
    member_id = enrol(client)["member_id"]
    response = client.patch(f"/api/v1/members/{member_id}", json={"profile": {"phone": "+33 1 23 45 67 89"}},
                            auth=ADMIN)
    assert response.status_code == 200 and response.json()["profile"]["name"] == NAME
    assert client.post("/api/v1/members/search", json={"phone": PHONE}, auth=ADMIN).json() == []
    assert len(client.post("/api/v1/members/search", json={"phone": "+33123456789"}, auth=ADMIN).json()) == 1
    cleared = client.patch(f"/api/v1/members/{member_id}", json={"status": None}, auth=ADMIN)
    assert cleared.status_code == 422 and "cannot be cleared" in cleared.text
