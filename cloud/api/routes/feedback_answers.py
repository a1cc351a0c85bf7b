"""/api/v1/feedback: the audience's NPS by site, film, hall or day (from the rollup), and the answers to the form,
newest first (a comment opened only for admins and the managers of its site)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, BaseModel, Field

from cloud.access.audit import record_action
from cloud.api.deps import ConnDep, EngineDep, SettingsDep, Viewer, ViewerDep
from cloud.api.params import IsoDate
from cloud.feedback.answers import list_answers
from cloud.feedback.nps import Group, NpsRow, nps_by
from cloud.feedback.sealing import CommentSeal, app_seal
from cloud.members.vault import VaultError
from protocol.fields import UtcDatetime
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/feedback", tags=["feedback"])
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)


def _sane(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"a day between {FIRST_DAY} and {LAST_DAY}")
    return day


Day = Annotated[IsoDate, AfterValidator(_sane)]
SiteQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="one site (403 when not yours)")]
Score5 = Annotated[int, Field(ge=1, le=5)]


class Averages(BaseModel):
    """The mean of each 1-5 question over the answers that gave it (null: none did)."""

    film: Annotated[float, Field(ge=1, le=5)] | None
    hall: Annotated[float, Field(ge=1, le=5)] | None
    staff: Annotated[float, Field(ge=1, le=5)] | None
    """The staff and the bar."""


class NpsOut(BaseModel):
    """The answers of one key (a site id, a film, a hall as `<site>/<hall>`, a local day YYYY-MM-DD): how many,
    promoters (9-10), passives (7-8), detractors (0-6), the NPS (promoters' percentage less detractors'), and the
    averages of the other questions."""

    key: str
    answers: Annotated[int, Field(ge=0)]
    promoters: Annotated[int, Field(ge=0)]
    passives: Annotated[int, Field(ge=0)]
    detractors: Annotated[int, Field(ge=0)]
    nps: Annotated[float, Field(ge=-100, le=100)]
    averages: Averages


class AnswerOut(BaseModel):
    """One answer to the form: where and what it is about (the show's local `day`), when, its scores (`nps` 0-10,
    the others 1-5 or null when skipped), whether it has a comment and, for admins and the managers of its site,
    the comment itself; the complaint it opened, if any."""

    id: int
    site_id: str
    film: str | None
    hall: str | None
    day: date
    answered_at: datetime
    nps: Annotated[int, Field(ge=0, le=10)]
    film_score: Score5 | None
    hall_score: Score5 | None
    staff_score: Score5 | None
    has_comment: bool
    comment: str | None
    """Null when there is none, when the viewer may not read it, or when the hub's member key cannot open it."""
    complaint_id: int | None


def nps_out(row: NpsRow) -> NpsOut:
    """The API's view of one key's NPS."""
    return NpsOut(key=row.key, answers=row.answers, promoters=row.promoters, passives=row.passives,
                  detractors=row.detractors, nps=row.nps,
                  averages=Averages(film=row.average("film"), hall=row.average("hall"), staff=row.average("staff")))


def may_read_comment(viewer: Viewer, site_id: str) -> bool:
    """Comments are for admins and the managers of the answer's site (they may hold a name, a phone, an e-mail)."""
    return viewer.role == "admin" or (viewer.role == "site_manager" and viewer.sees(site_id))


def answer_out(row: Any, viewer: Viewer, seal: CommentSeal | None, complaint_id: int | None = None) -> AnswerOut:
    """The API's view of an answer, its comment opened when the viewer may read it and the key opens it."""
    comment = None
    if row.comment is not None and row.comment_key is not None and seal is not None \
            and may_read_comment(viewer, row.site_id):
        try:
            comment = seal.open(code=row.code, sealed=row.comment, wrapped=row.comment_key)
        except VaultError:
            comment = None  # sealed under another member key: shown as unreadable rather than failing the list
    return AnswerOut(id=row.id, site_id=row.site_id, film=row.film, hall=row.hall, day=row.day,
                     answered_at=row.answered_at, nps=row.nps, film_score=row.film_score, hall_score=row.hall_score,
                     staff_score=row.staff_score, has_comment=row.comment is not None and row.comment_key is not None,
                     comment=comment, complaint_id=complaint_id)


def record_comments_read(conn: sa.Connection, viewer: Viewer, answers: list[AnswerOut], target: str) -> None:
    """Audit that `viewer` read the comments among `answers` (how many, never what)."""
    opened = [answer for answer in answers if answer.comment is not None]
    if opened:
        record_action(conn, actor=viewer, action="feedback.comments.read", target=target,
                      site_id=opened[0].site_id if len({a.site_id for a in opened}) == 1 else None,
                      detail={"comments": len(opened)})


@router.get("/nps")
def nps(
    conn: ConnDep,
    viewer: ViewerDep,
    group: Annotated[Group, Query(description="site, film, hall or day (the show's local day)")] = "site",
    site: SiteQuery = None,
    start: Annotated[Day | None, Query(alias="from", description="first local day included, YYYY-MM-DD")] = None,
    end: Annotated[Day | None, Query(alias="to", description="last local day included, YYYY-MM-DD")] = None,
) -> list[NpsOut]:
    """The NPS and the averages per key over [from, to], sorted by key; a site manager's over their sites."""
    return [nps_out(row) for row in nps_by(conn, group=group, sites=viewer.scope(site), start=start, end=end)]


@router.get("/answers")
def answers(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    viewer: ViewerDep,
    site: SiteQuery = None,
    start: Annotated[UtcDatetime | None, Query(alias="from", description="answered at or after (ISO 8601)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="answered before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the id of the last answer of the "
                                                                        "previous page")] = None,
) -> list[AnswerOut]:
    """Answers given in [from, to), newest first; keyset pages. A site manager sees their sites' answers; comments
    are opened for admins and the managers of their site (each read is in the HQ audit log)."""
    sites = viewer.scope(site)
    seal = app_seal(request.app.state, settings) if viewer.role in ("admin", "site_manager") else None
    with engine.begin() as conn:
        rows = list_answers(conn, sites=sites, since=start, until=end, limit=limit, before_id=before)
        found = [answer_out(row, viewer, seal, row.complaint_id) for row in rows]
        record_comments_read(conn, viewer, found, "feedback answers")
    return found

