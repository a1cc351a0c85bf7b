"""FastAPI dependencies, as `Annotated` aliases: settings, a database connection, the current user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from cloud.auth import ENFORCED_ROLES, UNSCOPED_ROLE_REFUSAL, authenticate
from cloud.db.users import UserRow
from cloud.settings import HubSettings

REALM = "Marquee"
_basic = HTTPBasic(realm=REALM, auto_error=False)


def get_settings(request: Request) -> HubSettings:
    """The settings the app was created with."""
    settings: HubSettings = request.app.state.settings
    return settings


def get_engine(request: Request) -> sa.Engine:
    """The app's engine."""
    engine: sa.Engine = request.app.state.engine
    return engine


def get_conn(engine: Annotated[sa.Engine, Depends(get_engine)]) -> Iterator[sa.Connection]:
    """A connection for one request, returned to the pool afterwards (read-only use: no commit)."""
    with engine.connect() as conn:
        yield conn


SettingsDep = Annotated[HubSettings, Depends(get_settings)]
EngineDep = Annotated[sa.Engine, Depends(get_engine)]
ConnDep = Annotated[sa.Connection, Depends(get_conn)]


def get_current_user(
    conn: ConnDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> UserRow:
    """The user named by HTTP Basic credentials; 401 with a Basic challenge otherwise, 403 for a role
    the hub cannot enforce yet."""
    user = None
    if credentials is not None:
        user = authenticate(conn, username=credentials.username, password=credentials.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="authentication required",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
        )
    if user.role not in ENFORCED_ROLES:
        # A site manager would otherwise see every site: refuse until site scoping exists.
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail=UNSCOPED_ROLE_REFUSAL.format(role=user.role)
        )
    return user


CurrentUser = Annotated[UserRow, Depends(get_current_user)]
