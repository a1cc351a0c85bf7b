"""/api/v1/members: enrol, read, search, update, cards, erasure, and each member's points history.

Personal data (the profile) is sealed at rest and shown only to roles allowed to see it (admins); every
such read, change and erasure is recorded in `pii_access`. Search takes its card number, phone or e-mail
in a POST body, never in a URL (URLs end up in access logs).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import IntegrityError

from cloud.access.audit import record_action
from cloud.api.deps import AnalystDep, EngineDep, Viewer
from cloud.api.schemas import ErrorOut
from cloud.db.schema import member_cards, members, pii_access
from cloud.errors import ConfigError, MemberError
from cloud.fraud.report import masked_card as masked
from cloud.members import store
from cloud.members.accounts import running_bundle
from cloud.members.ledger import ledger_of
from cloud.members.model import CardInput, Consent, MemberDraft, Profile
from cloud.members.vault import MemberVault, vault_from_settings
from cloud.settings import HubSettings

router = APIRouter(prefix="/members", tags=["members"], responses={
    400: {"model": ErrorOut, "description": "The request cannot be done as asked."},
    404: {"model": ErrorOut, "description": "No such member (or card)."},
    409: {"model": ErrorOut, "description": "The change conflicts with what is stored (a card held by another)."},
    410: {"model": ErrorOut, "description": "The member was erased."}})
PII_ROLES = ("admin",)
"""Roles that see and change members' personal data."""
_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422, "erased": 410}


class CardOut(BaseModel):
    token: str
    label: str
    state: str
    added_at: datetime
    state_at: datetime
    reason: str | None


class MemberOut(BaseModel):
    """A member as the API shows it; `profile` is null unless the caller may see personal data."""

    member_id: str
    programme: str
    status: str
    created_at: datetime
    enrolled_at: datetime | None
    erased_at: datetime | None
    balance: int
    tier: str | None
    """The tier under the running rules (null when they have no tiers)."""
    account: dict[str, Any] | None
    """The loyalty account the rules keep: points by the month they were earned in (what expires first),
    visits and spend per month, lifetime spend, passes, the tier; null before the member's first event."""
    redeemed_day: str | None
    redeemed: int
    cards: list[CardOut]
    consent: dict[str, Any] | None
    profile: Profile | None
    profile_visible: bool


class ProfileChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    birthday: str | None = None


class MemberChanges(BaseModel):
    """Only the fields given change; a profile field given as null is cleared."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_null_settings(self) -> MemberChanges:
        for name in ("programme", "status", "consent"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        return self

    profile: ProfileChanges | None = None
    programme: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None
    status: Literal["active", "suspended"] | None = None
    consent: Consent | None = None


class CardState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["active", "lost", "blocked", "replaced"]
    reason: Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None


class Search(BaseModel):
    """All given must match: a card (as read or as printed), a phone, an e-mail."""

    model_config = ConfigDict(extra="forbid")

    card: CardInput | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    email: Annotated[str, Field(max_length=254)] | None = None


class LedgerRow(BaseModel):
    id: int
    kind: str
    points: int
    occurred_at: datetime
    recorded_at: datetime
    site_id: str | None
    device_id: str | None
    seq: int | None
    sale_id: str | None
    rules_version: int | None


def _vault(request: Request) -> MemberVault:
    vault = getattr(request.app.state, "member_vault", None)
    if vault is None:
        settings: HubSettings = request.app.state.settings
        try:
            vault = vault_from_settings(settings.member_key, settings.member_key_file)
        except ConfigError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        request.app.state.member_vault = vault
    return vault


def _cards(request: Request) -> store.CardContext:
    settings: HubSettings = request.app.state.settings
    try:
        return store.card_context(settings.pepper, settings.card_em4100)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


def _write_conn(engine: EngineDep, viewer: AnalystDep) -> Iterator[sa.Connection]:
    # Each route commits before it answers (and before boxes are told): what it did, and the record of
    # who saw personal data. An error leaves nothing behind.
    with engine.connect() as conn:
        yield conn


VaultDep = Annotated[MemberVault, Depends(_vault)]
CardsDep = Annotated[store.CardContext, Depends(_cards)]
TxDep = Annotated[sa.Connection, Depends(_write_conn)]


def _pii_user(user: Viewer) -> None:
    if user.role not in PII_ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may see or change members' personal data")


def _record(conn: sa.Connection, user: Viewer, member_id: str, action: str) -> None:
    conn.execute(pii_access.insert().values(at=store.now(), username=user.username, member_id=member_id,
                                            action=action))


def _fail(exc: MemberError) -> HTTPException:
    return HTTPException(_STATUS.get(exc.kind, 400), str(exc))


def _view(conn: sa.Connection, vault: MemberVault | None, user: Viewer, member_id: str) -> MemberOut:
    row = conn.execute(sa.select(members).where(members.c.member_id == member_id)).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such member")
    cards = conn.execute(sa.select(member_cards).where(member_cards.c.member_id == member_id)
                         .order_by(member_cards.c.added_at)).all()
    visible = user.role in PII_ROLES and vault is not None
    profile = None
    if visible and row.wrapped_key is not None:
        profile = store.profile(conn, vault, member_id)  # type: ignore[arg-type]
        _record(conn, user, member_id, "read")
    return MemberOut(
        member_id=row.member_id, programme=row.programme, status=row.status, created_at=row.created_at,
        enrolled_at=row.enrolled_at, erased_at=row.erased_at, balance=row.balance,
        tier=_tier(conn, row.programme, (row.account or {}).get("tier")), account=row.account,
        redeemed_day=row.redeemed_day.isoformat() if row.redeemed_day else None, redeemed=row.redeemed,
        cards=[CardOut(token=card.card_token, label=card.label, state=card.state, added_at=card.added_at,
                       state_at=card.state_at, reason=card.reason) for card in cards],
        consent=row.consent if visible else None, profile=profile, profile_visible=visible,
    )


def _tier(conn: sa.Connection, programme: str, tier: str | None) -> str | None:
    """The member's tier under the running rules (a member never ranked holds the lowest); None without tiers."""
    level = running_bundle(conn).rules_for(programme).level(tier)
    return level.tier_id if level is not None else None


def _vault_if_allowed(request: Request, user: Viewer) -> MemberVault | None:
    return _vault(request) if user.role in PII_ROLES else None


@router.post("", status_code=status.HTTP_201_CREATED)
def enrol(draft: MemberDraft, conn: TxDep, user: AnalystDep, vault: VaultDep, cards: CardsDep,
          request: Request) -> MemberOut:
    """Enrol a member; a card an anonymous account holds brings its points and history along."""
    _pii_user(user)
    try:
        member_id = store.enrol(conn, vault, cards, draft, at=store.now(), by=user.username)
    except MemberError as exc:
        raise _fail(exc) from exc
    except IntegrityError as exc:  # enrolled at the same moment by another request: the later one loses
        raise HTTPException(status.HTTP_409_CONFLICT, "a card or the external id was just enrolled") from exc
    _record(conn, user, member_id, "create")
    record_action(conn, actor=user, action="member.create", target=member_id, detail={"cards": len(draft.cards)})
    return _done(conn, request, _view(conn, vault, user, member_id))


@router.post("/search")
def search(query: Search, conn: TxDep, user: AnalystDep, request: Request) -> list[MemberOut]:
    """Members holding the card, or with this phone or e-mail (by keyed hash: nobody is decrypted to search)."""
    if query.card is None and query.phone is None and query.email is None:
        raise HTTPException(422, "give a card, a phone or an e-mail")
    if (query.phone or query.email) and user.role not in PII_ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may search by phone or e-mail")
    token = None
    if query.card is not None:
        try:
            token, _ = _cards(request).token(query.card)
        except MemberError as exc:
            raise _fail(exc) from exc
    vault = _vault_if_allowed(request, user)
    found = store.find(
        conn, token=token,
        phone_hash=vault.phone_hash(query.phone) if vault and query.phone else None,
        email_hash=vault.email_hash(query.email) if vault and query.email else None)
    views = [_view(conn, vault, user, member_id) for member_id in found]
    conn.commit()
    return views


@router.get("/{member_id}")
def read(member_id: str, conn: TxDep, user: AnalystDep, request: Request) -> MemberOut:
    """A member, with personal data for admins (each such read is recorded)."""
    view = _view(conn, _vault_if_allowed(request, user), user, member_id)
    conn.commit()
    return view


@router.patch("/{member_id}")
def change(member_id: str, changes: MemberChanges, conn: TxDep, user: AnalystDep, vault: VaultDep,
           request: Request) -> MemberOut:
    """Change a member's profile, programme, status (active or suspended) or consent."""
    _pii_user(user)
    given = changes.model_dump(exclude_unset=True)
    if changes.profile is not None:
        given["profile"] = changes.profile.model_dump(exclude_unset=True)
    if changes.consent is not None:
        given["consent"] = changes.consent
    try:
        store.update(conn, vault, member_id, given, at=store.now())
    except MemberError as exc:
        raise _fail(exc) from exc
    except ValueError as exc:  # a profile that does not validate: fields only
        raise HTTPException(422, "profile: a field is not valid") from exc
    _record(conn, user, member_id, "update")
    # Which fields changed, never their values.
    fields = sorted(f"profile.{name}" if section == "profile" else section
                    for section, value in given.items()
                    for name in (value if section == "profile" and isinstance(value, dict) else [section]))
    record_action(conn, actor=user, action="member.update", target=member_id, detail={"fields": fields})
    return _done(conn, request, _view(conn, vault, user, member_id))


@router.post("/{member_id}/cards", status_code=status.HTTP_201_CREATED)
def add_card(member_id: str, card: CardInput, conn: TxDep, user: AnalystDep, cards: CardsDep,
             request: Request) -> MemberOut:
    """Give the member another card (an anonymous account holding it is merged in)."""
    _pii_user(user)
    try:
        store.add_card(conn, cards, member_id, card, at=store.now())
    except MemberError as exc:
        raise _fail(exc) from exc
    except IntegrityError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "the card was just given to a member") from exc
    record_action(conn, actor=user, action="member.card_add", target=member_id, detail={"family": card.kind})
    return _done(conn, request, _view(conn, _vault(request), user, member_id))


@router.put("/{member_id}/cards/{token}")
def set_card(member_id: str, token: str, change: CardState, conn: TxDep, user: AnalystDep,
             request: Request) -> MemberOut:
    """Mark a card lost, blocked or replaced (it stays on the member, with its history), or active again."""
    _pii_user(user)
    try:
        store.set_card_state(conn, member_id, token, change.state, change.reason, at=store.now())
    except MemberError as exc:
        raise _fail(exc) from exc
    record_action(conn, actor=user, action="member.card_state", target=member_id,
                  detail={"card": masked(token), "state": change.state})
    return _done(conn, request, _view(conn, _vault(request), user, member_id))


@router.delete("/{member_id}")
def erase(member_id: str, conn: TxDep, user: AnalystDep, request: Request) -> MemberOut:
    """Erasure: the member's data key is destroyed and every box forgets their cards; points history stays."""
    _pii_user(user)
    try:
        store.erase(conn, member_id, at=store.now())
    except MemberError as exc:
        raise _fail(exc) from exc
    _record(conn, user, member_id, "erase")
    record_action(conn, actor=user, action="member.erase", target=member_id)
    return _done(conn, request, _view(conn, None, user, member_id))


@router.get("/{member_id}/ledger")
def ledger(member_id: str, conn: TxDep, user: AnalystDep,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           before_id: Annotated[int | None, Query(ge=1)] = None) -> list[LedgerRow]:
    """The member's points history, newest first: earned and redeemed at tills, imported, adjusted."""
    if conn.execute(sa.select(members.c.member_id).where(members.c.member_id == member_id)).first() is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such member")
    return [LedgerRow.model_validate(row, from_attributes=True)
            for row in ledger_of(conn, member_id, limit=limit, before_id=before_id)]


def _done(conn: sa.Connection, request: Request, view: MemberOut) -> MemberOut:
    """Commit, then have the directory publisher send the change to the boxes at once."""
    conn.commit()
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.directory.notify()
    return view
