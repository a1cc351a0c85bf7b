"""Browser sessions through a real app and database: the login page, its cookie, CSRF, expiry, logout, the
redirects a browser sees, and that no request after the login runs Argon2."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

import cloud.auth
from cloud.access.keys import load_session_key
from cloud.access.sessions import COOKIE
from cloud.api.app import create_app
from cloud.db.access_tables import hq_audit, sessions
from cloud.db.users import UserRow
from cloud.errors import ConfigError
from cloud.settings import HubSettings
from cloud.web.login import safe_next
from tests.support.hub_users import PASSWORD, bearer, hub_settings, make_token, make_user, sign_in

DRAFT = {"earning": []}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One app over SQLite for the module: an admin (by token) and the analysts ann and bob (by password)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'hub.db'}"
    app = create_app(hub_settings(url), start_ingest=False)
    with TestClient(app):
        engine = app.state.engine
        make_user(engine, "ada", "admin")
        make_user(engine, "ann", "analyst")
        make_user(engine, "bob", "analyst")
        app.state.admin_token = make_token(engine, "ada")
        yield app


@pytest.fixture
def browser(app: FastAPI) -> TestClient:
    """A fresh browser (its own cookies) on the running app."""
    return TestClient(app)


def engine_of(app: FastAPI) -> sa.Engine:
    engine: sa.Engine = app.state.engine
    return engine


def session_rows(app: FastAPI, username: str) -> list[sa.Row[tuple[object, ...]]]:
    with engine_of(app).connect() as conn:
        return list(conn.execute(sa.select(sessions).where(sessions.c.username == username)
                                 .order_by(sessions.c.created_at)))


def test_a_login_sets_a_hardened_cookie_and_goes_to_the_page_asked_for(app: FastAPI, browser: TestClient) -> None:
    page = browser.get("/login", params={"next": "/box-office?from=2025-03-01"})
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "<script" not in page.text
    form_cookie = page.headers["set-cookie"]
    assert "marquee_login=" in form_cookie and "HttpOnly" in form_cookie and "Path=/login" in form_cookie

    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = browser.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token,
                                          "next": "/box-office?from=2025-03-01"}, follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/box-office?from=2025-03-01"
    cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Max-Age=604800" in cookie and "Secure" not in cookie  # 7 days; plain HTTP here
    me = browser.get("/api/v1/users/me").json()
    assert (me["username"], me["role"], me["via"]) == ("ann", "analyst", "session")
    # The table holds a hash of the token, never the token the cookie carries.
    token = browser.cookies[COOKIE].split(".")[0]
    held = {row.token_hash for row in session_rows(app, "ann")}
    assert hashlib.sha256(token.encode()).hexdigest() in held and token not in held


def test_the_cookie_is_secure_over_https_or_when_set_so(app: FastAPI, tmp_path: Path) -> None:
    https = TestClient(app, base_url="https://hub.example")
    sign_in(https, "bob")
    assert https.get("/api/v1/users/me").status_code == 200
    behind_proxy = create_app(hub_settings(f"sqlite:///{tmp_path / 'hub.db'}", cookie_secure=True),
                              start_ingest=False)
    page = TestClient(behind_proxy).get("/login")  # no database needed: no lifespan
    behind_proxy.state.engine.dispose()
    assert "Secure" in page.headers["set-cookie"]


def test_the_login_form_refuses_a_post_without_its_token_and_never_redirects_elsewhere(
    app: FastAPI, browser: TestClient
) -> None:
    forged = browser.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": "x" * 43},
                          follow_redirects=False)
    assert forged.status_code == 403 and "expired" in forged.text
    assert COOKIE not in browser.cookies
    page = browser.get("/login", params={"next": "//evil.example/"})
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = browser.post("/login", data={"username": "bob", "password": PASSWORD, "csrf_token": token,
                                          "next": "//evil.example/"}, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/")


@pytest.mark.parametrize(("asked", "goes"), [
    ("/alerts?state=open", "/alerts?state=open"), ("/", "/"), (None, "/"), ("", "/"),
    ("//evil.example/", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("evil.example", "/"),
    ("javascript:alert(1)", "/"), ("/\r\nSet-Cookie: x=1", "/"), ("/login", "/"), ("/logout", "/"),
    ("/" + "a" * 2001, "/")])
def test_next_is_a_local_path_only(asked: str | None, goes: str) -> None:
    assert safe_next(asked) == goes


def test_a_wrong_password_shows_the_form_again_with_the_name_escaped(browser: TestClient) -> None:
    page = browser.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = browser.post("/login", data={"username": '<img src=x onerror=alert(1)>', "password": "wrong password",
                                          "csrf_token": token})
    assert answer.status_code == 401
    assert "Wrong username or password." in answer.text
    assert "<img" not in answer.text and "&lt;img src=x" in answer.text


def test_unsafe_calls_of_a_session_need_its_csrf_token(app: FastAPI, browser: TestClient) -> None:
    csrf = sign_in(browser, "bob")
    other = TestClient(app)
    other_csrf = sign_in(other, "bob")

    missing = browser.post("/api/v1/rules/validate", json=DRAFT)
    wrong = browser.post("/api/v1/rules/validate", json=DRAFT, headers={"X-CSRF-Token": other_csrf})
    right = browser.post("/api/v1/rules/validate", json=DRAFT, headers={"X-CSRF-Token": csrf})
    reads = browser.get("/api/v1/sites")  # safe methods need none

    assert (missing.status_code, missing.json()) == (403, {"detail": "missing or wrong CSRF token; reload the page"})
    assert wrong.status_code == 403 and csrf != other_csrf
    assert right.status_code == 200 and reads.status_code == 200
    # Scripts' credentials need none, but nothing is done for a request another site made a browser send.
    token = make_token(engine_of(app), "bob")
    assert TestClient(app).post("/api/v1/rules/validate", json=DRAFT, headers=bearer(token)).status_code == 200
    cross = TestClient(app).post("/api/v1/rules/validate", json=DRAFT,
                                 headers={**bearer(token), "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403


def test_logout_needs_the_form_token_ends_the_session_and_is_audited(app: FastAPI, browser: TestClient) -> None:
    csrf = sign_in(browser, "ann")
    cookie = browser.cookies[COOKIE]
    assert browser.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False).status_code == 403
    out = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert COOKIE not in browser.cookies
    replayed = TestClient(app, cookies={COOKIE: cookie}).get("/api/v1/sites")
    assert replayed.status_code == 401 and replayed.json()["detail"] == "your session has ended; sign in again"
    assert replayed.headers["www-authenticate"] == 'Bearer realm="Marquee"'  # no Basic prompt in a browser
    with engine_of(app).connect() as conn:
        actions = [row.action for row in conn.execute(
            sa.select(hq_audit.c.action).where(hq_audit.c.username == "ann").order_by(hq_audit.c.id))]
    assert actions[-2:] == ["login", "logout"]


def test_a_session_ends_when_idle_too_long_or_too_old(app: FastAPI) -> None:
    idle, old = TestClient(app), TestClient(app)
    sign_in(idle, "bob")
    sign_in(old, "bob")
    now = datetime.now(UTC)
    idle_row, old_row = session_rows(app, "bob")[-2:]
    with engine_of(app).begin() as conn:
        conn.execute(sa.update(sessions).where(sessions.c.token_hash == idle_row.token_hash)
                     .values(last_seen_at=now - timedelta(hours=12, minutes=1)))
        conn.execute(sa.update(sessions).where(sessions.c.token_hash == old_row.token_hash)
                     .values(expires_at=now - timedelta(seconds=1)))
    assert idle.get("/api/v1/sites").status_code == 401
    assert old.get("/api/v1/sites").status_code == 401


def test_last_seen_is_written_at_most_once_a_minute(app: FastAPI, browser: TestClient) -> None:
    sign_in(browser, "ann")
    first = session_rows(app, "ann")[-1]
    for _ in range(5):
        assert browser.get("/api/v1/users/me").status_code == 200
    assert session_rows(app, "ann")[-1].last_seen_at == first.last_seen_at
    with engine_of(app).begin() as conn:
        conn.execute(sa.update(sessions).where(sessions.c.token_hash == first.token_hash)
                     .values(last_seen_at=first.last_seen_at - timedelta(minutes=2)))
    browser.get("/api/v1/users/me")
    assert session_rows(app, "ann")[-1].last_seen_at > first.last_seen_at - timedelta(seconds=1)


def test_a_password_change_ends_the_users_sessions(app: FastAPI, browser: TestClient) -> None:
    sign_in(browser, "bob")
    assert browser.get("/api/v1/sites").status_code == 200
    changed = TestClient(app).patch("/api/v1/users/bob", json={"password": PASSWORD},
                                    headers=bearer(app.state.admin_token))
    assert changed.status_code == 200 and changed.json()["sessions"] == 0
    assert browser.get("/api/v1/sites").status_code == 401


def test_a_browser_without_a_session_is_sent_to_the_login_page_and_scripts_get_401(browser: TestClient) -> None:
    page = browser.get("/", headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
    api = browser.get("/api/v1/sites", headers={"Accept": "text/html"})
    script = browser.get("/")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/")
    assert api.status_code == 401 and script.status_code == 401
    assert script.headers["www-authenticate"] == 'Basic realm="Marquee"'


def test_no_request_after_a_login_runs_argon2(app: FastAPI, browser: TestClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[UserRow | None] = []
    original = cloud.auth.verify_password

    def counted(user: UserRow | None, password: str) -> UserRow | None:
        checks.append(user)
        return original(user, password)

    monkeypatch.setattr(cloud.auth, "verify_password", counted)
    make_user(engine_of(app), "cy", "analyst")
    make_user(engine_of(app), "dee", "analyst")
    sign_in(browser, "cy")
    token = make_token(engine_of(app), "cy")
    script = TestClient(app)
    for _ in range(40):
        assert browser.get("/api/v1/users/me").status_code == 200
        assert script.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
        assert script.get("/api/v1/users/me", auth=("dee", PASSWORD)).status_code == 200
    assert [user.username if user else None for user in checks] == ["cy", "dee"]  # cy's login, dee's first request


def test_the_session_key_file_is_created_private_and_shared_by_hub_processes(
    app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARQUEE_HUB_SESSION_KEY", raising=False)  # the suite's own key (tests/conftest.py)
    key_file = tmp_path / "session.key"
    url = str(engine_of(app).url)  # the module's database, migrated already
    first = create_app(HubSettings(database_url=url, session_key_file=key_file), start_ingest=False)
    second = create_app(HubSettings(database_url=url, session_key_file=key_file), start_ingest=False)
    try:
        one, two = TestClient(first), TestClient(second)
        assert not key_file.exists()  # made on first use, not at start
        sign_in(one, "ann")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        two.cookies.set(COOKIE, one.cookies[COOKIE])
        assert two.get("/api/v1/users/me").json()["username"] == "ann"
    finally:
        for each in (first, second):
            each.state.engine.dispose()
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_session_key(None, key_file)


def test_pages_carry_the_security_headers_and_static_files_are_served(browser: TestClient) -> None:
    login, css, docs = browser.get("/login"), browser.get("/static/base.css"), browser.get("/docs")
    assert login.headers["x-frame-options"] == "DENY" and login.headers["x-content-type-options"] == "nosniff"
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "content-security-policy" not in css.headers
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers  # FastAPI's viewer, a CDN's
