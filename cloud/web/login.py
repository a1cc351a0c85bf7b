"""The login page and logout: browser sessions (a signed cookie), the password checked once per login.

The form is protected by a signed double-submit token: GET /login sets a random nonce in a cookie and puts its
HMAC in the form; POST /login takes the form only when they match, so another site cannot sign a browser in
(to an account of its own). After login the browser goes to `next`, a local path only (never another site).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.access.audit import Operator, record_action
from cloud.access.sessions import (
    COOKIE,
    SessionPolicy,
    cookie_value,
    new_token,
    open_session,
    revoke_session,
    token_of_cookie,
)
from cloud.api.authn import access_of, check_password, client_of, locked_detail
from cloud.api.deps import Viewer, ViewerDep
from cloud.api.login_guard import LoginRefused
from cloud.db.users import UserRow
from cloud.web.templating import templates

router = APIRouter(tags=["access"], include_in_schema=False)

LOGIN_COOKIE = "marquee_login"
_LOGIN_PURPOSE = "login"
MAX_NEXT = 2000
NO_STORE = {"Cache-Control": "no-store"}


def safe_next(value: str | None) -> str:
    """`value` when it is a path of this hub (not the login page itself), else "/": never another site."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 0x20 or char in "\\\x7f" for char in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return value


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or access_of(request).settings.cookie_secure


def _form(request: Request, *, next_path: str, username: str = "", message: str | None = None, tone: str = "bad",
          status_code: int = status.HTTP_200_OK, headers: dict[str, str] | None = None) -> HTMLResponse:
    """The login page with a fresh double-submit token (its nonce in a cookie, its signature in the form)."""
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(
        request, "login.html",
        {"csrf_token": access_of(request).key().sign(_LOGIN_PURPOSE, nonce), "next": next_path, "username": username,
         "message": message, "tone": tone},
        status_code=status_code, headers={**NO_STORE, **(headers or {})})
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/login", httponly=True, samesite="lax",
                        secure=_secure(request))
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request,
                     next: Annotated[str | None, Query(max_length=MAX_NEXT)] = None) -> HTMLResponse:
    """The sign-in form."""
    return _form(request, next_path=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=1024)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=MAX_NEXT)] = "/",
) -> Response:
    """Check the password once (login windows, gate, lockout), open a session, go to `next`."""
    access = access_of(request)
    key = access.key()
    target = safe_next(next)
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not key.check(_LOGIN_PURPOSE, nonce, csrf_token):
        return _form(request, next_path=target, username=username[:64], status_code=status.HTTP_403_FORBIDDEN,
                     message="This sign-in form had expired (or came from elsewhere); please sign in again.")
    try:
        outcome = await check_password(request, username=username, password=password, via="session")
    except LoginRefused as exc:
        return _form(request, next_path=target, username=username[:64], status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                     message=exc.refusal.detail.capitalize() + ".", tone="warn",
                     headers={"Retry-After": str(exc.refusal.retry_after)})
    if outcome.user is None:
        if outcome.locked_until is not None:
            return _form(request, next_path=target, username=username[:64], tone="warn",
                         status_code=status.HTTP_401_UNAUTHORIZED, message=locked_detail(outcome.locked_until)
                         .capitalize() + ".")
        return _form(request, next_path=target, username=username[:64], status_code=status.HTTP_401_UNAUTHORIZED,
                     message="Wrong username or password.")
    token = new_token()
    await run_in_threadpool(_open, request.app.state.engine, outcome.user, token, access.sessions, client_of(request),
                            request.headers.get("user-agent"))
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER, headers=NO_STORE)
    response.set_cookie(COOKIE, cookie_value(key, token), max_age=int(access.sessions.lifetime.total_seconds()),
                        path="/", httponly=True, samesite="lax", secure=_secure(request))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _open(engine: sa.Engine, user: UserRow, token: str, policy: SessionPolicy, client: str,
          user_agent: str | None) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        open_session(conn, token=token, username=user.username, now=now, policy=policy, client=client,
                     user_agent=user_agent)
        record_action(conn, actor=Operator(username=user.username, role=user.role, via="session", client=client),
                      action="login", target=user.username, at=now)


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep) -> Response:
    """End this browser's session (the form carries its CSRF token) and go back to the sign-in page."""
    token = token_of_cookie(access_of(request).key(), request.cookies.get(COOKIE))
    if token is not None:
        await run_in_threadpool(_close, request.app.state.engine, token, viewer)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER, headers=NO_STORE)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response


def _close(engine: sa.Engine, token: str, viewer: Viewer) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if revoke_session(conn, token=token, now=now) is not None:
            record_action(conn, actor=viewer, action="logout", target=viewer.username, at=now)
