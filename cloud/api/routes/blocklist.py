"""/api/v1/blocklist: cards and members the fraud rules decline at every box. Admins change it; each change is
the next version, published whole, signed and retained, to every box. Admins and analysts read it (it is the
chain's: a site manager does not).

A card is listed by its token: given as a number in a POST body (never in a URL), or as the token itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import IntegrityError

from cloud.access.audit import record_action
from cloud.api.deps import AdminDep, AnalystDep, ConnDep, SettingsDep, Viewer
from cloud.api.routes.staff import TxDep, cards_of, failed
from cloud.bundles import load_signing_key
from cloud.errors import HubError, StaffError
from cloud.fraud.report import masked_card as masked
from cloud.members.model import CardInput, CardKind
from cloud.staff import blocklist
from protocol.directory import MEMBER_ID_PATTERN, TOKEN_PATTERN

router = APIRouter(prefix="/blocklist", tags=["staff"])
REPUBLISHED = "the hub publishes it again when it reconnects to the broker, and with the next change"


class ListedOut(BaseModel):
    kind: str
    value: str
    """The card's token, or the member id."""
    reason: str | None
    added_at: datetime
    added_by: str | None


class BlocklistOut(BaseModel):
    """The blocklist at HQ: its version (0 before the first change) and every entry."""

    version: int
    issued_at: datetime | None
    entries: list[ListedOut]


class Listing(BaseModel):
    """A card (its number with `family`, or its `token`) or a member (`member_id`) to list, and why."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["card", "member"]
    card: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    family: CardKind | None = None
    token: Annotated[str, Field(pattern=TOKEN_PATTERN)] | None = None
    member_id: Annotated[str, Field(pattern=MEMBER_ID_PATTERN)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]

    @model_validator(mode="after")
    def _one_subject(self) -> Listing:
        if self.kind == "card":
            if self.member_id is not None or (self.card is None) == (self.token is None):
                raise ValueError("a card is given as `card` with `family`, or as `token`, not both")
            if self.card is not None and self.family is None:
                raise ValueError("`family` says what kind of card `card` is")
        elif self.member_id is None or self.card is not None or self.token is not None:
            raise ValueError("a member is given as `member_id` alone")
        return self

    def __repr__(self) -> str:  # never the number
        return f"Listing(kind={self.kind!r})"

    __str__ = __repr__


class Changed(BaseModel):
    """A change kept as `version`; `published` once the broker took the whole list (else `detail` says why)."""

    version: int
    kind: str
    value: str
    published: bool
    detail: str | None = None


@router.get("")
def read(conn: ConnDep, viewer: AnalystDep) -> BlocklistOut:
    """Every listed card token and member id, with who listed it, when and why."""
    current = blocklist.current(conn)
    return BlocklistOut(version=current.version if current else 0, issued_at=current.issued_at if current else None,
                        entries=[ListedOut(kind=e.kind, value=e.value, reason=e.reason, added_at=e.added_at,
                                           added_by=e.added_by) for e in blocklist.entries(conn)])


@router.post("", status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "Listed already, or the list is full."},
                        422: {"description": "Refused, by field (never the card number)."}})
def add(body: Listing, conn: TxDep, viewer: AdminDep, settings: SettingsDep, request: Request) -> Changed:
    """List a card or a member; the whole list, signed, is published to every box."""
    if body.kind == "member":
        value = str(body.member_id)
    elif body.token is not None:
        value = body.token
    else:
        assert body.card is not None and body.family is not None
        try:
            value = blocklist.card_value(cards_of(request), CardInput(kind=body.family, number=body.card))
        except StaffError as exc:
            raise failed(exc) from exc
    return _change(conn, settings, lambda at: blocklist.add(conn, kind=body.kind, value=value, reason=body.reason,
                                                            by=viewer.username, at=at), body.kind, value,
                   viewer, "blocklist.add")


@router.delete("/{kind}/{value}", responses={404: {"description": "Not on the blocklist."}})
def remove(kind: Literal["card", "member"], value: str, conn: TxDep, viewer: AdminDep,
           settings: SettingsDep) -> Changed:
    """Take a card (by token) or a member off the blocklist; the whole list is published again."""
    return _change(conn, settings, lambda at: blocklist.remove(conn, kind=kind, value=value, at=at), kind, value,
                   viewer, "blocklist.remove")


def _change(conn: TxDep, settings: SettingsDep, change: Callable[[datetime], int], kind: str, value: str,
            viewer: Viewer, action: str) -> Changed:
    try:
        key = load_signing_key(settings.rules_key_file)
    except HubError as exc:  # nothing changes that could not be published
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    try:
        version = change(datetime.now(UTC))
    except StaffError as exc:
        raise failed(exc) from exc
    except IntegrityError as exc:  # the same entry listed at the same moment by another request
        raise HTTPException(status.HTTP_409_CONFLICT, f"this {kind} was just listed") from exc
    record_action(conn, actor=viewer, action=action, target=f"{kind}:{masked(value) if kind == 'card' else value}",
                  detail={"version": version})
    conn.commit()  # kept before it is announced
    listed = blocklist.signed(conn, key)
    conn.rollback()
    if listed is None:
        return Changed(version=version, kind=kind, value=value, published=False, detail="nothing to publish")
    try:
        blocklist.push(settings, listed)  # a sync route: FastAPI runs it on the thread pool
    except HubError as exc:
        return Changed(version=version, kind=kind, value=value, published=False,
                       detail=f"kept but not published: {exc}; {REPUBLISHED}")
    return Changed(version=version, kind=kind, value=value, published=True)
