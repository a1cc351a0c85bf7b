"""Browser sessions: a random token in a signed cookie, its SHA-256 in the `sessions` table.

The cookie is `<token>.<signature>` (HMAC under the session key), checked before any database read, so a
forged cookie costs nothing. A copy of the database signs nobody in: it holds hashes only. A session ends at
logout, after `idle` unused, `lifetime` after its login, and when its user is disabled or their password,
role or sites change (`revoke_user_sessions`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from cloud.access.keys import SessionKey
from cloud.db.access_tables import sessions
from cloud.db.schema import users
from cloud.db.users import USER_COLUMNS, UserRow, user_of

COOKIE = "marquee_session"
TOUCH_EVERY = timedelta(minutes=1)
"""`last_seen_at` is written at most this often per session: a busy dashboard costs one write a minute."""
MAX_COOKIE = 200
_COOKIE_PURPOSE = "session"
_CSRF_PURPOSE = "csrf"
KEEP_ENDED = timedelta(days=30)
"""Ended sessions are deleted this long after they ended, at their user's next login."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A session ends after `idle` unused and `lifetime` after its login."""

    idle: timedelta
    lifetime: timedelta


def new_token() -> str:
    """A fresh session token (256 random bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the table keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_value(key: SessionKey, token: str) -> str:
    """The cookie for `token`: the token and its signature."""
    return f"{token}.{key.sign(_COOKIE_PURPOSE, token)}"


def token_of_cookie(key: SessionKey, value: str | None) -> str | None:
    """The token a cookie carries when its signature holds, else None."""
    if not value or len(value) > MAX_COOKIE or "." not in value:
        return None
    token, _, signature = value.partition(".")
    return token if token and key.check(_COOKIE_PURPOSE, token, signature) else None


def csrf_token(key: SessionKey, token: str) -> str:
    """The session's CSRF token (forms' hidden field, the `X-CSRF-Token` header of the dashboard's calls)."""
    return key.sign(_CSRF_PURPOSE, token)


def open_session(conn: sa.Connection, *, token: str, username: str, now: datetime, policy: SessionPolicy,
                 client: str | None, user_agent: str | None) -> None:
    """Keep a new session of `username` (and forget their sessions that ended long ago)."""
    col = sessions.c
    conn.execute(sa.delete(sessions).where(col.username == username, sa.or_(
        col.expires_at < now - KEEP_ENDED, col.revoked_at < now - KEEP_ENDED,
        col.last_seen_at < now - policy.idle - KEEP_ENDED)))
    conn.execute(sa.insert(sessions).values(
        token_hash=token_hash(token), username=username, created_at=now, last_seen_at=now,
        expires_at=now + policy.lifetime, revoked_at=None, client=client, user_agent=(user_agent or "")[:200] or None))


def session_user(conn: sa.Connection, *, token: str, now: datetime, policy: SessionPolicy) -> UserRow | None:
    """The user of a live session (one indexed read; `last_seen_at` written when a minute old), else None.
    Commits when it writes."""
    col = sessions.c
    row = conn.execute(
        sa.select(*USER_COLUMNS, col.last_seen_at)
        .select_from(sessions.join(users, users.c.username == col.username))
        .where(col.token_hash == token_hash(token), col.revoked_at.is_(None), col.expires_at > now,
               col.last_seen_at > now - policy.idle, users.c.disabled_at.is_(None))
    ).one_or_none()
    if row is None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        conn.execute(sa.update(sessions).where(col.token_hash == token_hash(token)).values(last_seen_at=now))
        conn.commit()
    return user_of(row)


def revoke_session(conn: sa.Connection, *, token: str, now: datetime) -> str | None:
    """End one session (logout); its username, or None when it was not live."""
    col = sessions.c
    username = conn.execute(sa.select(col.username).where(col.token_hash == token_hash(token),
                                                          col.revoked_at.is_(None))).scalar_one_or_none()
    if username is not None:
        conn.execute(sa.update(sessions).where(col.token_hash == token_hash(token)).values(revoked_at=now))
    return username


def revoke_user_sessions(conn: sa.Connection, *, username: str, now: datetime) -> int:
    """End every live session of `username`; how many."""
    col = sessions.c
    return int(conn.execute(sa.update(sessions).where(col.username == username, col.revoked_at.is_(None),
                                                      col.expires_at > now).values(revoked_at=now)).rowcount)


def live_sessions(conn: sa.Connection, *, now: datetime, policy: SessionPolicy) -> dict[str, int]:
    """Live sessions per username."""
    col = sessions.c
    rows = conn.execute(sa.select(col.username, sa.func.count()).where(
        col.revoked_at.is_(None), col.expires_at > now, col.last_seen_at > now - policy.idle).group_by(col.username))
    return {row[0]: int(row[1]) for row in rows}
