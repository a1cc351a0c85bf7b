"""Staff accounts in the database: create or change one, give and take back badges, read them. Every change is
recorded in the member directory's change log in the caller's transaction, so boxes get it in order with the
members' changes.

A badge is given as a card number and kept only as its token (the chain's pepper, as member cards are), with a
label of family and last 4; errors never hold the number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

import sqlalchemy as sa

from cloud.db.fraud_tables import staff, staff_badges
from cloud.db.schema import member_cards, members, sites
from cloud.errors import MemberError, StaffError
from cloud.members.directory import publish_staff
from cloud.members.model import CardInput
from cloud.members.store import CardContext
from protocol.staff import STAFF_ID_PATTERN, StaffRole

ROLES: tuple[str, ...] = get_args(StaffRole)
STATUSES = ("active", "suspended", "left")
MAX_BADGES = 20
"""Badges one staff member may hold (what a box takes in one `StaffEntry`)."""
_STAFF_ID = re.compile(STAFF_ID_PATTERN)


@dataclass(frozen=True)
class Badge:
    token: str
    label: str
    added_at: datetime


@dataclass(frozen=True)
class StaffMember:
    """A staff account as HQ sees it: what boxes get, plus its badges' labels and its times."""

    staff_id: str
    role: str
    status: str
    sites: list[str]
    member_id: str | None
    badges: list[Badge]
    created_at: datetime
    updated_at: datetime


def _checked_id(staff_id: str) -> None:
    if not _STAFF_ID.match(staff_id):
        raise StaffError("invalid", "staff_id: 1 to 32 letters, digits, '.', '_' or '-', starting with a letter "
                                    "or digit (the cashier code tills send)")


def _row(conn: sa.Connection, staff_id: str) -> sa.Row[tuple[object, ...]]:
    row = conn.execute(sa.select(staff).where(staff.c.staff_id == staff_id)).first()
    if row is None:
        raise StaffError("not_found", "no such staff member")
    return row


def put_staff(conn: sa.Connection, *, staff_id: str, role: str, status: str = "active",
              sites_of: Sequence[str] = (), member_id: str | None = None, at: datetime) -> bool:
    """Create the staff account `staff_id` or change it (role, status, sites, own membership); True when created.
    StaffError(invalid) for an unknown role, status, site or member, before anything is written."""
    _checked_id(staff_id)
    if role not in ROLES:
        raise StaffError("invalid", f"role: one of {', '.join(ROLES)}")
    if status not in STATUSES:
        raise StaffError("invalid", f"status: one of {', '.join(STATUSES)}")
    wanted = sorted(set(sites_of))
    if wanted:
        known = set(conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id.in_(wanted))).scalars())
        unknown = [site for site in wanted if site not in known]
        if unknown:
            named = ", ".join(repr(site[:64]) for site in unknown[:5])
            raise StaffError("invalid", f"sites: {named} {'is' if len(unknown) == 1 else 'are'} not a registered "
                                        "site (register the site's box first: `marquee-hub devices add`)")
    if member_id is not None:
        held = conn.execute(sa.select(members.c.status).where(members.c.member_id == member_id)).scalar()
        if held is None or held == "erased":
            raise StaffError("invalid", "member_id: no such member")
    values = {"role": role, "status": status, "sites": wanted, "member_id": member_id, "updated_at": at}
    done = conn.execute(staff.update().where(staff.c.staff_id == staff_id).values(**values))
    created = done.rowcount == 0
    if created:
        conn.execute(staff.insert().values(staff_id=staff_id, created_at=at, **values))
    publish_staff(conn, [staff_id], at)
    return created


def add_badge(conn: sa.Connection, cards: CardContext, *, staff_id: str, card: CardInput, at: datetime) -> str:
    """Give the staff member a badge (a card number, kept as its token); returns the token. StaffError(conflict)
    when the card is a badge already or another person's member card (their own membership's is fine)."""
    row = _row(conn, staff_id)
    try:
        token, label = cards.token(card)
    except MemberError as exc:  # the card's form is wrong: the message says how, never the number
        raise StaffError("invalid", str(exc)) from exc
    if conn.execute(sa.select(staff_badges.c.staff_id).where(staff_badges.c.card_token == token)).first():
        raise StaffError("conflict", "card: this card is a badge already")
    holder = conn.execute(sa.select(member_cards.c.member_id).where(member_cards.c.card_token == token)).scalar()
    if holder is not None and holder != row.member_id:
        raise StaffError("conflict", "card: this card is another member's loyalty card")
    count = conn.execute(sa.select(sa.func.count()).select_from(staff_badges)
                         .where(staff_badges.c.staff_id == staff_id)).scalar_one()
    if count >= MAX_BADGES:
        raise StaffError("conflict", f"badges: a staff member holds at most {MAX_BADGES}; take one back first")
    conn.execute(staff_badges.insert().values(card_token=token, staff_id=staff_id, label=label, added_at=at))
    conn.execute(staff.update().where(staff.c.staff_id == staff_id).values(updated_at=at))
    publish_staff(conn, [staff_id], at)
    return token


def remove_badge(conn: sa.Connection, *, staff_id: str, token: str, at: datetime) -> None:
    """Take a badge back: boxes stop taking it for this staff member."""
    _row(conn, staff_id)
    done = conn.execute(staff_badges.delete().where(
        (staff_badges.c.card_token == token) & (staff_badges.c.staff_id == staff_id)))
    if done.rowcount == 0:
        raise StaffError("not_found", "the staff member holds no such badge")
    conn.execute(staff.update().where(staff.c.staff_id == staff_id).values(updated_at=at))
    publish_staff(conn, [staff_id], at)


def delete_staff(conn: sa.Connection, *, staff_id: str, at: datetime) -> None:
    """Delete a staff account entered by mistake, badges and all: boxes forget it. (Someone who leaves is set
    to status `left` instead: their record stays.)"""
    _row(conn, staff_id)
    conn.execute(staff_badges.delete().where(staff_badges.c.staff_id == staff_id))
    conn.execute(staff.delete().where(staff.c.staff_id == staff_id))
    publish_staff(conn, [staff_id], at)


def get_staff(conn: sa.Connection, *, staff_id: str) -> StaffMember:
    """One staff account; StaffError(not_found) when there is none."""
    _row(conn, staff_id)
    return list_staff(conn, staff_ids=[staff_id])[0]


def list_staff(conn: sa.Connection, *, site_id: str | None = None, status: str | None = None,
               staff_ids: Sequence[str] | None = None) -> list[StaffMember]:
    """Staff accounts by id: all, those of a site (an account with no sites works at every one), of a status."""
    query = sa.select(staff).order_by(staff.c.staff_id)
    if status is not None:
        query = query.where(staff.c.status == status)
    if staff_ids is not None:
        query = query.where(staff.c.staff_id.in_(list(staff_ids)))
    rows = [row for row in conn.execute(query) if site_id is None or not row.sites or site_id in row.sites]
    badges: dict[str, list[Badge]] = {}
    if rows:
        held = conn.execute(sa.select(staff_badges).where(staff_badges.c.staff_id.in_([r.staff_id for r in rows]))
                            .order_by(staff_badges.c.added_at, staff_badges.c.card_token))
        for badge in held:
            badges.setdefault(badge.staff_id, []).append(Badge(badge.card_token, badge.label, badge.added_at))
    return [StaffMember(staff_id=row.staff_id, role=row.role, status=row.status, sites=list(row.sites or []),
                        member_id=row.member_id, badges=badges.get(row.staff_id, []), created_at=row.created_at,
                        updated_at=row.updated_at) for row in rows]
