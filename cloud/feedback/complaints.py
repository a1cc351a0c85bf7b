"""Complaints as tickets: opened from an answer to the form or by HQ staff, each with a category, an owner (a hub
user who sees its site), a response deadline per category, a state, and a history of who did what, when, why.

States: open -> in_progress -> answered (the filmgoer got a reply) -> resolved -> closed; `MOVES` says which moves
are allowed (a resolved or closed complaint can be taken up again). The first time a complaint reaches answered
(or resolved, or closed) is its response; the first time it reaches resolved or closed, its resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from cloud.db.feedback_tables import complaint_history, complaints
from cloud.db.schema import users
from cloud.errors import HubError
from cloud.feedback.categories import DEFAULT_RESPONSE_HOURS

STATES: Final = ("open", "in_progress", "answered", "resolved", "closed")
MOVES: Final[dict[str, tuple[str, ...]]] = {
    "open": ("in_progress", "answered", "resolved", "closed"),
    "in_progress": ("answered", "resolved", "closed"),
    "answered": ("in_progress", "resolved", "closed"),
    "resolved": ("in_progress", "closed"),
    "closed": ("in_progress",),
}
"""The states a complaint may move to from each state."""
RESPONDED: Final = ("answered", "resolved", "closed")
RESOLVED: Final = ("resolved", "closed")
WAITING: Final = ("open", "in_progress")
"""States in which a complaint still waits for its response."""


class ComplaintError(HubError):
    """A complaint that cannot be found (`kind` not_found) or changed as asked (`kind` conflict, invalid)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Complaint:
    """A complaint (its `complaints` row) and, read one at a time, its history (oldest first)."""

    row: Any
    history: list[Any] = field(default_factory=list)


def response_hours(category: str, hours: Mapping[str, float]) -> float:
    """The response deadline of a category's complaints, in hours after opening."""
    return hours.get(category, DEFAULT_RESPONSE_HOURS)


def overdue(row: Any, now: datetime) -> bool:
    """True when the complaint still waits for its response past its deadline."""
    return bool(row.responded_at is None and row.state in WAITING and row.due_at < now)


def owner_problem(conn: sa.Connection, *, username: str, site_id: str) -> str | None:
    """Why `username` cannot own a complaint of `site_id` (unknown, disabled, or not seeing the site); None when
    they can."""
    user = conn.execute(sa.select(users.c.role, users.c.sites, users.c.disabled_at)
                        .where(users.c.username == username)).one_or_none()
    if user is None or user.disabled_at is not None:
        return "no active hub user of that name"
    if user.role == "site_manager" and site_id not in (user.sites or []):
        return "that user does not manage this complaint's site"
    return None


def open_complaint(conn: sa.Connection, *, site_id: str, category: str, source: str, at: datetime,
                   response_hours: float, by: str | None = None, owner: str | None = None, note: str | None = None,
                   answer_id: int | None = None, film: str | None = None, hall: str | None = None) -> int:
    """Open a complaint (its first history row: opened by `by`, None for the public form); returns its id."""
    complaint_id = int(conn.execute(complaints.insert().values(
        site_id=site_id, category=category, state="open", owner=owner, source=source, answer_id=answer_id,
        film=film, hall=hall, opened_at=at, opened_by=by, due_at=at + timedelta(hours=response_hours),
        state_at=at).returning(complaints.c.id)).scalar_one())
    conn.execute(complaint_history.insert().values(complaint_id=complaint_id, at=at, username=by, from_state=None,
                                                   to_state="open", owner=owner, note=note))
    return complaint_id


def transition(conn: sa.Connection, *, complaint_id: int, to_state: str, by: str, note: str | None,
               owner: str | None, at: datetime) -> Any:
    """Move a complaint to `to_state` (`MOVES`), or give it to `owner` in its state, recording who, when and the
    note; the row before the change. ComplaintError not_found, or conflict when there is nothing to change or the
    move is not allowed."""
    row = conn.execute(sa.select(complaints).where(complaints.c.id == complaint_id).with_for_update()).one_or_none()
    if row is None:
        raise ComplaintError("not_found", f"no complaint {complaint_id}")
    if to_state == row.state and (owner is None or owner == row.owner):
        raise ComplaintError("conflict", f"complaint {complaint_id} is {row.state} already"
                                         + (f" and owned by {owner}" if owner else ""))
    if to_state != row.state and to_state not in MOVES[row.state]:
        raise ComplaintError("conflict", f"complaint {complaint_id} is {row.state}: it can go to "
                                         f"{' or '.join(MOVES[row.state])}, not {to_state}")
    values: dict[str, Any] = {"state": to_state, "state_at": at}
    if owner is not None:
        values["owner"] = owner
    if to_state in RESPONDED and row.responded_at is None:
        values["responded_at"] = at
    if to_state in RESOLVED and row.resolved_at is None:
        values["resolved_at"] = at
    conn.execute(complaints.update().where(complaints.c.id == complaint_id).values(**values))
    conn.execute(complaint_history.insert().values(complaint_id=complaint_id, at=at, username=by,
                                                   from_state=row.state, to_state=to_state,
                                                   owner=owner if owner is not None else row.owner, note=note))
    return row


def get_complaint(conn: sa.Connection, *, complaint_id: int) -> Complaint | None:
    """One complaint with its history; None when there is no such complaint."""
    row = conn.execute(sa.select(complaints).where(complaints.c.id == complaint_id)).one_or_none()
    if row is None:
        return None
    history = conn.execute(sa.select(complaint_history).where(complaint_history.c.complaint_id == complaint_id)
                           .order_by(complaint_history.c.id)).all()
    return Complaint(row, list(history))


def list_complaints(conn: sa.Connection, *, sites: frozenset[str] | None, state: str | None = None,
                    category: str | None = None, owner: str | None = None, overdue_at: datetime | None = None,
                    since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                    before_id: int | None = None) -> list[Any]:
    """Complaints opened in [since, until) at `sites` (None: every site), newest first, `limit` at most, before
    complaint `before_id`; with `overdue_at`, only those waiting for their response past their deadline then."""
    c = complaints.c
    query = sa.select(complaints)
    if sites is not None:
        query = query.where(c.site_id.in_(sorted(sites)))
    for column, wanted in ((c.state, state), (c.category, category), (c.owner, owner)):
        if wanted is not None:
            query = query.where(column == wanted)
    if overdue_at is not None:
        query = query.where(c.state.in_(WAITING), c.responded_at.is_(None), c.due_at < overdue_at)
    if since is not None:
        query = query.where(c.opened_at >= since)
    if until is not None:
        query = query.where(c.opened_at < until)
    if before_id is not None:
        query = query.where(c.id < before_id)
    return list(conn.execute(query.order_by(c.id.desc()).limit(limit)).all())
