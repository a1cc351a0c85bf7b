"""/api/v1/users: the people who may sign in, their roles and sites, disabling and unlocking them (admins).

Password hashes never leave the hub. A change of password, role or sites, or disabling, ends the user's
browser sessions at once; every change is in the HQ audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.access.accounts import AccountError, change_user, create_user, unlock_user
from cloud.access.sessions import live_sessions
from cloud.api.authn import access_of
from cloud.api.deps import AdminDep, ConnDep, EngineDep, ViewerDep
from cloud.auth import hash_password, password_problem
from cloud.db.users import UserRow, get_user, list_users, sites_problem
from protocol.fields import Id

router = APIRouter(prefix="/users", tags=["access"])

Role = Literal["admin", "analyst", "site_manager"]
USERNAME_PATTERN = r"^[^\x00-\x20\x7f][^\x00-\x1f\x7f]{0,62}[^\x00-\x20\x7f]$|^[^\x00-\x20\x7f]$"
"""1 to 64 printable characters, no outer spaces (an e-mail address will do)."""
Username = Annotated[str, Path(min_length=1, max_length=64, pattern=USERNAME_PATTERN)]
Password = Annotated[str, Field(min_length=10, max_length=1024)]
Sites = Annotated[list[Id], Field(min_length=1, max_length=500)]
_STATUS = {"not_found": status.HTTP_404_NOT_FOUND, "conflict": status.HTTP_409_CONFLICT, "invalid": 422}


class UserOut(BaseModel):
    """A user as admins see them (never the password hash): role, sites (null: every site), whether disabled or
    locked (until when, after how many wrong passwords in a row), and their live browser sessions."""

    username: str
    role: str
    sites: list[str] | None
    created_at: datetime
    password_changed_at: datetime | None
    disabled: bool
    disabled_at: datetime | None
    locked_until: datetime | None
    failed_logins: int
    sessions: int


class NewUser(BaseModel):
    """A user to create: a site manager takes `sites` (at least one), the other roles none."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)]
    password: Password
    role: Role
    sites: Sites | None = None

    def __repr__(self) -> str:  # never the password
        return f"NewUser(username={self.username!r}, role={self.role!r})"

    __str__ = __repr__


class UserChanges(BaseModel):
    """Only what is given changes; `sites` is the whole new list (a site manager's)."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    sites: Sites | None = None
    password: Password | None = None
    disabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> UserChanges:
        if not self.model_fields_set:
            raise ValueError("give role, sites, password or disabled")
        for name in ("role", "password", "disabled"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def __repr__(self) -> str:  # never the password
        return f"UserChanges(fields={sorted(self.model_fields_set)!r})"

    __str__ = __repr__


def user_out(user: UserRow, *, sessions: int, now: datetime) -> UserOut:
    """The API's view of a user."""
    return UserOut(username=user.username, role=user.role, sites=list(user.sites) if user.sites else None,
                   created_at=user.created_at, password_changed_at=user.password_changed_at,
                   disabled=user.disabled_at is not None, disabled_at=user.disabled_at,
                   locked_until=user.locked_until if user.locked(now) else None, failed_logins=user.failed_logins,
                   sessions=sessions)


def _failed(exc: AccountError) -> HTTPException:
    if exc.kind == "invalid":
        return HTTPException(422, [{"loc": ["body", "sites"], "msg": str(exc)}])
    return HTTPException(_STATUS.get(exc.kind, status.HTTP_400_BAD_REQUEST), str(exc))


def _password_hash(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        raise HTTPException(422, [{"loc": ["body", "password"], "msg": problem}])
    return hash_password(password)  # a sync route: Argon2 runs on the thread pool, once


ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such user."},
          409: {"description": "The name is taken, or the change would leave no admin who can sign in."},
          422: {"description": "Refused, by field (never the password)."}}


class MeOut(BaseModel):
    """Who is asking: their name, role, sites (null: every site), how they signed in (session, token, basic), and
    for a browser session the CSRF token its unsafe calls send in the `X-CSRF-Token` header."""

    username: str
    role: str
    sites: list[str] | None
    via: str
    csrf_token: str | None


@router.get("/me")
async def me(viewer: ViewerDep) -> MeOut:
    """The signed-in user (every role)."""
    return MeOut(username=viewer.username, role=viewer.role, sites=sorted(viewer.sites) if viewer.sites else None,
                 via=viewer.via, csrf_token=viewer.csrf_token)


@router.get("")
def users(conn: ConnDep, viewer: AdminDep, request: Request) -> list[UserOut]:
    """Every user, by name."""
    now = datetime.now(UTC)
    counts = live_sessions(conn, now=now, policy=access_of(request).sessions)
    return [user_out(each, sessions=counts.get(each.username, 0), now=now) for each in list_users(conn)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: ERRORS[409], 422: ERRORS[422]})
def add(body: NewUser, engine: EngineDep, viewer: AdminDep) -> UserOut:
    """Create a user with a password (at least 10 characters), a role, and a site manager's sites."""
    problem = sites_problem(body.role, body.sites)
    if problem is not None:  # refused before Argon2 runs, like a name taken
        raise HTTPException(422, [{"loc": ["body", "sites"], "msg": problem}])
    with engine.connect() as conn:
        if get_user(conn, username=body.username) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"user {body.username!r} exists already")
    password_hash = _password_hash(body.password)  # before a connection is taken
    try:
        with engine.begin() as conn:
            created = create_user(conn, actor=viewer, username=body.username, password_hash=password_hash,
                                  role=body.role, sites=body.sites, now=datetime.now(UTC))
    except AccountError as exc:
        raise _failed(exc) from exc
    return user_out(created, sessions=0, now=datetime.now(UTC))


@router.patch("/{username}", responses=ERRORS)
def change(username: Username, body: UserChanges, engine: EngineDep, viewer: AdminDep, request: Request) -> UserOut:
    """Change a user's role, sites or password, or disable or enable them; a change of password, role or sites,
    or disabling, ends their browser sessions (their tokens follow the new role and sites)."""
    password_hash = _password_hash(body.password) if body.password is not None else None
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            changed = change_user(conn, actor=viewer, username=username, now=now, role=body.role,
                                  sites=body.sites, password_hash=password_hash, disabled=body.disabled)
            counts = live_sessions(conn, now=now, policy=access_of(request).sessions)
    except AccountError as exc:
        raise _failed(exc) from exc
    return user_out(changed, sessions=counts.get(username, 0), now=now)


@router.post("/{username}/unlock", responses={404: ERRORS[404]})
def unlock(username: Username, engine: EngineDep, viewer: AdminDep, request: Request) -> UserOut:
    """Let a user locked out after too many wrong passwords sign in again at once."""
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            unlocked = unlock_user(conn, actor=viewer, username=username, now=now)
            counts = live_sessions(conn, now=now, policy=access_of(request).sessions)
    except AccountError as exc:
        raise _failed(exc) from exc
    request.app.state.login_guard.unlocked(username)  # nor refused by this process's rate limit any more
    return user_out(unlocked, sessions=counts.get(username, 0), now=now)
