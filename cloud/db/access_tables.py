"""The hub's tables for access: browser sessions, API tokens an admin issues, and the audit log of HQ actions.

The users themselves are in `schema.py` (with their role, their sites, their lockout state)."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db.metadata import metadata
from cloud.db.types import BigId, JsonDoc, UtcDateTime

# A signed-in browser: the cookie carries a random token (signed), the table only its SHA-256, so a copy of
# the database signs nobody in. Revoked at logout, when the user is disabled or their password or role
# changes; expires after a period idle and after an absolute lifetime.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(200), nullable=True),
)

# A bearer token for scripts and integrations, issued by an admin to act as a user (with that user's role
# and sites). Shown once (`mq_<token_id>_<secret>`); the table keeps the secret's SHA-256 only (it is 256
# random bits: a slow hash adds nothing), so checking one costs a lookup, never an Argon2 run.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", sa.String(16), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), nullable=False, index=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("revoked_by", sa.String(64), nullable=True),
)

# What people did at HQ: rule changes, exports, erasures, user and token changes, staff and blocklist
# changes, case transitions, sites and halls edited. Who (and by which means), what, on what, when, from
# where; never personal data (a member is named by id, a card by its masked token).
hq_audit = sa.Table(
    "hq_audit",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False, index=True),
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("via", sa.String(8), nullable=False),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("site_id", sa.String(64), nullable=True, index=True),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("detail", JsonDoc, nullable=True),
)
