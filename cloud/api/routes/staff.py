"""/api/v1/staff: staff accounts (the cashier codes tills send) and their badges; every change reaches the boxes
in the member directory. Admins change them; admins and analysts read them all, a site manager those who work at
their sites (or everywhere).

A badge is given as a card number in a POST body (never in a URL: URLs end up in access logs) and kept only as
its token; answers show the token and a label of family and last 4.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from cloud.access.audit import record_action
from cloud.api.deps import AdminDep, EngineDep, Viewer, ViewerDep
from cloud.errors import ConfigError, StaffError
from cloud.fraud.report import masked_card as masked
from cloud.members.model import CardInput, CardKind
from cloud.members.store import CardContext, card_context
from cloud.settings import HubSettings
from cloud.staff import store
from protocol.directory import MEMBER_ID_PATTERN
from protocol.fields import Id
from protocol.staff import STAFF_ID_PATTERN, StaffRole

router = APIRouter(prefix="/staff", tags=["staff"])
STATUS_OF = {"not_found": 404, "conflict": 409, "invalid": 422}
StaffIdPath = Annotated[str, Path(pattern=STAFF_ID_PATTERN, description="The cashier code tills send.")]


class BadgeOut(BaseModel):
    token: str
    label: str
    """The card's family and last 4 (e.g. `em4100:******7558`)."""
    added_at: datetime


class StaffOut(BaseModel):
    """A staff account: what boxes get (role, status, sites, badges, own membership) and when it changed."""

    staff_id: str
    role: str
    status: str
    sites: list[str]
    """Site ids they work at; empty: every site."""
    member_id: str | None
    badges: list[BadgeOut]
    created_at: datetime
    updated_at: datetime


class StaffBody(BaseModel):
    """A staff account to create, or its new state (the whole of it: a field left out takes its default)."""

    model_config = ConfigDict(extra="forbid")

    role: StaffRole
    status: Literal["active", "suspended", "left"] = "active"
    sites: Annotated[list[Id], Field(max_length=500)] = Field(default_factory=list)
    member_id: Annotated[str, Field(pattern=MEMBER_ID_PATTERN)] | None = None


class BadgeBody(BaseModel):
    """A card as the members API takes one: `family` is the kind printed on it (or "read" for the id a reader
    printed, `em4100:0003887558`), `card` its number."""

    model_config = ConfigDict(extra="forbid")

    card: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$")]
    family: CardKind

    def __repr__(self) -> str:  # never the number
        return f"BadgeBody(family={self.family!r})"

    __str__ = __repr__


def write_conn(engine: EngineDep, viewer: ViewerDep) -> Iterator[sa.Connection]:
    """A connection for a change: the route commits before it answers and before boxes are told."""
    with engine.connect() as conn:
        yield conn


TxDep = Annotated[sa.Connection, Depends(write_conn)]


def cards_of(request: Request) -> CardContext:
    """The chain's card context (pepper and card form); 503 when the hub has no pepper."""
    settings: HubSettings = request.app.state.settings
    try:
        return card_context(settings.pepper, settings.card_em4100)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


def failed(exc: StaffError) -> HTTPException:
    return HTTPException(STATUS_OF.get(exc.kind, 400), str(exc))


def _sees(viewer: Viewer, member: store.StaffMember) -> bool:
    # An account with no sites works everywhere, a site manager's sites included.
    return viewer.sites is None or not member.sites or bool(viewer.sites & set(member.sites))


def _out(member: store.StaffMember, viewer: Viewer | None = None) -> StaffOut:
    """The account as `viewer` may see it: a site manager sees only their own sites among its sites."""
    sites = member.sites if viewer is None or viewer.sites is None else [
        site for site in member.sites if site in viewer.sites]
    return StaffOut(staff_id=member.staff_id, role=member.role, status=member.status, sites=sites,
                    member_id=member.member_id, badges=[BadgeOut(token=b.token, label=b.label, added_at=b.added_at)
                                                        for b in member.badges],
                    created_at=member.created_at, updated_at=member.updated_at)


def _done(conn: sa.Connection, request: Request, staff_id: str) -> StaffOut:
    """Commit, then have the directory publisher send the change to the boxes at once."""
    conn.commit()
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.directory.notify()
    return _out(store.get_staff(conn, staff_id=staff_id))


@router.get("")
def list_staff(conn: TxDep, viewer: ViewerDep,
               site: Annotated[str | None, Query(max_length=64, description="Only those who work at this site.")]
               = None,
               state: Annotated[Literal["active", "suspended", "left"] | None, Query(alias="status")] = None,
               ) -> list[StaffOut]:
    """Staff accounts by id; `site` keeps those who work there (an account with no sites works everywhere); a
    site manager sees those who work at their sites."""
    viewer.scope(site)
    return [_out(member, viewer) for member in store.list_staff(conn, site_id=site, status=state)
            if _sees(viewer, member)]


@router.get("/{staff_id}", responses={404: {"description": "No such staff member."}})
def read(staff_id: str, conn: TxDep, viewer: ViewerDep) -> StaffOut:
    """One staff account with its badges (403 for a site manager when they work at none of their sites)."""
    try:
        member = store.get_staff(conn, staff_id=staff_id)
    except StaffError as exc:
        raise failed(exc) from exc
    if not _sees(viewer, member):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this staff member works at none of your sites")
    return _out(member, viewer)


@router.put("/{staff_id}", responses={201: {"description": "Created."}, 422: {"description": "Refused, by field."}})
def put(staff_id: StaffIdPath, body: StaffBody, conn: TxDep, viewer: AdminDep, request: Request,
        response: Response) -> StaffOut:
    """Create the staff account or set its role, status (`left` for someone who left), sites and own membership."""
    try:
        created = store.put_staff(conn, staff_id=staff_id, role=body.role, status=body.status, sites_of=body.sites,
                                  member_id=body.member_id, at=datetime.now(UTC))
    except StaffError as exc:
        raise failed(exc) from exc
    except IntegrityError as exc:  # created at the same moment by another request
        raise HTTPException(status.HTTP_409_CONFLICT, "the staff account was just created") from exc
    if created:
        response.status_code = status.HTTP_201_CREATED
    record_action(conn, actor=viewer, action="staff.create" if created else "staff.update", target=staff_id,
                  detail={"role": body.role, "status": body.status, "sites": sorted(body.sites),
                          "member": body.member_id is not None})
    return _done(conn, request, staff_id)


@router.delete("/{staff_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: {"description": "No such staff member."}})
def delete(staff_id: str, conn: TxDep, viewer: AdminDep, request: Request) -> None:
    """Delete an account entered by mistake (boxes forget it); for someone who left, set status `left`."""
    try:
        store.delete_staff(conn, staff_id=staff_id, at=datetime.now(UTC))
    except StaffError as exc:
        raise failed(exc) from exc
    record_action(conn, actor=viewer, action="staff.delete", target=staff_id)
    conn.commit()
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.directory.notify()


@router.post("/{staff_id}/badges", status_code=status.HTTP_201_CREATED,
             responses={404: {"description": "No such staff member."},
                        409: {"description": "A badge already, another member's card, or 20 badges held."}})
def add_badge(staff_id: str, body: BadgeBody, conn: TxDep, viewer: AdminDep, request: Request) -> StaffOut:
    """Give a staff member a badge (the card they sign in and approve with); kept as its token."""
    cards = cards_of(request)
    try:
        store.add_badge(conn, cards, staff_id=staff_id, card=CardInput(kind=body.family, number=body.card),
                        at=datetime.now(UTC))
    except StaffError as exc:
        raise failed(exc) from exc
    except IntegrityError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "the card was just made a badge") from exc
    record_action(conn, actor=viewer, action="staff.badge_add", target=staff_id, detail={"family": body.family})
    return _done(conn, request, staff_id)


@router.delete("/{staff_id}/badges/{token}", responses={404: {"description": "No such staff member or badge."}})
def remove_badge(staff_id: str, token: str, conn: TxDep, viewer: AdminDep, request: Request) -> StaffOut:
    """Take a badge back: boxes stop taking the card for this staff member."""
    try:
        store.remove_badge(conn, staff_id=staff_id, token=token, at=datetime.now(UTC))
    except StaffError as exc:
        raise failed(exc) from exc
    record_action(conn, actor=viewer, action="staff.badge_remove", target=staff_id, detail={"badge": masked(token)})
    return _done(conn, request, staff_id)
