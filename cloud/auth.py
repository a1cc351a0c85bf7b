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


def warm_up() -> None:
    """Compute the unknown-user hash now, so the first unknown name costs no more than later ones."""
    _dummy_hash()


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


def authenticate(engine: sa.Engine, *, username: str, password: str) -> UserRow | None:
    """The user when the password matches, else None, in about the same time either way.

    The connection goes back to the pool before Argon2 runs: a flood of wrong passwords holds each
    connection for one indexed read, never for 150 ms of hashing."""
    with engine.connect() as conn:
        user = get_user(conn, username=username)
    return verify_password(user, password)


def verify_password(user: UserRow | None, password: str) -> UserRow | None:
    """`user` when `password` matches its hash; an unknown user (None) costs the same Argon2 run."""
    stored = user.password_hash if user is not None else _dummy_hash()
    ok: bool
    try:
        ok = _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return user if user is not None and ok else None
