"""Answers to the public feedback form: one per ticket code (the unique constraint decides, whatever the number of
hub processes), taken for a code of that site within the window after the show, stored in one transaction with
the NPS rollup, the complaint the filmgoer asked for and the alert case of a low score.

The comment, free text that may carry a name, a phone or an e-mail, is sealed (`cloud.feedback.sealing`) or not
kept at all when the hub has no member key; it never reaches a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloud.analytics.localtime import site_zone
from cloud.db.feedback_tables import complaints, feedback_answers
from cloud.feedback.alerts import Scores, raise_low_score
from cloud.feedback.complaints import open_complaint, response_hours
from cloud.feedback.nps import add_answer
from cloud.feedback.sealing import CommentSeal
from cloud.feedback.tickets import find_ticket
from protocol.calendar import local_day

State = Literal["open", "answered", "unknown", "closed"]


@dataclass(frozen=True, slots=True)
class AnswerIn:
    """What the filmgoer sent: the scores, the comment (None: none, or not kept), the complaint's category."""

    scores: Scores
    comment: str | None = None
    complaint: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an answer: `state` open means it was stored now (with its id, and the complaint and alert
    case it opened); answered, unknown or closed, that it was not."""

    state: State
    answer_id: int | None = None
    complaint_id: int | None = None
    alert_id: int | None = None


def ticket_state(conn: sa.Connection, *, site_id: str, code: str, window: timedelta,
                 at: datetime) -> tuple[State, Any | None]:
    """Whether the form takes an answer for `code` at `site_id` at `at`: open; answered already; unknown (not
    synced yet, or not this site's); closed (the window after the show has passed). With the ticket's row."""
    ticket = find_ticket(conn, site_id=site_id, code=code)
    if ticket is None:
        return "unknown", None
    if conn.execute(sa.select(feedback_answers.c.id).where(feedback_answers.c.code == code)).first() is not None:
        return "answered", ticket
    return ("closed" if at > (ticket.showtime or ticket.sold_at) + window else "open"), ticket


def store_answer(conn: sa.Connection, *, site_id: str, code: str, answer: AnswerIn, seal: CommentSeal | None,
                 window: timedelta, hours: Mapping[str, float], at: datetime) -> Outcome:
    """Store the answer to `code` in the caller's transaction, with its rollup, complaint and low-score case."""
    ticket = find_ticket(conn, site_id=site_id, code=code)
    if ticket is None:
        return Outcome("unknown")
    show = ticket.showtime or ticket.sold_at
    if at > show + window:
        return Outcome("closed")
    day = local_day(show, site_zone(conn, site_id=site_id).key)
    sealed, wrapped = seal.seal(code=code, text=answer.comment) if seal and answer.comment else (None, None)
    scores = answer.scores
    values = {"code": code, "site_id": site_id, "film": ticket.film, "hall": ticket.hall, "day": day,
              "answered_at": at, "nps": scores.nps, "film_score": scores.film, "hall_score": scores.hall,
              "staff_score": scores.staff, "comment": sealed, "comment_key": wrapped,
              "key_id": seal.key_id if sealed is not None and seal is not None else None}
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    answer_id = conn.execute(insert(feedback_answers).values(**values).on_conflict_do_nothing()
                             .returning(feedback_answers.c.id)).scalar()
    if answer_id is None:
        return Outcome("answered")  # a second submit, or a race with another hub process: the first stands
    add_answer(conn, site_id=site_id, day=day, film=ticket.film, hall=ticket.hall, scores=scores)
    complaint_id = None
    if answer.complaint is not None:
        complaint_id = open_complaint(conn, site_id=site_id, category=answer.complaint, source="form", at=at,
                                      response_hours=response_hours(answer.complaint, hours),
                                      answer_id=int(answer_id), film=ticket.film, hall=ticket.hall)
    alert_id = None
    if scores.low:
        alert_id = raise_low_score(conn, answer_id=int(answer_id), site_id=site_id, scores=scores, film=ticket.film,
                                   hall=ticket.hall, device_id=ticket.device_id, seq=ticket.seq,
                                   complaint=answer.complaint, at=at)
    return Outcome("open", int(answer_id), complaint_id, alert_id)


def list_answers(conn: sa.Connection, *, sites: frozenset[str] | None, since: datetime | None = None,
                 until: datetime | None = None, limit: int = 100, before_id: int | None = None) -> list[Any]:
    """Answers given in [since, until) at `sites` (None: every site), newest first, `limit` at most, before answer
    `before_id`; each with the id of the complaint it opened (`complaint_id`, None when none)."""
    a = feedback_answers.c
    query = sa.select(feedback_answers, complaints.c.id.label("complaint_id")).select_from(
        feedback_answers.outerjoin(complaints, complaints.c.answer_id == a.id))
    if sites is not None:
        query = query.where(a.site_id.in_(sorted(sites)))
    if since is not None:
        query = query.where(a.answered_at >= since)
    if until is not None:
        query = query.where(a.answered_at < until)
    if before_id is not None:
        query = query.where(a.id < before_id)
    return list(conn.execute(query.order_by(a.id.desc()).limit(limit)).all())


def answer_of(conn: sa.Connection, *, answer_id: int) -> Any | None:
    """One answer's row; None when there is no such answer."""
    return conn.execute(sa.select(feedback_answers).where(feedback_answers.c.id == answer_id)).one_or_none()
