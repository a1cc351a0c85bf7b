"""/api/v1/complaints: complaints as tickets, from the feedback form or opened by HQ staff; list them (overdue
shown), read one with its history and the answer behind it, move it through its states or give it an owner.
Every change is in the HQ audit log. A site manager sees and handles their sites' complaints only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.audit import record_action
from cloud.api.deps import EngineDep, SettingsDep, Viewer, ViewerDep
from cloud.api.routes.feedback_answers import AnswerOut, answer_out, record_comments_read
from cloud.db.schema import sites
from cloud.feedback.answers import answer_of
from cloud.feedback.categories import Category
from cloud.feedback.complaints import (
    ComplaintError,
    get_complaint,
    list_complaints,
    open_complaint,
    overdue,
    owner_problem,
    response_hours,
    transition,
)
from cloud.feedback.sealing import app_seal
from cloud.settings import HubSettings
from protocol.fields import UtcDatetime
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/complaints", tags=["feedback"])
State = Literal["open", "in_progress", "answered", "resolved", "closed"]
ComplaintId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Username = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Note = Annotated[str, Field(max_length=1000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
_STATUS = {"not_found": status.HTTP_404_NOT_FOUND, "conflict": status.HTTP_409_CONFLICT}


class ComplaintOut(BaseModel):
    """A complaint: where, about what, its state and owner, where it came from (`form`, with the answer's id, or
    `hq`), who opened it (null: the filmgoer), its response deadline (`due_at`), when it was first answered and
    first resolved, and whether it waits for its response past the deadline (`overdue`)."""

    id: int
    site_id: str
    category: str
    state: State
    owner: str | None
    source: Literal["form", "hq"]
    answer_id: int | None
    film: str | None
    hall: str | None
    created_at: datetime
    created_by: str | None
    due_at: datetime
    responded_at: datetime | None
    resolved_at: datetime | None
    state_at: datetime
    overdue: bool


class HistoryOut(BaseModel):
    """One change: its opening (from null), a move, or a new owner (from and to the same state), with the note."""

    at: datetime
    username: str | None
    from_state: State | None
    to_state: State
    owner: str | None
    note: str | None


class ComplaintDetailOut(ComplaintOut):
    """A complaint with its history (oldest first) and the answer it came from, if any (the comment, which may hold
    the filmgoer's contact, for admins and the managers of its site)."""

    history: list[HistoryOut]
    answer: AnswerOut | None


class ComplaintIn(BaseModel):
    """A complaint HQ staff open (one made by phone or at the box office, say): where, about what, who handles it,
    and a note (no personal data: a contact belongs with the filmgoer's answer)."""

    model_config = ConfigDict(extra="forbid")

    site_id: Annotated[str, Field(pattern=ID_PATTERN)]
    category: Category
    owner: Username | None = None
    note: Note | None = None


class TransitionIn(BaseModel):
    """Where to move the complaint (its state again to only give it an `owner`), who handles it now, and why."""

    model_config = ConfigDict(extra="forbid")

    to: State
    note: Note | None = None
    owner: Username | None = None


def complaint_out(row: Any, now: datetime) -> ComplaintOut:
    """The API's view of a complaint row."""
    return ComplaintOut(
        id=row.id, site_id=row.site_id, category=row.category, state=row.state, owner=row.owner, source=row.source,
        answer_id=row.answer_id, film=row.film, hall=row.hall, created_at=row.opened_at, created_by=row.opened_by,
        due_at=row.due_at, responded_at=row.responded_at, resolved_at=row.resolved_at, state_at=row.state_at,
        overdue=overdue(row, now))


def _detail(request: Request, conn: sa.Connection, settings: HubSettings, viewer: Viewer,
            complaint_id: int) -> ComplaintDetailOut:
    complaint = get_complaint(conn, complaint_id=complaint_id)
    if complaint is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such complaint")
    viewer.check_site(complaint.row.site_id)
    answer = None
    if complaint.row.answer_id is not None:
        row = answer_of(conn, answer_id=complaint.row.answer_id)
        seal = app_seal(request.app.state, settings) if viewer.role in ("admin", "site_manager") else None
        answer = answer_out(row, viewer, seal, complaint.row.id) if row is not None else None
        if answer is not None:
            record_comments_read(conn, viewer, [answer], f"complaint {complaint_id}")
    return ComplaintDetailOut(**complaint_out(complaint.row, datetime.now(UTC)).model_dump(), answer=answer,
                              history=[HistoryOut.model_validate(each, from_attributes=True)
                                       for each in complaint.history])


def _check_owner(conn: sa.Connection, owner: str | None, site_id: str) -> None:
    problem = owner_problem(conn, username=owner, site_id=site_id) if owner is not None else None
    if problem is not None:
        raise HTTPException(422, [{"loc": ["body", "owner"], "msg": problem}])  # the app's form of a 422


@router.get("")
def complaints(
    engine: EngineDep,
    viewer: ViewerDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN, description="one site (403 when not yours)")] = None,
    state: State | None = None,
    category: Category | None = None,
    owner: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    only_overdue: Annotated[bool, Query(alias="overdue", description="only those waiting past their deadline")]
    = False,
    start: Annotated[UtcDatetime | None, Query(alias="from", description="created at or after (ISO 8601)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the id of the last complaint of the "
                                                                        "previous page")] = None,
) -> list[ComplaintOut]:
    """Complaints created in [from, to), newest first, by site, state, category, owner, or overdue; keyset pages."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        rows = list_complaints(conn, sites=viewer.scope(site), state=state, category=category, owner=owner,
                               overdue_at=now if only_overdue else None, since=start, until=end, limit=limit,
                               before_id=before)
    return [complaint_out(row, now) for row in rows]


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    422: {"description": "A field is out of range, the site is unknown, or the owner is no active user who sees "
                         "the site."}})
def create(body: ComplaintIn, request: Request, engine: EngineDep, settings: SettingsDep,
           viewer: ViewerDep) -> ComplaintDetailOut:
    """Open a complaint for a site (a site manager: for their sites), its deadline by its category."""
    viewer.check_site(body.site_id)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id == body.site_id)).first() is None:
            raise HTTPException(422, [{"loc": ["body", "site_id"], "msg": "no such site"}])
        _check_owner(conn, body.owner, body.site_id)
        complaint_id = open_complaint(
            conn, site_id=body.site_id, category=body.category, source="hq", at=now, by=viewer.username,
            owner=body.owner, note=body.note,
            response_hours=response_hours(body.category, settings.complaint_response_hours))
        record_action(conn, actor=viewer, action="complaint.create", target=f"complaint {complaint_id}",
                      site_id=body.site_id, detail={"category": body.category, "owner": body.owner})
        return _detail(request, conn, settings, viewer, complaint_id)


@router.get("/{complaint_id}", responses={404: {"description": "No such complaint."}})
def complaint(complaint_id: ComplaintId, request: Request, engine: EngineDep, settings: SettingsDep,
              viewer: ViewerDep) -> ComplaintDetailOut:
    """One complaint with its history and the answer it came from."""
    with engine.begin() as conn:
        return _detail(request, conn, settings, viewer, complaint_id)


@router.post("/{complaint_id}/transition", responses={
    404: {"description": "No such complaint."},
    409: {"description": "Nothing to change, or the complaint cannot go there from its state."},
    422: {"description": "A field is out of range, or the owner is no active user who sees the site."}})
def move(complaint_id: ComplaintId, body: TransitionIn, request: Request, engine: EngineDep, settings: SettingsDep,
         viewer: ViewerDep) -> ComplaintDetailOut:
    """Move a complaint (open, in_progress, answered, resolved, closed; a resolved or closed one can be taken up
    again) and/or give it an owner, with a note."""
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            held = get_complaint(conn, complaint_id=complaint_id)
            if held is None:
                raise ComplaintError("not_found", "no such complaint")
            viewer.check_site(held.row.site_id)
            _check_owner(conn, body.owner, held.row.site_id)
            before = transition(conn, complaint_id=complaint_id, to_state=body.to, by=viewer.username,
                                note=body.note, owner=body.owner, at=now)
            record_action(conn, actor=viewer, action="complaint.transition", target=f"complaint {complaint_id}",
                          site_id=held.row.site_id,
                          detail={"from": before.state, "to": body.to, "owner": body.owner})
            return _detail(request, conn, settings, viewer, complaint_id)
    except ComplaintError as exc:
        raise HTTPException(_STATUS.get(exc.kind, status.HTTP_400_BAD_REQUEST), str(exc)) from exc
