"""Data access for hub users: their password hash, role, sites, and whether they are disabled or locked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cloud.db.schema import ROLES, users
from cloud.errors import StoreError


@dataclass(frozen=True, slots=True)
class UserRow:
    """A stored user."""

    username: str
    password_hash: str
    role: str
    created_at: datetime
    sites: tuple[str, ...] | None = None
    """A site manager's sites; None for the roles that see every site."""
    disabled_at: datetime | None = None
    failed_logins: int = 0
    locked_until: datetime | None = None
    password_changed_at: datetime | None = None

    def locked(self, now: datetime) -> bool:
        """True while the account refuses every password (too many wrong ones lately)."""
        return self.locked_until is not None and self.locked_until > now


USER_COLUMNS = (users.c.username, users.c.password_hash, users.c.role, users.c.created_at, users.c.sites,
                users.c.disabled_at, users.c.failed_logins, users.c.locked_until, users.c.password_changed_at)
"""The columns `user_of` reads, for queries joining users to something else (sessions, tokens)."""


def user_of(row: Any) -> UserRow:
    """The UserRow of a result row holding USER_COLUMNS."""
    return UserRow(row.username, row.password_hash, row.role, row.created_at,
                   sites=tuple(row.sites) if row.sites is not None else None, disabled_at=row.disabled_at,
                   failed_logins=int(row.failed_logins or 0), locked_until=row.locked_until,
                   password_changed_at=row.password_changed_at)


def sites_problem(role: str, sites: Sequence[str] | None) -> str | None:
    """Why `sites` do not suit `role` (a site manager needs some; the other roles see every site), or None."""
    if role not in ROLES:
        return f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
    if role == "site_manager" and not sites:
        return "a site manager needs at least one site"
    if role != "site_manager" and sites:
        return f"a {role} sees every site and takes no sites"
    return None


def add_user(
    conn: sa.Connection, *, username: str, password_hash: str, role: str, created_at: datetime,
    sites: Sequence[str] | None = None,
) -> None:
    """Create a user; StoreError when the name is taken, the role unknown, or the sites do not suit the role."""
    problem = sites_problem(role, sites)
    if problem is not None:
        raise StoreError(problem)
    try:
        conn.execute(
            sa.insert(users).values(
                username=username, password_hash=password_hash, role=role, created_at=created_at,
                sites=sorted(set(sites)) if sites else None, password_changed_at=created_at,
            )
        )
    except IntegrityError as exc:
        raise StoreError(f"user {username!r} exists already") from exc


def get_user(conn: sa.Connection, *, username: str) -> UserRow | None:
    """The user called `username`, or None."""
    row = conn.execute(sa.select(*USER_COLUMNS).where(users.c.username == username)).one_or_none()
    return None if row is None else user_of(row)


def list_users(conn: sa.Connection) -> list[UserRow]:
    """Every user, by name."""
    return [user_of(row) for row in conn.execute(sa.select(*USER_COLUMNS).order_by(users.c.username))]


def update_user(conn: sa.Connection, *, username: str, **values: Any) -> bool:
    """Set the given columns of `username` (sites as a list); False when there is no such user."""
    if "sites" in values and values["sites"] is not None:
        values["sites"] = sorted(set(values["sites"]))
    return conn.execute(sa.update(users).where(users.c.username == username).values(**values)).rowcount == 1


def active_admins(conn: sa.Connection) -> int:
    """How many admins are not disabled."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(users).where(
        users.c.role == "admin", users.c.disabled_at.is_(None))).scalar_one())
