"""The audit log of HQ actions: one row per change or export someone made at HQ, in the changing transaction."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from cloud.db.access_tables import hq_audit


class Actor(Protocol):
    """Who acted (a `cloud.api.deps.Viewer`, or the CLI's operator)."""

    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def via(self) -> str: ...
    @property
    def client(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Operator:
    """Someone acting outside the API: `marquee-hub` on the hub's machine (via "cli"), or a user's own login
    (a lock after wrong passwords)."""

    username: str
    role: str = "operator"
    via: str = "cli"
    client: str | None = None


def cli_operator() -> Operator:
    """The person running `marquee-hub`, by their account on the machine."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        name = "unknown"
    return Operator(username=f"cli:{name}"[:64])


def record_action(conn: sa.Connection, *, actor: Actor, action: str, target: str | None = None,
                  site_id: str | None = None, detail: Mapping[str, Any] | None = None,
                  at: datetime | None = None) -> None:
    """Record that `actor` did `action` (dotted: `rules.publish`, `export.transactions`, `member.erase`,
    `user.create`...) on `target`. `detail` says how (filters, counts); never personal data nor a secret."""
    conn.execute(sa.insert(hq_audit).values(
        at=at or datetime.now(UTC), username=actor.username[:64], role=actor.role[:16], via=actor.via[:8],
        action=action[:64], target=target[:200] if target else None, site_id=site_id,
        client=actor.client[:64] if actor.client else None, detail=dict(detail) if detail else None))


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One recorded HQ action."""

    id: int
    at: datetime
    username: str
    role: str
    via: str
    action: str
    target: str | None
    site_id: str | None
    client: str | None
    detail: dict[str, Any] | None


def list_actions(conn: sa.Connection, *, since: datetime | None = None, until: datetime | None = None,
                 username: str | None = None, action: str | None = None, site_id: str | None = None,
                 limit: int = 100, before: int | None = None) -> list[ActionRow]:
    """Actions in [since, until), newest first, `limit` at most, after the row `before` (the id of the last row
    of the previous page; [] when it does not exist). `action` ending in "." matches every action under it."""
    col = hq_audit.c
    query = sa.select(hq_audit)
    if since is not None:
        query = query.where(col.at >= since)
    if until is not None:
        query = query.where(col.at < until)
    if username is not None:
        query = query.where(col.username == username)
    if action is not None:
        query = query.where(col.action.startswith(action, autoescape=True) if action.endswith(".")
                            else col.action == action)
    if site_id is not None:
        query = query.where(col.site_id == site_id)
    if before is not None:
        cursor = conn.execute(sa.select(col.at).where(col.id == before)).scalar()
        if cursor is None:
            return []
        # Keyset on (time, id), the order shown: rows of several hub processes interleave by time.
        query = query.where(sa.or_(col.at < cursor, sa.and_(col.at == cursor, col.id < before)))
    rows = conn.execute(query.order_by(col.at.desc(), col.id.desc()).limit(limit))
    return [ActionRow(int(row.id), row.at, row.username, row.role, row.via, row.action, row.target, row.site_id,
                      row.client, dict(row.detail) if isinstance(row.detail, dict) else None) for row in rows]
