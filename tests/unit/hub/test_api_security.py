"""What a client sees of the hub's defences: login throttling, the health endpoints, strict parameters,
and that a flood of logins can take neither the API's connections nor its threads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

import cloud.auth
from cloud.api.app import API_POOL, create_app
from cloud.auth import hash_password
from cloud.db.users import UserRow, add_user
from cloud.settings import HubSettings
from tests.support.brokers import free_port
from tests.support.hub_users import bearer, make_token
from tests.unit.hub.factories import T0

AUTH = ("alice", "correct horse battery")
WRONG = ("alice", "wrong horse battery")

MakeApp = Callable[..., FastAPI]


@pytest.fixture
def make_app(engine: sa.Engine, db_url: str) -> Iterator[MakeApp]:
    """Apps over one migrated database holding the user alice, with settings overridden per test."""
    with engine.begin() as conn:
        add_user(conn, username=AUTH[0], password_hash=hash_password(AUTH[1]), role="analyst", created_at=T0)
    apps: list[FastAPI] = []

    def make(**settings: Any) -> FastAPI:
        app = create_app(HubSettings(database_url=db_url, **settings), start_ingest=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        for name in ("engine", "ingest_engine", "probe_engine", "public_engine"):
            getattr(app.state, name).dispose()


def client_from(app: FastAPI, host: str) -> TestClient:
    """A client of `app` whose requests come from `host` (the app was started by another client)."""
    return TestClient(app, client=(host, 50000))


def checkouts(engine: sa.Engine) -> list[int]:
    """A list that grows by one each time `engine` hands out a pool connection."""
    seen: list[int] = []
    sa.event.listen(engine, "checkout", lambda *args: seen.append(1))
    return seen


def test_a_client_gets_429_with_retry_after_after_its_failures(make_app: MakeApp) -> None:
    app = make_app(login_client_max_failures=3)
    with TestClient(app) as client:
        answers = [client.get("/api/v1/sites", auth=(f"user-{n}", "wrong")).status_code for n in range(3)]
        refused = client.get("/api/v1/sites", auth=AUTH)  # even the right password: it is not checked
        elsewhere = client_from(app, "192.0.2.9").get("/api/v1/sites", auth=AUTH)

    assert answers == [401, 401, 401]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json() == {
        "detail": f"too many failed logins from this address; retry in {refused.headers['retry-after']} s"
    }
    assert elsewhere.status_code == 200


def test_a_valid_api_token_still_works_from_an_address_whose_logins_are_throttled(
        make_app: MakeApp, engine: sa.Engine) -> None:
    # A BI tool behind the office's NAT keeps working while someone there mistypes a password; a guessed token does
    # not get a try.
    app = make_app(login_client_max_failures=3)
    token = make_token(engine, AUTH[0])
    with TestClient(app) as client:
        answers = [client.get("/api/v1/sites", auth=(f"user-{n}", "wrong")).status_code for n in range(3)]
        with_token = client.get("/api/v1/sites", headers=bearer(token))
        guessed = client.get("/api/v1/sites", headers=bearer(token[:-4] + "AAAA"))
        password = client.get("/api/v1/sites", auth=AUTH)

    assert answers == [401, 401, 401]
    assert with_token.status_code == 200
    assert guessed.status_code == 429 and int(guessed.headers["retry-after"]) >= 1
    assert password.status_code == 429  # passwords stay behind the window


def test_a_user_gets_429_from_any_address_after_its_failures(make_app: MakeApp) -> None:
    app = make_app(login_user_max_failures=3)
    with TestClient(app):
        answers = [client_from(app, f"192.0.2.{n}").get("/api/v1/sites", auth=WRONG).status_code for n in range(3)]
        refused = client_from(app, "198.51.100.1").get("/api/v1/sites", auth=AUTH)
        other_user = client_from(app, "198.51.100.1").get("/api/v1/sites", auth=("bob", "whatever"))

    assert answers == [401, 401, 401]
    assert refused.status_code == 429
    assert 850 <= int(refused.headers["retry-after"]) <= 900
    assert refused.json()["detail"].startswith("too many failed logins for this user; retry in ")
    assert other_user.status_code == 401  # only alice is held back


def test_a_user_who_signed_in_from_an_address_still_gets_in_there_while_strangers_fill_its_window(
    make_app: MakeApp,
) -> None:
    # Otherwise anyone could lock the real admin out of the dashboard, which resends the password each time.
    app = make_app(login_user_max_failures=3)
    home = client_from(app, "198.51.100.7")
    with TestClient(app):
        signed_in = home.get("/api/v1/sites", auth=AUTH).status_code
        strangers = [client_from(app, f"192.0.2.{n}").get("/api/v1/sites", auth=WRONG).status_code for n in range(3)]
        again = [home.get(path, auth=AUTH).status_code for path in ("/api/v1/sites", "/")]
        mistyped = home.get("/api/v1/sites", auth=WRONG).status_code  # the password is still checked
        new_address = client_from(app, "203.0.113.5").get("/api/v1/sites", auth=AUTH)

    assert signed_in == 200
    assert strangers == [401, 401, 401]
    assert again == [200, 200]
    assert mistyped == 401
    assert new_address.status_code == 429
    assert 850 <= int(new_address.headers["retry-after"]) <= 900
    assert new_address.json()["detail"].startswith("too many failed logins for this user; retry in ")


def test_a_success_does_not_reset_the_failures_counted(make_app: MakeApp) -> None:
    # An attacker holding one valid account must not clear its count by signing in between guesses.
    app = make_app(login_client_max_failures=3)
    with TestClient(app) as client:
        answers = [
            client.get("/api/v1/sites", auth=auth).status_code
            for auth in (("mallory", "guess 1"), ("mallory", "guess 2"), AUTH, ("mallory", "guess 3"), AUTH)
        ]
    assert answers == [401, 401, 200, 401, 429]


def test_a_throttled_login_takes_no_database_connection(make_app: MakeApp) -> None:
    app = make_app(login_client_max_failures=2)
    taken = checkouts(app.state.engine)
    with TestClient(app) as client:
        for _ in range(2):
            assert client.get("/api/v1/sites", auth=WRONG).status_code == 401
        before = len(taken)
        answers = [client.get(path, auth=AUTH).status_code for path in ("/api/v1/sites", "/", "/api/v1/health")]

    assert answers == [429, 429, 429]
    assert len(taken) == before


def test_no_connection_is_held_while_a_password_is_checked(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    engine: sa.Engine = app.state.engine
    held_during_check: list[int] = []
    original = cloud.auth.verify_password

    def observed(user: UserRow | None, password: str) -> UserRow | None:
        held_during_check.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        return original(user, password)

    monkeypatch.setattr(cloud.auth, "verify_password", observed)
    with TestClient(app) as client:
        answers = [client.get("/api/v1/sites", auth=auth).status_code for auth in (WRONG, ("nobody", "x"), AUTH)]

    assert answers == [401, 401, 200]
    assert held_during_check == [0, 0, 0]


def test_logins_are_refused_at_once_when_too_many_are_waiting(make_app: MakeApp) -> None:
    app = make_app(login_max_concurrent=1, login_max_waiting=1)

    async def flood() -> list[httpx.Response]:
        # Requests from distinct addresses, so that only the gate can hold them back.
        async def one(n: int) -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=(f"203.0.113.{n}", 1000))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                return await client.get("/api/v1/sites", auth=(f"user-{n}", "wrong"))

        return list(await asyncio.gather(*(one(n) for n in range(6))))

    answers = asyncio.run(flood())

    assert sorted(r.status_code for r in answers) == [401, 401, 429, 429, 429, 429]
    busy = next(r for r in answers if r.status_code == 429)
    assert busy.headers["retry-after"] == "1"
    assert busy.json() == {"detail": "too many logins are being checked right now; retry in 1 s"}


def test_healthz_and_logins_need_no_thread_of_the_api_pool(make_app: MakeApp) -> None:
    # The API's routes run on the default thread pool, which a flood may fill: /healthz and the
    # password check must not wait for it.
    app = make_app()

    async def with_no_threads() -> list[httpx.Response]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            await app.state.probe.probe()  # what the lifespan does at start-up
            with anyio.fail_after(5):
                return [await client.get("/healthz"), await client.get("/api/v1/sites", auth=WRONG)]

    healthz, login = asyncio.run(with_no_threads())

    assert (healthz.status_code, healthz.json()) == (200, {"status": "up"})
    assert login.status_code == 401


def test_health_detail_needs_a_login(make_app: MakeApp) -> None:
    with TestClient(make_app()) as client:
        anonymous = client.get("/api/v1/health")
        logged_in = client.get("/api/v1/health", auth=AUTH)

    assert anonymous.status_code == 401
    assert logged_in.json()["database"] is True


def test_healthz_is_down_while_ingest_cannot_reach_its_broker(db_url: str, engine: sa.Engine) -> None:
    app = create_app(HubSettings(database_url=db_url, mqtt_port=free_port()))
    with TestClient(app) as client:
        with engine.begin() as conn:
            add_user(conn, username=AUTH[0], password_hash=hash_password(AUTH[1]), role="admin", created_at=T0)
        response = client.get("/healthz")
        detail = client.get("/api/v1/health", auth=AUTH).json()

    assert (response.status_code, response.json()) == (503, {"status": "down"})
    assert (detail["status"], detail["database"], detail["ingest"], detail["mqtt_connected"]) == (
        "down",
        True,
        True,
        False,
    )


def test_ingest_has_its_own_connections(make_app: MakeApp) -> None:
    # Every connection of the API's pool is taken by slow requests: ingest and /healthz carry on.
    app = make_app()
    engine: sa.Engine = app.state.engine
    with TestClient(app) as client:
        held = [engine.connect() for _ in range(API_POOL["pool_size"] + API_POOL["max_overflow"])]
        try:
            with app.state.ingest_engine.begin() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            healthz = client.get("/healthz")
        finally:
            for conn in held:
                conn.close()

    assert app.state.ingest_engine is not engine
    assert (healthz.status_code, healthz.json()) == (200, {"status": "up"})


def test_openapi_documents_the_error_answers_of_every_route_behind_the_login(make_app: MakeApp) -> None:
    with TestClient(make_app()) as client:
        paths = client.get("/openapi.json").json()["paths"]

    api_routes = {path: ops for path, ops in paths.items() if path.startswith("/api/v1/")}
    assert set(api_routes) >= {"/api/v1/sites", "/api/v1/stats/box-office", "/api/v1/health"}
    for path, operations in api_routes.items():
        for operation in operations.values():
            responses = operation["responses"]
            assert {"401", "429", "503"} <= set(responses), path
            assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
            assert responses["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }
    assert set(paths["/healthz"]["get"]["responses"]) >= {"200", "503"}


@pytest.mark.parametrize("day", ["1700000000", "1699920000", "20250314", "2025-W11-5", "2025-3-14", "2025-02-30",
                                 "2025-03-14T00:00:00", "yesterday"])
def test_dates_must_be_iso(make_app: MakeApp, day: str) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/api/v1/stats/box-office", params={"group_by": "day", "date_from": day}, auth=AUTH)
        to = client.get("/api/v1/stats/box-office", params={"group_by": "day", "date_to": day}, auth=AUTH)

    assert response.status_code == 422 and to.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["query", "date_from"]
    assert "expected a date as YYYY-MM-DD" in error["msg"]


def test_an_iso_date_is_accepted(make_app: MakeApp) -> None:
    with TestClient(make_app()) as client:
        response = client.get(
            "/api/v1/stats/box-office",
            params={"group_by": "day", "date_from": "2025-03-14", "date_to": "2025-03-15"},
            auth=AUTH,
        )
    assert (response.status_code, response.json()) == (200, [])
