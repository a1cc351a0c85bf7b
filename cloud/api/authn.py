"""Who is asking: an API bearer token, HTTP Basic, or a browser session cookie; never Argon2 per request.

- Bearer `mq_<id>_<secret>`: one indexed read by id, the secret's SHA-256 compared in constant time.
- Basic: Argon2 once (through the login windows and the gate of `login_guard`), then the pair is remembered
  in memory for a few minutes (`cloud.access.basic_cache`), each later request costing one indexed read.
- Session cookie: its signature checked first, then one indexed read; an unsafe method (POST, PUT, PATCH,
  DELETE) must carry the session's CSRF token (the `X-CSRF-Token` header, or a form's `csrf_token` field).

Every password check, from Basic or the login form, goes through `check_password`: the windows per address
and per username, the gate, and the lockout kept in the database.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials

from cloud.access.basic_cache import VerifiedPasswords
from cloud.access.keys import SessionKey, load_session_key
from cloud.access.lockout import LockoutPolicy, record_success
from cloud.access.sessions import SessionPolicy, csrf_token, session_user, token_of_cookie
from cloud.access.tokens import parse_token, token_user
from cloud.api.login_guard import LoginGuard, LoginRefused, Refusal, VerifyGate, client_key
from cloud.auth import LoginOutcome, check_login
from cloud.db.users import UserRow, get_user
from cloud.errors import ConfigError
from cloud.ingest.counters import Throttle
from cloud.settings import HubSettings

log = logging.getLogger(__name__)

REALM = "Marquee"
MAX_USERNAME_LENGTH = 64
"""The users table holds names of at most 64 characters: a longer one cannot exist, no Argon2 run for it."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

Via = Literal["basic", "session", "token"]

# A flood from many addresses would otherwise write one line per address per minute.
_blocked_log = Throttle(log)
_busy_log = Throttle(log)
_key_log = Throttle(log)


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated request: its user, how they proved it, and (sessions) the CSRF token of their forms."""

    user: UserRow
    via: Via
    csrf_token: str | None = None


class AccessState:
    """What one app needs to authenticate: the policies from its settings, the Basic cache, the session key
    (read, or created, on first use)."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.lockout = LockoutPolicy(settings.lockout_failures, timedelta(minutes=settings.lockout_minutes))
        self.sessions = SessionPolicy(idle=timedelta(minutes=settings.session_idle_minutes),
                                      lifetime=timedelta(days=settings.session_max_days))
        self.passwords = VerifiedPasswords(ttl=settings.basic_cache_seconds)
        self._key: SessionKey | None = None

    def key(self) -> SessionKey:
        """The session key; 503 when it can be neither read nor created (the reason is logged)."""
        if self._key is None:
            try:
                self._key = load_session_key(self.settings.session_key, self.settings.session_key_file)
            except ConfigError as exc:
                _key_log.warning("no session key: %s", exc)
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        return self._key


def access_of(request: Request) -> AccessState:
    """The app's access state (made on first use: one per app)."""
    state: AccessState | None = getattr(request.app.state, "access", None)
    if state is None:
        state = request.app.state.access = AccessState(request.app.state.settings)
    return state


def client_of(request: Request) -> str:
    """The key the login windows count this client under."""
    return client_key(request.client.host if request.client else None)


async def identify(request: Request, *, basic: HTTPBasicCredentials | None,
                   bearer: HTTPAuthorizationCredentials | None, cookie: str | None) -> Identity:
    """The identity a request proves; 401 (no or bad credentials), 403 (cross-site, or CSRF), 429 (throttled)."""
    if request.method not in SAFE_METHODS and request.headers.get("sec-fetch-site") == "cross-site":
        # A browser sends this on a request another site made it send: never an HQ action.
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site requests are refused")
    if bearer is not None:
        return Identity(await _token_user(request, bearer.credentials), "token")
    if basic is not None:
        return Identity(await _basic_user(request, basic), "basic")
    if request.headers.get("authorization"):
        raise unauthorized(request)
    if cookie:
        return await _session(request, cookie)
    raise unauthorized(request)


def unauthorized(request: Request, detail: str = "authentication required") -> HTTPException:
    """401 with a challenge: Basic for scripts; for a browser a scheme it will not prompt for (a Basic prompt
    would have it send the password with every request, cross-site ones too)."""
    browser = "sec-fetch-mode" in request.headers or "cookie" in request.headers
    scheme = "Bearer" if browser else "Basic"
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail,
                         headers={"WWW-Authenticate": f'{scheme} realm="{REALM}"'})


def locked_detail(until: datetime) -> str:
    """What a locked account is told, whatever password it gave."""
    return (f"this account is locked until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC after too many wrong "
            "passwords; ask an admin to unlock it")


def too_many(refusal: Refusal, gate: VerifyGate) -> HTTPException:
    """429 with Retry-After for a refused login."""
    if refusal.reason == "busy":
        _busy_log.warning("too many logins at once (%d checking or queued): refusing new ones with 429", gate.admitted)
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, refusal.detail,
                         headers={"Retry-After": str(refusal.retry_after)})


async def check_password(request: Request, *, username: str, password: str, via: Via) -> LoginOutcome:
    """Check a password under the login windows, the gate and the lockout; LoginRefused when throttled."""
    guard: LoginGuard = request.app.state.login_guard
    gate: VerifyGate = request.app.state.login_gate
    engine: sa.Engine = request.app.state.engine
    access = access_of(request)
    client = client_of(request)
    possible = len(username) <= MAX_USERNAME_LENGTH

    def refusal() -> Refusal | None:
        return guard.check(client=client, username=username, now=time.monotonic())

    refused = refusal()
    if refused is not None:
        raise LoginRefused(refused)
    outcome = LoginOutcome(None)
    if possible:
        check = functools.partial(_check_now, engine, username=username, password=password, policy=access.lockout,
                                  via=via, client=client)
        outcome = await gate.run(check, recheck=refusal)
    if outcome.user is not None:
        # So that a stranger's failures for this username do not lock this address out.
        guard.record_success(client=client, username=username, now=time.monotonic())
        return outcome
    blocked = guard.record_failure(client=client, username=username if possible else None, now=time.monotonic())
    if "client" in blocked:
        _blocked_log.warning("refusing logins from %s for %d s after %d failures", client, guard.clients.window,
                             guard.clients.limit)
    if "user" in blocked:
        # A username may be an e-mail address: never logged whole.
        _blocked_log.warning("refusing logins for user %s for %d s after %d failures", _masked(username),
                             guard.users.window, guard.users.limit)
    return outcome


def _check_now(engine: sa.Engine, **arguments: object) -> LoginOutcome:
    # The time of the check itself, not of the request: it may have waited for a slot of the gate.
    return check_login(engine, now=datetime.now(UTC), **arguments)  # type: ignore[arg-type]


async def _basic_user(request: Request, credentials: HTTPBasicCredentials) -> UserRow:
    guard: LoginGuard = request.app.state.login_guard
    gate: VerifyGate = request.app.state.login_gate
    access = access_of(request)
    client = client_of(request)
    username, password = credentials.username, credentials.password
    refused = guard.check(client=client, username=username, now=time.monotonic())
    if refused is not None:
        raise too_many(refused, gate)
    verified = access.passwords.get(username, password, now=time.monotonic())
    if verified is not None:
        user = await run_in_threadpool(_read_user, request.app.state.engine, username)
        if (user is not None and hmac.compare_digest(user.password_hash, verified) and user.disabled_at is None
                and not user.locked(datetime.now(UTC))):
            guard.record_success(client=client, username=username, now=time.monotonic())
            if user.failed_logins:  # a right password, even remembered, ends a run of wrong ones
                await run_in_threadpool(_reset_failures, request.app.state.engine, username)
            return user
        access.passwords.forget(username, password)
    try:
        outcome = await check_password(request, username=username, password=password, via="basic")
    except LoginRefused as exc:
        raise too_many(exc.refusal, gate) from None
    if outcome.user is None:
        raise unauthorized(request, locked_detail(outcome.locked_until) if outcome.locked_until else
                           "authentication required")
    access.passwords.put(username, password, outcome.user.password_hash, now=time.monotonic())
    return outcome.user


def _reset_failures(engine: sa.Engine, username: str) -> None:
    with engine.begin() as conn:
        record_success(conn, username=username)


def _read_user(engine: sa.Engine, username: str) -> UserRow | None:
    with engine.connect() as conn:
        return get_user(conn, username=username)


async def _token_user(request: Request, text: str) -> UserRow:
    guard: LoginGuard = request.app.state.login_guard
    gate: VerifyGate = request.app.state.login_gate
    client = client_of(request)
    # A valid token is taken from an address whose logins are throttled too (a BI tool behind the office's NAT
    # while someone there mistypes a password); a wrong one from such an address gets 429, uncounted.
    parsed = parse_token(text)
    user = None
    if parsed is not None:
        user = await run_in_threadpool(_read_token_user, request.app.state.engine, *parsed)
    if user is not None:
        return user
    wait = guard.clients.retry_after(client, now=time.monotonic())
    if wait is not None:
        raise too_many(Refusal("client", max(1, int(wait + 0.999))), gate)
    guard.record_failure(client=client, username=None, now=time.monotonic())
    raise unauthorized(request, "unknown, expired or revoked token")


def _read_token_user(engine: sa.Engine, token_id: str, secret: str) -> UserRow | None:
    with engine.connect() as conn:
        return token_user(conn, token_id=token_id, secret=secret, now=datetime.now(UTC))


async def _session(request: Request, cookie: str) -> Identity:
    access = access_of(request)
    key = access.key()
    token = token_of_cookie(key, cookie)
    user = None
    if token is not None:
        user = await run_in_threadpool(_read_session_user, request.app.state.engine, token, access.sessions)
    if token is None or user is None:
        raise unauthorized(request, "your session has ended; sign in again")
    expected = csrf_token(key, token)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
            field = (await request.form()).get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
        if sent is None or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token; reload the page")
    return Identity(user, "session", expected)


def _read_session_user(engine: sa.Engine, token: str, policy: SessionPolicy) -> UserRow | None:
    with engine.connect() as conn:
        return session_user(conn, token=token, now=datetime.now(UTC), policy=policy)


def _masked(username: str) -> str:
    return username[:2] + "***"
