"""Lockout: wrong passwords in a row lock an account in the database (SQLite and PostgreSQL), for every hub
process, until it expires or an admin unlocks it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

import cloud.auth
from cloud.access.lockout import LockoutPolicy, record_failure, record_success
from cloud.api.app import create_app
from cloud.db.access_tables import hq_audit
from cloud.db.users import UserRow, get_user
from tests.support.hub_users import PASSWORD, bearer, hub_settings, make_token, make_user

POLICY = LockoutPolicy(failures=3, duration=timedelta(minutes=15))
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_wrong_passwords_in_a_row_lock_once_and_a_right_one_resets_the_count(engine: sa.Engine) -> None:
    make_user(engine, "ann", "analyst")

    def fail(at: datetime) -> datetime | None:
        with engine.begin() as conn:
            return record_failure(conn, username="ann", now=at, policy=POLICY)

    assert [fail(NOW), fail(NOW)] == [None, None]
    with engine.begin() as conn:
        record_success(conn, username="ann")
    assert [fail(NOW), fail(NOW)] == [None, None]  # counted from 0 again
    assert fail(NOW) == NOW + POLICY.duration
    assert fail(NOW + timedelta(minutes=1)) is None  # locked already: neither counted nor locked again
    with engine.connect() as conn:
        user = get_user(conn, username="ann")
    assert user is not None and user.locked(NOW + timedelta(minutes=14)) and not user.locked(NOW + POLICY.duration)
    later = NOW + POLICY.duration
    assert [fail(later), fail(later), fail(later)] == [None, None, later + POLICY.duration]
    with engine.begin() as conn:  # an unknown name changes nothing
        assert record_failure(conn, username="nobody", now=NOW, policy=POLICY) is None


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[tuple[FastAPI, FastAPI]]:
    """Two hub processes' apps over one database, locking after 2 wrong passwords (SQLite: the statements are
    the ones tested on both databases above)."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    apps = [create_app(hub_settings(url, lockout_failures=2, lockout_minutes=15), start_ingest=False)
            for _ in range(2)]
    with TestClient(apps[0]):
        make_user(apps[0].state.engine, "ada", "admin")
        make_user(apps[0].state.engine, "ann", "analyst")
        yield apps[0], apps[1]
    apps[1].state.engine.dispose()


def test_a_lock_holds_on_every_hub_process_for_the_right_password_too_until_an_admin_unlocks(
    hubs: tuple[FastAPI, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = TestClient(hubs[0]), TestClient(hubs[1])
    checks: list[UserRow | None] = []
    original = cloud.auth.verify_password

    def counted(user: UserRow | None, password: str) -> UserRow | None:
        checks.append(user)
        return original(user, password)

    monkeypatch.setattr(cloud.auth, "verify_password", counted)
    wrong = [one.get("/api/v1/users/me", auth=("ann", "wrong guess 1")),
             two.get("/api/v1/users/me", auth=("ann", "wrong guess 2"))]
    right = one.get("/api/v1/users/me", auth=("ann", PASSWORD))
    page = one.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = one.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token})

    assert [answer.status_code for answer in wrong] == [401, 401]
    assert wrong[0].json()["detail"] == "authentication required"
    assert wrong[1].json()["detail"].startswith("this account is locked until ")  # this one locked it
    assert right.status_code == 401
    assert right.json()["detail"].endswith("after too many wrong passwords; ask an admin to unlock it")
    assert form.status_code == 401 and "locked until" in form.text and "ask an admin" in form.text
    assert len(checks) == 2  # the locked account's attempts ran no Argon2
    with hubs[0].state.engine.connect() as conn:
        locks = conn.execute(sa.select(hq_audit.c.username, hq_audit.c.via)
                             .where(hq_audit.c.action == "user.lock")).all()
    assert [tuple(row) for row in locks] == [("ann", "basic")]
    listed = one.get("/api/v1/users", headers=bearer(make_token(hubs[0].state.engine, "ada"))).json()
    assert next(user for user in listed if user["username"] == "ann")["locked_until"] is not None

    unlocked = two.post("/api/v1/users/ann/unlock", headers=bearer(make_token(hubs[0].state.engine, "ada")))
    assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
    assert two.get("/api/v1/users/me", auth=("ann", PASSWORD)).status_code == 200


def test_an_unlock_also_ends_this_processs_rate_limit_for_the_user(tmp_path: Path) -> None:
    """When the username's failure window is as short as the lockout, unlocking must not leave a 429 behind."""
    app = create_app(hub_settings(f"sqlite:///{tmp_path / 'hub.db'}", lockout_failures=3, login_user_max_failures=3),
                     start_ingest=False)
    with TestClient(app) as client:
        make_user(app.state.engine, "ada", "admin")
        make_user(app.state.engine, "ann", "analyst")
        assert [client.get("/api/v1/users/me", auth=("ann", f"guess {n}")).status_code for n in range(3)] == [
            401, 401, 401]
        assert client.get("/api/v1/users/me", auth=("ann", PASSWORD)).status_code == 429  # the window is full
        admin = bearer(make_token(app.state.engine, "ada"))
        assert client.post("/api/v1/users/ann/unlock", headers=admin).status_code == 200
        assert client.get("/api/v1/users/me", auth=("ann", PASSWORD)).status_code == 200
    app.state.engine.dispose()
