"""FastAPI dependencies, as `Annotated` aliases: settings, the current user, a database connection.

Order is the point: a connection is handed out only after the caller is authenticated (`get_conn`
depends on `get_current_user`), so bad credentials never hold a pool connection while Argon2 runs, and
a throttled login costs neither a connection nor Argon2.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from cloud.api.login_guard import LoginGuard, LoginRefused, Refusal, VerifyGate, client_key
from cloud.api.schemas import ErrorOut
from cloud.auth import ENFORCED_ROLES, UNSCOPED_ROLE_REFUSAL, authenticate
from cloud.db.users import UserRow
from cloud.ingest.counters import Throttle
from cloud.settings import HubSettings

log = logging.getLogger(__name__)

REALM = "Marquee"
MAX_USERNAME_LENGTH = 64
"""The users table holds names of at most 64 characters: a longer one cannot exist, no Argon2 run for it."""

_basic = HTTPBasic(realm=REALM, auto_error=False)
# A flood from many addresses would otherwise write one line per address per minute.
_blocked_log = Throttle(log)
_busy_log = Throttle(log)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "No credentials, or wrong ones (HTTP Basic).",
        "headers": {"WWW-Authenticate": {"description": "Basic challenge", "schema": {"type": "string"}}},
    },
    403: {"model": ErrorOut, "description": "The user's role cannot use the API yet."},
    429: {
        "model": ErrorOut,
        "description": "Too many failed logins from this address or for this user, or too many logins "
        "being checked at once; the password was not checked.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
        },
    },
    503: {"model": ErrorOut, "description": "The database is unavailable."},
}
"""The error answers of every route behind a login, for the OpenAPI document."""


# The accessors are async on purpose: FastAPI runs a sync dependency on the thread pool, and a trivial
# attribute read is not worth a thread hop (nor a wait for a thread when the pool is busy).
async def get_settings(request: Request) -> HubSettings:
    """The settings the app was created with."""
    settings: HubSettings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> sa.Engine:
    """The API's engine (ingest has its own, so the API can never make it wait for a connection)."""
    engine: sa.Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[HubSettings, Depends(get_settings)]
EngineDep = Annotated[sa.Engine, Depends(get_engine)]


async def get_current_user(
    request: Request,
    engine: EngineDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> UserRow:
    """The user named by HTTP Basic credentials; 401 with a Basic challenge otherwise, 429 when logins
    are throttled (the password is then not checked; a username's limit spares the addresses it signed
    in from lately), 403 for a role the hub cannot enforce yet."""
    if credentials is None:
        raise _unauthorized()
    guard: LoginGuard = request.app.state.login_guard
    gate: VerifyGate = request.app.state.login_gate
    client = client_key(request.client.host if request.client else None)
    username = credentials.username
    possible = len(username) <= MAX_USERNAME_LENGTH

    def refusal() -> Refusal | None:
        return guard.check(client=client, username=username, now=time.monotonic())

    user: UserRow | None = None
    try:
        refused = refusal()
        if refused is not None:
            raise LoginRefused(refused)
        if possible:
            check = functools.partial(
                authenticate, engine, username=username, password=credentials.password
            )
            user = await gate.run(check, recheck=refusal)
    except LoginRefused as exc:
        raise _too_many(exc.refusal, gate) from None
    if user is None:
        blocked = guard.record_failure(
            client=client, username=username if possible else None, now=time.monotonic()
        )
        if "client" in blocked:
            _blocked_log.warning(
                "refusing logins from %s for %d s after %d failures",
                client,
                guard.clients.window,
                guard.clients.limit,
            )
        if "user" in blocked:
            # A username may be an e-mail address: never logged whole.
            _blocked_log.warning(
                "refusing logins for user %s for %d s after %d failures",
                _masked(username),
                guard.users.window,
                guard.users.limit,
            )
        raise _unauthorized()
    if user.role not in ENFORCED_ROLES:
        # A site manager would otherwise see every site: refuse until site scoping exists.
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail=UNSCOPED_ROLE_REFUSAL.format(role=user.role)
        )
    # So that a stranger's failures for this username do not lock this address out.
    guard.record_success(client=client, username=username, now=time.monotonic())
    return user


CurrentUser = Annotated[UserRow, Depends(get_current_user)]


def get_conn(engine: EngineDep, user: CurrentUser) -> Iterator[sa.Connection]:
    """A connection for one authenticated request, returned to the pool afterwards (read-only use)."""
    with engine.connect() as conn:
        yield conn


ConnDep = Annotated[sa.Connection, Depends(get_conn)]


def _unauthorized() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="authentication required",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
    )


def _too_many(refusal: Refusal, gate: VerifyGate) -> HTTPException:
    if refusal.reason == "busy":
        _busy_log.warning(
            "too many logins at once (%d checking or queued): refusing new ones with 429", gate.admitted
        )
    return HTTPException(
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        detail=refusal.detail,
        headers={"Retry-After": str(refusal.retry_after)},
    )


def _masked(username: str) -> str:
    return username[:2] + "***"
