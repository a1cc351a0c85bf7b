"""Lockout: after too many wrong passwords in a row an account refuses every password for a while.

Kept in the users table, so every hub process honours it; on top of the login windows of
`cloud.api.login_guard` (per address and per username, in each process's memory). The count is of wrong
passwords in a row: a right one resets it, and so does the lock itself (the next lock takes as many again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from cloud.db.schema import users


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """`failures` wrong passwords in a row lock the account for `duration`."""

    failures: int
    duration: timedelta


def record_failure(conn: sa.Connection, *, username: str, now: datetime, policy: LockoutPolicy) -> datetime | None:
    """Count a wrong password for `username`; when this one reaches the limit, lock the account and return
    until when (None otherwise, and for a user locked already or unknown). Call it in a transaction."""
    col = users.c
    unlocked = sa.or_(col.locked_until.is_(None), col.locked_until <= now)
    # The row stays locked by this UPDATE until commit (PostgreSQL) or the database is (SQLite): two processes
    # counting failures at once count both, and only one of them sees the limit reached.
    counted = conn.execute(sa.update(users).where(col.username == username, unlocked)
                           .values(failed_logins=col.failed_logins + 1)).rowcount
    if not counted:
        return None
    until = now + policy.duration
    locked = conn.execute(sa.update(users).where(col.username == username, col.failed_logins >= policy.failures)
                          .values(locked_until=until, failed_logins=0)).rowcount
    return until if locked else None


def record_success(conn: sa.Connection, *, username: str) -> None:
    """A right password: the count of wrong ones starts again (written only when there is one)."""
    conn.execute(sa.update(users).where(users.c.username == username, users.c.failed_logins != 0)
                 .values(failed_logins=0))


def unlock(conn: sa.Connection, *, username: str) -> bool:
    """Lift a lock and forget the wrong passwords counted; False when there is no such user."""
    return conn.execute(sa.update(users).where(users.c.username == username)
                        .values(locked_until=None, failed_logins=0)).rowcount == 1
