"""The public feedback page per site, reached from the code on a ticket (no login): GET shows the form, POST takes
one answer per code (docs/feedback.md).

Plain server-rendered HTML (autoescaped: whatever a till named a film, or anyone typed, shows as text), no script,
no asset from elsewhere, strict headers. Abuse: limits per client address and per site before anything is read
(429 with Retry-After), a bounded body, one answer per code, only a code of that site within its window. The
comment is sealed (or not kept, when the hub has no member key) and never logged.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import sqlalchemy as sa
from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cloud.analytics.localtime import site_zone
from cloud.api.login_guard import client_key
from cloud.db.schema import sites
from cloud.feedback.alerts import Scores
from cloud.feedback.answers import AnswerIn, Outcome, State, store_answer, ticket_state
from cloud.feedback.categories import CATEGORIES, Category
from cloud.feedback.limits import FormLimits
from cloud.feedback.sealing import MAX_COMMENT, CommentSeal, app_seal
from cloud.ingest.counters import Throttle
from cloud.settings import HubSettings
from cloud.web.templating import STATIC_DIR, templates
from protocol.calendar import local
from protocol.feedback import normal_code
from protocol.ids import is_valid_id

log = logging.getLogger(__name__)
_limited_log = Throttle(log)
_busy_log = Throttle(log)

router = APIRouter(tags=["feedback"])

PAGE_HEADERS = {
    # Nothing on these pages comes from elsewhere or runs: an injected tag has nothing to load and cannot act.
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_BODY = 16 * 1024
"""The largest form body read (a full comment percent-encoded fits four times over); beyond, 413."""
CSS_FILE = STATIC_DIR / "feedback_form.css"
QUESTIONS = (("film", "How was the film?"), ("hall", "The hall: picture, sound, comfort?"),
             ("staff", "The staff and the bar?"))
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

SiteId = Annotated[str, Path(description="The site's id (any other value gets the page of an unknown ticket).")]
Code = Annotated[str, Path(description="The ticket's feedback code, 16 characters (lower case, I, L and O read as "
                                       "1 and 0); any other value gets the page of an unknown ticket.")]


def _html(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}, **extra}


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _html("The ticket is not known (yet: the site may be offline), or not this site's."),
    409: _html("This ticket was answered already."),
    410: _html("The form for this ticket has closed."),
    429: _html("Too many requests from this address or to this site.", headers=_RETRY_AFTER),
    503: _html("The database is out of reach, or the page's connections are all taken.", headers=_RETRY_AFTER),
}


class FormIn(BaseModel):
    """The form as posted (application/x-www-form-urlencoded); a question left out is skipped."""

    model_config = ConfigDict(extra="ignore")

    nps: Annotated[int, Field(ge=0, le=10)]
    film: Annotated[int, Field(ge=1, le=5)] | None = None
    hall: Annotated[int, Field(ge=1, le=5)] | None = None
    staff: Annotated[int, Field(ge=1, le=5)] | None = None
    comment: Annotated[str, Field(max_length=2 * MAX_COMMENT)] = ""
    """At most 1,000 characters are kept (a browser sends a line break as two)."""
    complaint: Category | Literal[""] = ""
    """A category: the filmgoer wants a reply, and a complaint is opened."""


@dataclass(frozen=True, slots=True)
class FormView:
    state: State
    site_name: str | None
    film: str | None = None
    hall: str | None = None
    show: str | None = None
    closes: str | None = None


@router.get("/f/feedback.css", include_in_schema=False)
async def stylesheet() -> Response:
    """The form's only stylesheet."""
    return Response(CSS_FILE.read_bytes(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


@router.get("/f/{site_id}/{code}", response_class=HTMLResponse, responses=RESPONSES)
async def form(request: Request, site_id: SiteId, code: Code) -> HTMLResponse:
    """The feedback form of a ticket (no login): at most five questions."""
    limited = _limited(request, site_id)
    if limited is not None:
        return limited
    settings = _settings(request)
    canonical = normal_code(code) if is_valid_id(site_id) else None
    now = datetime.now(UTC)
    if canonical is None:
        return _message(request, "unknown", None)
    try:
        view = await run_in_threadpool(_view, request.app.state.public_engine, site_id, canonical,
                                       timedelta(days=settings.feedback_window_days), now)
    except SQLAlchemyError as exc:
        return _busy(request, exc)
    if view.state != "open":
        return _message(request, view.state, view.site_name)
    return _render(request, "feedback_form.html", {
        "title": "How was your visit?", "site_name": view.site_name, "film": view.film, "hall": view.hall,
        "show": view.show, "closes": view.closes, "scored": QUESTIONS, "categories": CATEGORIES,
        "comments_kept": app_seal(request.app.state, settings) is not None, "max_comment": MAX_COMMENT})


@router.post("/f/{site_id}/{code}", response_class=HTMLResponse, openapi_extra={"requestBody": {
    "required": True, "content": {"application/x-www-form-urlencoded": {"schema": FormIn.model_json_schema()}}}},
             responses={**RESPONSES, 413: _html("The form is larger than any answer can be."),
                        422: _html("An answer is out of range or missing (the page names which).")})
async def answer(request: Request, site_id: SiteId, code: Code) -> HTMLResponse:
    """Take the answer to a ticket's form: one per code, for a code of this site, within the window after the show.
    A low score reaches the site's manager through the alert channels within seconds."""
    limited = _limited(request, site_id)
    if limited is not None:
        return limited
    settings = _settings(request)
    canonical = normal_code(code) if is_valid_id(site_id) else None
    if canonical is None:
        return _message(request, "unknown", None)
    body = await _read_body(request)
    if body is None:
        return _message(request, "too_large", None)
    fields = _fields(body)
    if fields is None:
        return _message(request, "invalid", None, problems=["the form: more fields than it has"])
    try:
        posted = FormIn.model_validate(fields)
    except ValidationError as exc:  # where and what only: the input may be a phone number or an e-mail
        problems = [f"{_label(error.get('loc', ()))}: {error.get('msg', '')}" for error in exc.errors()[:10]]
        return _message(request, "invalid", None, problems=problems)
    seal = app_seal(request.app.state, settings)
    comment = _clean(posted.comment) if seal is not None else None
    answer_in = AnswerIn(Scores(posted.nps, posted.film, posted.hall, posted.staff), comment,
                         posted.complaint or None)
    try:
        outcome, name = await run_in_threadpool(_store, request.app.state.public_engine, settings, site_id,
                                                canonical, answer_in, seal, datetime.now(UTC))
    except SQLAlchemyError as exc:
        return _busy(request, exc)
    courier = getattr(request.app.state, "courier", None)
    if outcome.alert_id is not None and courier is not None:
        courier.notify()  # delivered now rather than at the courier's next poll
    if outcome.state == "unknown":
        return _message(request, "unknown", name)
    shown = name or site_id  # the ticket is this site's: the site exists
    if outcome.state != "open":
        return _message(request, outcome.state, shown)
    return _message(request, "thanks", shown, complaint=outcome.complaint_id is not None)


def _view(engine: sa.Engine, site_id: str, code: str, window: timedelta, now: datetime) -> FormView:
    with engine.connect() as conn:
        name = conn.execute(sa.select(sites.c.name).where(sites.c.site_id == site_id)).scalar()
        state, ticket = ticket_state(conn, site_id=site_id, code=code, window=window, at=now)
        if state != "open" or ticket is None:
            return FormView(state, name)
        zone = site_zone(conn, site_id=site_id).key
    show_at = ticket.showtime or ticket.sold_at
    show = local(ticket.showtime, zone).strftime("%a %d %b, %H:%M") if ticket.showtime else None
    closes = local(show_at + window, zone).strftime("%d %B %Y")
    return FormView(state, name or site_id, ticket.film, ticket.hall, show, closes)


def _store(engine: sa.Engine, settings: HubSettings, site_id: str, code: str, answer_in: AnswerIn,
           seal: CommentSeal | None, now: datetime) -> tuple[Outcome, str | None]:
    with engine.begin() as conn:
        outcome = store_answer(conn, site_id=site_id, code=code, answer=answer_in, seal=seal,
                               window=timedelta(days=settings.feedback_window_days),
                               hours=settings.complaint_response_hours, at=now)
        name = conn.execute(sa.select(sites.c.name).where(sites.c.site_id == site_id)).scalar()
    return outcome, str(name) if name else None


def _settings(request: Request) -> HubSettings:
    settings: HubSettings = request.app.state.settings
    return settings


def _limited(request: Request, site_id: str) -> HTMLResponse | None:
    """The 429 page when this client or this site is over its limit; None (and the request counted) otherwise."""
    limits: FormLimits | None = getattr(request.app.state, "feedback_limits", None)
    if limits is None:  # one per app, made on its first request (the event loop's thread: no race)
        limits = request.app.state.feedback_limits = FormLimits.from_settings(_settings(request))
    client = client_key(request.client.host if request.client else None)
    wait = limits.admit(client=client, site_id=site_id, now=time.monotonic())
    if wait is None:
        return None
    _limited_log.warning("feedback form: refusing requests from %s or to site %s for %d s (rate limit)", client,
                         site_id[:64] if is_valid_id(site_id) else "(not a site id)", wait)
    return _message(request, "limited", None, headers={"Retry-After": str(wait)})


async def _read_body(request: Request) -> bytes | None:
    """The request's body, or None when it is larger than any form (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def _fields(body: bytes) -> dict[str, str] | None:
    """The form's fields (the first value of each); a blank score is a skipped question. None for a body of more
    fields than any form has."""
    try:
        parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=50,
                          encoding="utf-8", errors="replace")
    except ValueError:  # more than max_num_fields
        return None
    fields = {name: values[0] for name, values in parsed.items()}
    return {name: value for name, value in fields.items() if value != "" or name in ("comment", "complaint")}


def _clean(comment: str) -> str | None:
    """The comment as kept: line breaks as one character, no control character, at most MAX_COMMENT; None if
    nothing is left."""
    text = _CONTROL.sub("", comment.replace("\r\n", "\n").replace("\r", "\n")).strip()
    return text[:MAX_COMMENT] or None


def _label(loc: tuple[int | str, ...]) -> str:
    names = {"nps": "question 1", "film": "question 2", "hall": "question 3", "staff": "question 4",
             "comment": "question 5", "complaint": "the complaint's subject"}
    return names.get(str(loc[0]), str(loc[0])[:40]) if loc else "the form"


MESSAGES: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "thanks": (200, "Thank you!", ("Your answer is in. It helps us make your next visit better.",)),
    "answered": (409, "Already answered", ("This ticket's form was answered already: one answer per ticket. "
                                           "Thank you!",)),
    "unknown": (404, "We do not know this ticket yet", (
        "Tickets reach us a little after they are sold, sometimes later when the cinema's connection is down. "
        "Please try again later.", "If you typed the code, check it against your ticket.")),
    "closed": (410, "This form has closed", ("Answers are taken for a few days after the show. Thank you all "
                                             "the same!",)),
    "limited": (429, "Too many requests", ("Please wait a little before trying again.",)),
    "too_large": (413, "That is too long", ("The form sent is larger than any answer can be.",)),
    "invalid": (422, "Please check your answers", ("Something in the form was not as expected:",)),
    "busy": (503, "We are busy", ("Please try again in a minute: your answer was not taken yet.",)),
}


def _busy(request: Request, exc: SQLAlchemyError) -> HTMLResponse:
    """The database is out of reach or the page's connections are all taken: a page to come back later."""
    _busy_log.warning("feedback page: database unavailable or busy (%s)", type(exc).__name__)
    return _message(request, "busy", None, headers={"Retry-After": "60"})


def _message(request: Request, kind: str, site_name: str | None, *, problems: list[str] | None = None,
             complaint: bool = False, headers: dict[str, str] | None = None) -> HTMLResponse:
    status, title, lines = MESSAGES[kind]
    if complaint:
        lines = (*lines, "Your complaint is with the cinema's managers, who will answer it.")
    return _render(request, "feedback_message.html", {"title": title, "site_name": site_name, "lines": lines,
                                                      "problems": problems or []}, status, headers)


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status,
                                      headers={**PAGE_HEADERS, **(headers or {})})
