"""Passwords (argon2id) and checking a username/password pair against the users table, with lockout."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cloud.access.audit import Operator, record_action
from cloud.access.lockout import LockoutPolicy, record_failure, record_success
from cloud.db.users import UserRow, get_user

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10


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


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """A login checked: `user` when the password matched; else `locked_until` when the account is locked
    (`just_locked` when this very attempt locked it)."""

    user: UserRow | None
    locked_until: datetime | None = None
    just_locked: bool = False


def check_login(engine: sa.Engine, *, username: str, password: str, now: datetime, policy: LockoutPolicy,
                via: str, client: str | None) -> LoginOutcome:
    """Check a password, counting wrong ones towards the account's lockout (`policy`).

    A locked account is refused without a check, whatever the password (answering differently for the right
    one would tell a guesser it is right). A disabled account, or an unknown name, costs the same Argon2 run as
    a wrong password and counts nothing. No connection is held while Argon2 runs: a flood of wrong passwords
    holds each connection for one indexed read, never for 150 ms of hashing."""
    with engine.connect() as conn:
        user = get_user(conn, username=username)
    if user is not None and user.locked(now):
        return LoginOutcome(None, locked_until=user.locked_until)
    usable = user if user is not None and user.disabled_at is None else None
    if verify_password(usable, password) is not None:
        assert usable is not None
        if usable.failed_logins:
            with engine.begin() as conn:
                record_success(conn, username=username)
        return LoginOutcome(usable)
    if usable is None:
        return LoginOutcome(None)
    with engine.begin() as conn:
        until = record_failure(conn, username=username, now=now, policy=policy)
        if until is not None:
            record_action(conn, actor=Operator(username=username, role=usable.role, via=via, client=client),
                          action="user.lock", target=username, at=now,
                          detail={"failures": policy.failures, "until": until.isoformat()})
    if until is not None:
        # Once, by the process whose attempt locked it; a username may be an e-mail address: never whole.
        log.warning("locked user %s until %s after %d wrong passwords in a row", username[:2] + "***",
                    until.isoformat(timespec="seconds"), policy.failures)
        return LoginOutcome(None, locked_until=until, just_locked=True)
    return LoginOutcome(None)


def verify_password(user: UserRow | None, password: str) -> UserRow | None:
    """`user` when `password` matches its hash; an unknown user (None) costs the same Argon2 run."""
    stored = user.password_hash if user is not None else _dummy_hash()
    ok: bool
    try:
        ok = _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return user if user is not None and ok else None
