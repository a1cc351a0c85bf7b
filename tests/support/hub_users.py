"""Hub users for tests: create one of a role (a site manager with sites), sign in through /login as a browser
does, issue an API token. Argon2 runs once per distinct password in a test process, never per user."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from cloud.access.tokens import issue_token
from cloud.auth import hash_password
from cloud.db.users import add_user
from cloud.settings import HubSettings

PASSWORD = "correct horse battery"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def hub_settings(database_url: str, **settings: Any) -> HubSettings:
    """Settings for a test app: a random session key (no key file written where the tests run)."""
    return HubSettings(database_url=database_url, session_key=SecretStr(secrets.token_urlsafe(32)), **settings)


@functools.cache
def password_hash(password: str = PASSWORD) -> str:
    """The Argon2 hash of `password`, computed once per test process."""
    return hash_password(password)


def make_user(engine: sa.Engine, username: str, role: str, *, sites: Sequence[str] | None = None,
              password: str = PASSWORD) -> tuple[str, str]:
    """Create a user (a site manager needs `sites`); their (username, password), as `auth=` takes it."""
    with engine.begin() as conn:
        add_user(conn, username=username, password_hash=password_hash(password), role=role,
                 created_at=datetime.now(UTC), sites=sites)
    return username, password


def sign_in(client: httpx.Client, username: str, password: str = PASSWORD, *, next_path: str = "/") -> str:
    """Sign in through the login form (a TestClient or an httpx.Client with a base_url keep the cookie); the
    session's CSRF token, for the `X-CSRF-Token` header of unsafe calls."""
    page = client.get("/login", params={"next": next_path})
    assert page.status_code == 200, page.text
    match = _CSRF_FIELD.search(page.text)
    assert match is not None, "no csrf_token field on the login page"
    answer = client.post("/login", data={"username": username, "password": password, "csrf_token": match.group(1),
                                         "next": next_path}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    me = client.get("/api/v1/users/me")
    assert me.status_code == 200, me.text
    token: str = me.json()["csrf_token"]
    return token


def make_token(engine: sa.Engine, username: str, *, name: str = "test", days: int | None = None) -> str:
    """An API token acting as `username` (`Authorization: Bearer <token>`)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        text, _ = issue_token(conn, username=username, name=name, created_by="tests", now=now,
                              expires_at=now + timedelta(days=days) if days else None)
    return text


def bearer(token: str) -> dict[str, str]:
    """The headers of a request made with `token`."""
    return {"Authorization": f"Bearer {token}"}


def hq_actions(engine: sa.Engine, prefix: str = "") -> list[tuple[str, str | None, str]]:
    """(action, target, username) of the HQ audit log, oldest first; of the actions starting with `prefix`."""
    from cloud.db.access_tables import hq_audit

    with engine.connect() as conn:
        rows = conn.execute(sa.select(hq_audit.c.action, hq_audit.c.target, hq_audit.c.username)
                            .where(hq_audit.c.action.startswith(prefix)).order_by(hq_audit.c.id))
        return [(row.action, row.target, row.username) for row in rows]
