"""FastAPI dependencies, as `Annotated` aliases: settings, the viewer (who asks, what they may see), a connection.

Order is the point: a connection is handed out only after the caller is authenticated (`get_conn` depends on
`get_viewer`), so bad credentials never hold a pool connection while Argon2 runs, and a throttled login costs
neither a connection nor Argon2. How a request is authenticated is `cloud.api.authn`'s business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from cloud.access.sessions import COOKIE
from cloud.api.authn import REALM, Identity, Via, client_of, identify
from cloud.api.schemas import ErrorOut
from cloud.settings import HubSettings

__all__ = ["REALM", "Via"]

_basic = HTTPBasic(realm=REALM, auto_error=False, description="A user's name and password (scripts).")
_bearer = HTTPBearer(auto_error=False, description="An API token an admin issued: `mq_<id>_<secret>`.")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False,
                       description="A browser session from /login; unsafe methods need the X-CSRF-Token header.")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "No credentials, wrong or expired ones, or a locked account (the detail says until when).",
        "headers": {"WWW-Authenticate": {"description": "Basic challenge (Bearer for a browser)",
                                         "schema": {"type": "string"}}},
    },
    403: {"model": ErrorOut, "description": "The user's role or sites do not cover this, or (a browser session) "
                                            "the CSRF token is missing or wrong."},
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


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, and what they may see: every route takes one (`ViewerDep`) and scopes by it.

    `sites` is None for the roles that see every site (admin, analyst); a site manager's sites otherwise.
    `csrf_token` is the token a browser session's forms and fetch() calls send back (None without a session).
    """

    username: str
    role: str
    sites: frozenset[str] | None
    via: Via = "basic"
    client: str | None = None
    csrf_token: str | None = None

    def sees(self, site_id: str | None) -> bool:
        """True when this viewer may see `site_id`'s data (chain-wide data, site None: unscoped roles only)."""
        if self.sites is None:
            return True
        return site_id is not None and site_id in self.sites

    def check_site(self, site_id: str | None) -> None:
        """403 unless this viewer may see `site_id`."""
        if not self.sees(site_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this site is not one of yours")

    def scope(self, site_id: str | None = None) -> frozenset[str] | None:
        """The sites a query is limited to: `site_id` when asked for (403 when not this viewer's), else the
        viewer's sites; None means every site."""
        if site_id is not None:
            self.check_site(site_id)
            return frozenset((site_id,))
        return self.sites

    def require(self, *roles: str) -> None:
        """403 unless this viewer's role is one of `roles`."""
        if self.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the role {' or '.join(roles)}")


def viewer_of(identity: Identity, client: str | None) -> Viewer:
    """The viewer an identity makes; 403 for a site manager without sites (they would see nothing)."""
    user = identity.user
    sites = frozenset(user.sites or ()) if user.role == "site_manager" else None
    if sites is not None and not sites:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a site manager without sites sees nothing")
    return Viewer(user.username, user.role, sites, identity.via, client, identity.csrf_token)


async def get_viewer(
    request: Request,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Viewer:
    """The viewer of this request: 401 without valid credentials (a browser asking for a page outside /api is
    sent to /login instead), 403 (cross-site, CSRF, a site manager without sites), 429 (logins throttled)."""
    known: Viewer | None = getattr(request.state, "viewer", None)
    if known is not None:
        return known
    try:
        identity = await identify(request, basic=basic, bearer=bearer, cookie=cookie)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and _wants_page(request):
            raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first",
                                headers={"Location": login_url(request)}) from None
        raise
    viewer = viewer_of(identity, client_of(request))
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


async def get_analyst(viewer: ViewerDep) -> Viewer:
    """The viewer when an admin or analyst (chain-wide work: rules, members, exports of every site); else 403."""
    viewer.require("admin", "analyst")
    return viewer


async def get_admin(viewer: ViewerDep) -> Viewer:
    """The viewer when an admin; else 403."""
    viewer.require("admin")
    return viewer


AnalystDep = Annotated[Viewer, Depends(get_analyst)]
AdminDep = Annotated[Viewer, Depends(get_admin)]


async def get_page_viewer(viewer: ViewerDep) -> Viewer:
    """The viewer of a dashboard page: a browser without a session is sent to /login?next=<the page>."""
    return viewer


PageViewerDep = Annotated[Viewer, Depends(get_page_viewer)]


def get_conn(engine: EngineDep, viewer: ViewerDep) -> Iterator[sa.Connection]:
    """A connection for one authenticated request, returned to the pool afterwards (read-only use)."""
    with engine.connect() as conn:
        yield conn


ConnDep = Annotated[sa.Connection, Depends(get_conn)]


def login_url(request: Request) -> str:
    """/login, with `next` the page asked for (a local path: the login page redirects nowhere else)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='/')}"


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")
