"""API bearer tokens: an admin issues one to act as a user (that user's role and sites), and revokes it.

A token reads `mq_<token_id>_<secret>` and is shown once. The table keeps the secret's SHA-256 only: the secret
is 256 random bits, so a slow hash would add nothing, and checking a token costs one indexed read by its id.
A disabled user's tokens stop working; a changed password leaves them be (they are credentials of their own).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.db.access_tables import api_tokens
from cloud.db.schema import users
from cloud.db.users import USER_COLUMNS, UserRow, user_of

PREFIX = "mq"
TOKEN_PATTERN = re.compile(r"mq_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
TOUCH_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A stored token, without its secret."""

    token_id: str
    username: str
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def state(self, now: datetime) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _row(row: Any) -> TokenRow:
    return TokenRow(row.token_id, row.username, row.name, row.created_at, row.created_by, row.expires_at,
                    row.last_used_at, row.revoked_at, row.revoked_by)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(conn: sa.Connection, *, username: str, name: str, created_by: str, now: datetime,
                expires_at: datetime | None) -> tuple[str, TokenRow]:
    """Keep a new token for `username`; the token's text (shown once) and its row."""
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    conn.execute(sa.insert(api_tokens).values(
        token_id=token_id, secret_hash=_digest(secret), username=username, name=name, created_at=now,
        created_by=created_by, expires_at=expires_at))
    return f"{PREFIX}_{token_id}_{secret}", TokenRow(token_id, username, name, now, created_by, expires_at, None,
                                                     None, None)


def parse_token(text: str) -> tuple[str, str] | None:
    """(token_id, secret) of a well-formed token, else None."""
    match = TOKEN_PATTERN.fullmatch(text)
    return (match.group(1), match.group(2)) if match else None


def token_user(conn: sa.Connection, *, token_id: str, secret: str, now: datetime) -> UserRow | None:
    """The user a live token acts as (one indexed read; `last_used_at` written when a minute old), else None.
    Commits when it writes."""
    col = api_tokens.c
    row = conn.execute(
        sa.select(*USER_COLUMNS, col.secret_hash, col.last_used_at)
        .select_from(api_tokens.join(users, users.c.username == col.username))
        .where(col.token_id == token_id, col.revoked_at.is_(None),
               sa.or_(col.expires_at.is_(None), col.expires_at > now), users.c.disabled_at.is_(None))
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        conn.execute(sa.update(api_tokens).where(col.token_id == token_id).values(last_used_at=now))
        conn.commit()
    return user_of(row)


def list_tokens(conn: sa.Connection, *, username: str | None = None) -> list[TokenRow]:
    """Tokens, newest first (of one user when `username` is given)."""
    query = sa.select(api_tokens).order_by(api_tokens.c.created_at.desc(), api_tokens.c.token_id)
    if username is not None:
        query = query.where(api_tokens.c.username == username)
    return [_row(row) for row in conn.execute(query)]


def get_token(conn: sa.Connection, *, token_id: str) -> TokenRow | None:
    """One token by id, or None."""
    row = conn.execute(sa.select(api_tokens).where(api_tokens.c.token_id == token_id)).one_or_none()
    return None if row is None else _row(row)


def revoke_token(conn: sa.Connection, *, token_id: str, by: str, now: datetime) -> TokenRow | None:
    """Revoke a token (a revoked one stays as it was); its row, or None when there is no such token."""
    col = api_tokens.c
    conn.execute(sa.update(api_tokens).where(col.token_id == token_id, col.revoked_at.is_(None))
                 .values(revoked_at=now, revoked_by=by))
    return get_token(conn, token_id=token_id)
