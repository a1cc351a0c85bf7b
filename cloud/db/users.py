"""Data access for hub users (HTTP Basic accounts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


def add_user(
    conn: sa.Connection, *, username: str, password_hash: str, role: str, created_at: datetime
) -> None:
    """Create a user; StoreError when the name is taken or the role unknown."""
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    try:
        conn.execute(
            sa.insert(users).values(
                username=username, password_hash=password_hash, role=role, created_at=created_at
            )
        )
    except IntegrityError as exc:
        raise StoreError(f"user {username!r} exists already") from exc


def get_user(conn: sa.Connection, *, username: str) -> UserRow | None:
    """The user called `username`, or None."""
    row = conn.execute(sa.select(users).where(users.c.username == username)).one_or_none()
    if row is None:
        return None
    return UserRow(row.username, row.password_hash, row.role, row.created_at)
