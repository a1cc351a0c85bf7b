"""Members in the database: enrol (claiming an anonymous account's card), read, search, update, cards,
erasure. Every function works in the caller's transaction and leaves the directory change behind it.

Personal data goes in and out only through the vault; nothing here logs, and errors name fields only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from cloud.analytics.member_activity import merge_activity
from cloud.db.fraud_tables import staff, staff_badges
from cloud.db.schema import member_cards, member_ledger, members
from cloud.errors import ConfigError, MemberError
from cloud.members.accounts import reprogramme
from cloud.members.cards import token_and_label
from cloud.members.directory import forget_tokens, publish_member, publish_staff
from cloud.members.ledger import lock_members, recompute
from cloud.members.model import CardInput, Consent, MemberDraft, Profile
from cloud.members.vault import MemberVault
from protocol.cards import CardScheme

CARD_STATES = ("active", "lost", "blocked", "replaced")


@dataclass(frozen=True)
class CardContext:
    """What turns a card number into the chain's token: the pepper and the card form, as on every box."""

    pepper: bytes
    scheme: CardScheme

    def token(self, card: CardInput) -> tuple[str, str]:
        return token_and_label(card, pepper=self.pepper, scheme=self.scheme)


def new_member_id() -> str:
    """An opaque member id (it says nothing about the person)."""
    return f"m{secrets.token_hex(8)}"


def _member(conn: sa.Connection, member_id: str) -> Any:
    row = conn.execute(sa.select(members).where(members.c.member_id == member_id)).first()
    if row is None:
        raise MemberError("not_found", "no such member")
    return row


def _sealed(vault: MemberVault, member_id: str, profile: Profile, wrapped: bytes | None) -> dict[str, Any]:
    """The columns that hold a profile: sealed blob, wrapped key, search hashes, birthday MM-DD."""
    if wrapped is None:
        key, wrapped = vault.new_data_key(member_id)
    else:
        key = vault.unwrap(member_id, wrapped)
    return {
        "wrapped_key": wrapped, "key_id": vault.key_id,
        "profile": vault.seal_profile(member_id, key, profile),
        "phone_hash": vault.phone_hash(profile.phone) if profile.phone else None,
        "email_hash": vault.email_hash(profile.email) if profile.email else None,
        "birthday_md": profile.birthday.strftime("%m-%d") if profile.birthday else None,
    }


def _consent(consent: Consent | None) -> dict[str, Any] | None:
    return consent.model_dump(mode="json") if consent is not None else None


def _enrol_plan(conn: sa.Connection, cards: CardContext, draft: MemberDraft
                ) -> tuple[list[tuple[str, str]], dict[str, str], list[str]]:
    """The draft's cards (token, label), who holds any of them, and the anonymous accounts it claims;
    MemberError (before anything is written) when the draft cannot be enrolled."""
    tokens = [cards.token(card) for card in draft.cards]
    if len({token for token, _ in tokens}) != len(tokens):
        raise MemberError("invalid", "cards: the same card is given twice")
    if draft.external_id is not None and conn.execute(
            sa.select(members.c.member_id).where(members.c.external_id == draft.external_id)).first():
        raise MemberError("conflict", "external_id: a member with this external id exists")
    if conn.execute(sa.select(staff_badges.c.staff_id)
                    .where(staff_badges.c.card_token.in_([token for token, _ in tokens]))).first():
        raise MemberError("conflict", "cards: a card is a staff member's badge")
    holders = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)
                                .where(member_cards.c.card_token.in_([token for token, _ in tokens]))).all())
    claimed: list[str] = []
    for holder in dict.fromkeys(holders.values()):
        if _member(conn, holder).status != "anonymous":
            raise MemberError("conflict", "cards: a card belongs to another member")
        claimed.append(holder)
    return tokens, holders, claimed


def _move_staff(conn: sa.Connection, old: str, new: str, at: datetime) -> None:
    """An account merged into another: the staff member whose own membership it was now has the other (boxes
    told through the directory)."""
    moved = [row.staff_id for row in conn.execute(sa.select(staff.c.staff_id).where(staff.c.member_id == old))]
    if moved:
        conn.execute(staff.update().where(staff.c.member_id == old).values(member_id=new, updated_at=at))
        publish_staff(conn, moved, at)


def check_enrol(conn: sa.Connection, cards: CardContext, draft: MemberDraft) -> None:
    """Whether `draft` could be enrolled now (MemberError says why not); writes nothing, locks nothing."""
    _enrol_plan(conn, cards, draft)


def enrol(conn: sa.Connection, vault: MemberVault, cards: CardContext, draft: MemberDraft, *, at: datetime,
          by: str) -> str:
    """Create a member from `draft`; a card that an anonymous account holds brings that account (its id,
    points and history) into the member. MemberError(conflict) when a card belongs to another member or
    the external id is taken, raised before anything is written."""
    tokens, holders, claimed = _enrol_plan(conn, cards, draft)
    member_id = claimed[0] if claimed else new_member_id()
    values = {
        "programme": draft.programme, "status": "active", "updated_at": at, "enrolled_at": at,
        "external_id": draft.external_id, "consent": _consent(draft.consent),
        **_sealed(vault, member_id, draft.profile, None),
    }
    if claimed:
        lock_members(conn, claimed)
        conn.execute(members.update().where(members.c.member_id == member_id).values(**values))
        for other in claimed[1:]:  # one person, several anonymous cards: one account
            conn.execute(member_cards.update().where(member_cards.c.member_id == other).values(member_id=member_id))
            conn.execute(member_ledger.update().where(member_ledger.c.member_id == other).values(member_id=member_id))
            _move_staff(conn, other, member_id, at)
            merge_activity(conn, source=other, into=member_id, at=at)  # its visits and spend, for the analytics
            conn.execute(members.delete().where(members.c.member_id == other))
    else:
        conn.execute(members.insert().values(member_id=member_id, created_at=at, balance=0, redeemed=0, **values))
    new_cards = [{"card_token": token, "member_id": member_id, "state": "active", "label": label, "added_at": at,
                  "state_at": at} for token, label in tokens if token not in holders]
    if new_cards:
        conn.execute(member_cards.insert(), new_cards)
    if draft.opening_balance:
        conn.execute(member_ledger.insert().values(
            member_id=member_id, kind="import", points=draft.opening_balance, occurred_at=at, recorded_at=at))
    recompute(conn, member_id, at=at)
    publish_member(conn, member_id, at)
    return member_id


def update(conn: sa.Connection, vault: MemberVault, member_id: str, changes: dict[str, Any], *,
           at: datetime) -> None:
    """Apply `changes` (profile fields, programme, status active|suspended, consent) to a member."""
    row = _member(conn, member_id)
    if row.status == "erased":
        raise MemberError("erased", "this member was erased")
    values: dict[str, Any] = {"updated_at": at}
    profile_changes = changes.get("profile")
    if profile_changes is not None:
        current = profile(conn, vault, member_id) or Profile()
        merged = Profile.model_validate({**current.model_dump(), **profile_changes})
        values.update(_sealed(vault, member_id, merged, row.wrapped_key))
        if row.status == "anonymous":
            values.update(status="active", enrolled_at=at)
    if "programme" in changes and changes["programme"] != row.programme:
        # The account stays (points, history, activity); its tier is what it qualifies for in the new one.
        lock_members(conn, [member_id])
        values.update(programme=changes["programme"], **reprogramme(conn, member_id, changes["programme"], at=at))
    if "status" in changes:
        if row.status == "anonymous" and changes["status"] == "active" and profile_changes is None:
            raise MemberError("invalid", "status: an anonymous account becomes active by enrolment (a profile)")
        values["status"] = changes["status"]
    if "consent" in changes:
        values["consent"] = _consent(changes["consent"])
    conn.execute(members.update().where(members.c.member_id == member_id).values(**values))
    publish_member(conn, member_id, at)


def profile(conn: sa.Connection, vault: MemberVault, member_id: str) -> Profile | None:
    """The member's personal data, opened (None when they have none or were erased)."""
    row = _member(conn, member_id)
    if row.wrapped_key is None or row.profile is None:
        return None
    return vault.open_profile(member_id, vault.unwrap(member_id, row.wrapped_key), row.profile)


def add_card(conn: sa.Connection, cards: CardContext, member_id: str, card: CardInput, *, at: datetime) -> str:
    """Give the member another card; an anonymous account holding it is merged in. Returns the token."""
    row = _member(conn, member_id)
    if row.status == "erased":
        raise MemberError("erased", "this member was erased")
    token, label = cards.token(card)
    if conn.execute(sa.select(staff_badges.c.staff_id).where(staff_badges.c.card_token == token)).first():
        raise MemberError("conflict", "card: the card is a staff member's badge")
    holder = conn.execute(sa.select(member_cards.c.member_id).where(member_cards.c.card_token == token)).scalar()
    if holder == member_id:
        raise MemberError("conflict", "card: the member already holds this card")
    if holder is not None:
        if _member(conn, holder).status != "anonymous":
            raise MemberError("conflict", "card: the card belongs to another member")
        lock_members(conn, [member_id, holder])
        conn.execute(member_cards.update().where(member_cards.c.member_id == holder).values(member_id=member_id))
        conn.execute(member_ledger.update().where(member_ledger.c.member_id == holder).values(member_id=member_id))
        _move_staff(conn, holder, member_id, at)
        merge_activity(conn, source=holder, into=member_id, at=at)  # its visits and spend, for the analytics
        conn.execute(members.delete().where(members.c.member_id == holder))
        recompute(conn, member_id, at=at)
    else:
        conn.execute(member_cards.insert().values(card_token=token, member_id=member_id, state="active", label=label,
                                                  added_at=at, state_at=at))
    publish_member(conn, member_id, at)
    return token


def set_card_state(conn: sa.Connection, member_id: str, token: str, state: str, reason: str | None, *,
                   at: datetime) -> None:
    """Mark one of the member's cards lost, blocked, replaced (or active again); it stays on the member."""
    if state not in CARD_STATES:
        raise MemberError("invalid", f"state: one of {', '.join(CARD_STATES)}")
    _member(conn, member_id)
    done = conn.execute(member_cards.update().where(
        (member_cards.c.card_token == token) & (member_cards.c.member_id == member_id)
    ).values(state=state, state_at=at, reason=reason))
    if done.rowcount == 0:
        raise MemberError("not_found", "the member holds no such card")
    publish_member(conn, member_id, at)


def erase(conn: sa.Connection, member_id: str, *, at: datetime) -> None:
    """Erasure: the member's data key is destroyed (their sealed profile is unreadable everywhere, backups
    too), search hashes and consent go, boxes forget their cards; the member id and points history stay,
    without a card or a person attached."""
    row = _member(conn, member_id)
    if row.status == "erased":
        return
    tokens = [str(token) for token in conn.execute(
        sa.select(member_cards.c.card_token).where(member_cards.c.member_id == member_id)).scalars()]
    conn.execute(members.update().where(members.c.member_id == member_id).values(
        status="erased", erased_at=at, updated_at=at, wrapped_key=None, profile=None, key_id=None,
        phone_hash=None, email_hash=None, birthday_md=None, consent=None, external_id=None))
    conn.execute(member_ledger.update().where(member_ledger.c.member_id == member_id).values(card_token=None))
    conn.execute(member_cards.delete().where(member_cards.c.member_id == member_id))
    forget_tokens(conn, tokens, at)


def find(conn: sa.Connection, *, token: str | None = None, phone_hash: str | None = None,
         email_hash: str | None = None, limit: int = 50) -> list[str]:
    """Member ids matching a card token, a phone hash or an e-mail hash (all given must match)."""
    query = sa.select(members.c.member_id).where(members.c.status != "erased")
    if token is not None:
        query = query.where(members.c.member_id.in_(
            sa.select(member_cards.c.member_id).where(member_cards.c.card_token == token)))
    if phone_hash is not None:
        query = query.where(members.c.phone_hash == phone_hash)
    if email_hash is not None:
        query = query.where(members.c.email_hash == email_hash)
    return [str(value) for value in conn.execute(query.order_by(members.c.member_id).limit(limit)).scalars()]


def now() -> datetime:
    return datetime.now(UTC)


def card_context(pepper: SecretStr | None, em4100: str) -> CardContext:
    """The chain's card context from the hub's settings; ConfigError when the pepper is not set."""
    if pepper is None:
        raise ConfigError("the hub has no card pepper: set MARQUEE_HUB_PEPPER to the boxes' pepper")
    return CardContext(pepper.get_secret_value().encode(), CardScheme.model_validate({"em4100": em4100}))
