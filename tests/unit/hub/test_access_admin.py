"""Users, API tokens and the HQ audit log through a real app and database, as an admin runs them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud.access.audit import record_action
from cloud.api.app import create_app
from cloud.api.deps import Viewer
from cloud.db.access_tables import api_tokens
from tests.support.hub_users import PASSWORD, bearer, hub_settings, make_token, make_user, sign_in


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One app over SQLite: the admin ada (by token), the analyst ann, the site manager sam of riverside."""
    url = f"sqlite:///{tmp_path_factory.mktemp('admin') / 'hub.db'}"
    app = create_app(hub_settings(url), start_ingest=False)
    with TestClient(app):
        engine = app.state.engine
        make_user(engine, "ada", "admin")
        make_user(engine, "ann", "analyst")
        make_user(engine, "sam", "site_manager", sites=["riverside"])
        app.state.admin = bearer(make_token(engine, "ada"))
        yield app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def engine_of(app: FastAPI) -> sa.Engine:
    engine: sa.Engine = app.state.engine
    return engine


def hq(client: TestClient, app: FastAPI, **query: str | int) -> list[dict[str, object]]:
    answer = client.get("/api/v1/audit/hq", params=query, headers=app.state.admin)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, object]] = answer.json()
    return rows


def test_admins_create_list_and_change_users_and_never_see_a_hash(app: FastAPI, client: TestClient) -> None:
    admin = app.state.admin
    created = client.post("/api/v1/users", headers=admin, json={
        "username": "hal", "password": "a long passphrase", "role": "site_manager", "sites": ["harbour", "dock"]})
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("username", "role", "sites", "disabled", "locked_until", "sessions")} == {
        "username": "hal", "role": "site_manager", "sites": ["dock", "harbour"], "disabled": False,
        "locked_until": None, "sessions": 0}
    listed = client.get("/api/v1/users", headers=admin)
    assert [user["username"] for user in listed.json()] == ["ada", "ann", "hal", "sam"]
    assert "argon2" not in listed.text and "password_hash" not in listed.text

    promoted = client.patch("/api/v1/users/hal", headers=admin, json={"role": "analyst"}).json()
    assert (promoted["role"], promoted["sites"]) == ("analyst", None)  # every site now
    disabled = client.patch("/api/v1/users/hal", headers=admin, json={"disabled": True}).json()
    assert disabled["disabled"] is True
    assert client.get("/api/v1/users/me", auth=("hal", "a long passphrase")).status_code == 401

    for body, status in (
        ({"username": "hal", "password": "a long passphrase", "role": "analyst"}, 409),
        ({"username": "ivy", "password": "short", "role": "analyst"}, 422),
        ({"username": "ivy", "password": "a long passphrase", "role": "site_manager"}, 422),
        ({"username": "ivy", "password": "a long passphrase", "role": "analyst", "sites": ["riverside"]}, 422),
        ({"username": "ivy", "password": "a long passphrase", "role": "root"}, 422),
        ({"username": " ivy", "password": "a long passphrase", "role": "analyst"}, 422),
        ({"username": "ivy", "password": "a long passphrase", "role": "analyst", "sites": ["Not A Site"]}, 422),
    ):
        answer = client.post("/api/v1/users", headers=admin, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert "a long passphrase" not in answer.text
    assert client.patch("/api/v1/users/nobody", headers=admin, json={"disabled": True}).status_code == 404
    assert client.patch("/api/v1/users/hal", headers=admin, json={}).status_code == 422


def test_the_last_admin_can_be_neither_disabled_nor_demoted(app: FastAPI, client: TestClient) -> None:
    for change in ({"disabled": True}, {"role": "analyst"}):
        refused = client.patch("/api/v1/users/ada", headers=app.state.admin, json=change)
        assert refused.status_code == 409 and "last admin" in refused.json()["detail"]


def test_only_admins_administer_users_and_tokens(app: FastAPI, client: TestClient) -> None:
    for who in (("ann", PASSWORD), ("sam", PASSWORD)):
        for method, path, body in (("GET", "/api/v1/users", None), ("GET", "/api/v1/tokens", None),
                                   ("POST", "/api/v1/tokens", {"username": "ann", "name": "x"}),
                                   ("PATCH", "/api/v1/users/ann", {"role": "admin"}),
                                   ("POST", "/api/v1/users/ann/unlock", None), ("GET", "/api/v1/audit/hq", None)):
            assert client.request(method, path, json=body, auth=who).status_code == 403, (who, path)
        assert client.get("/api/v1/users/me", auth=who).json()["username"] == who[0]


def test_a_token_is_shown_once_acts_as_its_user_and_stops_when_revoked(app: FastAPI, client: TestClient) -> None:
    admin = app.state.admin
    issued = client.post("/api/v1/tokens", headers=admin, json={"username": "sam", "name": "BI nightly",
                                                                "expires_in_days": 30})
    assert issued.status_code == 201, issued.text
    token, token_id = issued.json()["token"], issued.json()["token_id"]
    assert token.startswith(f"mq_{token_id}_") and issued.json()["state"] == "active"
    me = client.get("/api/v1/users/me", headers=bearer(token)).json()
    assert (me["username"], me["sites"], me["via"], me["csrf_token"]) == ("sam", ["riverside"], "token", None)
    assert client.get("/api/v1/users", headers=bearer(token)).status_code == 403  # sam's role, not the issuer's

    listed = client.get("/api/v1/tokens", params={"username": "sam"}, headers=admin)
    assert token.split("_", 2)[2] not in listed.text and "secret" not in listed.text  # the secret may hold a "_"
    [row] = [each for each in listed.json() if each["token_id"] == token_id]
    assert (row["name"], row["created_by"], row["last_used_at"] is not None) == ("BI nightly", "ada", True)
    with engine_of(app).connect() as conn:
        held = conn.execute(sa.select(api_tokens.c.secret_hash).where(api_tokens.c.token_id == token_id)).scalar()
    assert held is not None and held not in token

    revoked = client.delete(f"/api/v1/tokens/{token_id}", headers=admin)
    assert (revoked.status_code, revoked.json()["state"], revoked.json()["revoked_by"]) == (200, "revoked", "ada")
    refused = client.get("/api/v1/users/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["detail"] == "unknown, expired or revoked token"
    assert client.delete("/api/v1/tokens/00000000deadbeef", headers=admin).status_code == 404
    assert client.post("/api/v1/tokens", headers=admin, json={"username": "nobody", "name": "x"}).status_code == 404


def test_expired_tokens_and_disabled_users_tokens_do_not_work(app: FastAPI, client: TestClient) -> None:
    make_user(engine_of(app), "tia", "analyst")
    expiring, kept = make_token(engine_of(app), "tia", days=1), make_token(engine_of(app), "tia")
    with engine_of(app).begin() as conn:
        conn.execute(sa.update(api_tokens).where(api_tokens.c.token_id == expiring.split("_")[1])
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get("/api/v1/users/me", headers=bearer(expiring)).status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(kept)).status_code == 200
    client.patch("/api/v1/users/tia", headers=app.state.admin, json={"disabled": True})
    assert client.get("/api/v1/users/me", headers=bearer(kept)).status_code == 401
    assert client.post("/api/v1/tokens", headers=app.state.admin,
                       json={"username": "tia", "name": "x"}).status_code == 409
    client.patch("/api/v1/users/tia", headers=app.state.admin, json={"disabled": False})
    assert client.get("/api/v1/users/me", headers=bearer(kept)).status_code == 200
    for bad in ("mq_short", "mq_" + "g" * 16 + "_" + "a" * 43, "Bearer", "mq_" + "0" * 16 + "_" + "a" * 43):
        assert client.get("/api/v1/users/me", headers=bearer(bad)).status_code == 401, bad


def test_a_basic_password_is_remembered_until_it_changes(app: FastAPI, client: TestClient) -> None:
    make_user(engine_of(app), "uma", "analyst")
    assert client.get("/api/v1/users/me", auth=("uma", PASSWORD)).status_code == 200
    changed = client.patch("/api/v1/users/uma", headers=app.state.admin, json={"password": "a new passphrase"})
    assert changed.status_code == 200
    assert client.get("/api/v1/users/me", auth=("uma", PASSWORD)).status_code == 401
    assert client.get("/api/v1/users/me", auth=("uma", "a new passphrase")).status_code == 200


def test_the_hq_audit_log_records_each_kind_of_action_newest_first(app: FastAPI, client: TestClient) -> None:
    admin = app.state.admin
    browser = TestClient(app)
    csrf = sign_in(browser, "ann")
    browser.post("/logout", data={"csrf_token": csrf})
    client.post("/api/v1/users", headers=admin, json={"username": "vic", "password": "a long passphrase",
                                                      "role": "analyst"})
    client.patch("/api/v1/users/vic", headers=admin, json={"password": "another passphrase"})
    token_id = client.post("/api/v1/tokens", headers=admin, json={"username": "vic", "name": "x"}).json()["token_id"]
    client.delete(f"/api/v1/tokens/{token_id}", headers=admin)
    client.post("/api/v1/users/vic/unlock", headers=admin)

    rows = hq(client, app, limit=1000)
    kinds = [row["action"] for row in rows]
    for action in ("login", "logout", "user.create", "user.update", "token.issue", "token.revoke", "user.unlock"):
        assert action in kinds, action
    assert [row["at"] for row in rows] == sorted((row["at"] for row in rows), reverse=True)
    update = next(row for row in rows if row["action"] == "user.update" and row["target"] == "vic")
    assert (update["username"], update["role"], update["via"]) == ("ada", "admin", "token")
    assert update["detail"] == {"changed": ["password"], "sessions_ended": 0}
    assert "passphrase" not in str(rows) and "argon2" not in str(rows)
    assert [row["action"] for row in hq(client, app, username="ann")][:2] == ["logout", "login"]
    assert {row["action"] for row in hq(client, app, action="token.")} == {"token.issue", "token.revoke"}


def test_the_hq_audit_log_filters_and_pages(app: FastAPI, client: TestClient) -> None:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    with engine_of(app).begin() as conn:
        for n in range(5):
            record_action(conn, actor=Viewer("pat", "analyst", None, "basic", "192.0.2.1"), action="export.test",
                          target=f"t{n}", site_id="riverside" if n % 2 else "harbour", at=at + timedelta(hours=n),
                          detail={"n": n})
    first = hq(client, app, action="export.test", limit=2)
    assert [row["target"] for row in first] == ["t4", "t3"]
    following = hq(client, app, action="export.test", limit=2, before=int(str(first[-1]["id"])))
    assert [row["target"] for row in following] == ["t2", "t1"]
    assert [row["target"] for row in hq(client, app, action="export.test", site="riverside")] == ["t3", "t1"]
    window = hq(client, app, **{"from": "2020-01-01T01:00:00Z", "to": "2020-01-01T03:00:00Z"})
    assert [row["target"] for row in window] == ["t2", "t1"]
    assert hq(client, app, before=2**62) == []
    for bad in ("limit=0", "limit=1001", "action=Rules", "action=a..b", "from=yesterday", "site=Not%20A%20Site",
                "before=0", "username="):
        assert client.get(f"/api/v1/audit/hq?{bad}", headers=app.state.admin).status_code == 422, bad
