"""Passwords (argon2id) and checking a username/password pair against the users table."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloud.db.users import UserRow, get_user

MIN_PASSWORD_LENGTH = 10
ENFORCED_ROLES = ("admin", "analyst")
"""Roles the hub can honour today. site_manager needs per-site scoping, which does not exist yet."""
UNSCOPED_ROLE_REFUSAL = "role {role!r} is not supported yet (no per-site scoping); use admin or analyst"


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so that an unknown name costs as much as a
    # wrong password and timing does not reveal which usernames exist.
    return _hasher().hash("marquee-no-such-user")


def hash_password(password: str) -> str:
    """The argon2id hash to store for `password`."""
    return _hasher().hash(password)


def password_problem(password: str) -> str | None:
    """Why `password` is refused, or None when it is acceptable."""
    if not password.strip():
        return "the password is empty"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    return None


def authenticate(conn: sa.Connection, *, username: str, password: str) -> UserRow | None:
    """The user when the password matches, else None, in about the same time either way."""
    user = get_user(conn, username=username)
    stored = user.password_hash if user is not None else _dummy_hash()
    ok: bool
    try:
        ok = _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return user if user is not None and ok else None
