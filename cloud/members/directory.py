"""The member directory at the hub: every change of a card's entry or of a staff account, versioned, for boxes
to follow.

Versions come from one counter row updated inside the changing transaction: two hub processes changing
members at once queue on that row, so versions become visible in the order they were given and a
publisher reading "everything above N" never skips one committed later.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from cloud.db.fraud_tables import staff, staff_badges
from cloud.db.schema import directory_changes, directory_state, member_cards, members

_BOX_STATUS = {"active": "active", "anonymous": "anonymous", "suspended": "blocked"}


def current_version(conn: sa.Connection) -> int:
    """The newest directory version."""
    return int(conn.execute(sa.select(directory_state.c.version).where(directory_state.c.id == 1)).scalar_one())


def _take_versions(conn: sa.Connection, count: int) -> int:
    """Reserve `count` versions; returns the first. Row-locks the counter until the caller commits."""
    top = conn.execute(
        sa.update(directory_state).where(directory_state.c.id == 1)
        .values(version=directory_state.c.version + count).returning(directory_state.c.version)
    ).scalar_one()
    return int(top) - count + 1


def entry_of(member: Any, card: Any) -> dict[str, Any]:
    """The directory entry of one card, from its member row and card row (both `sa.Row`s)."""
    status = _BOX_STATUS.get(member.status, "blocked") if card.state == "active" else "blocked"
    entry: dict[str, Any] = {
        "token": card.card_token, "member_id": member.member_id, "programme": member.programme,
        "status": status, "balance": int(member.balance), "seen": dict(member.seen or {}),
        "redeemed": int(member.redeemed),
    }
    if member.redeemed_day is not None:
        entry["redeemed_day"] = member.redeemed_day.isoformat()
    if member.birthday_md:
        entry["birthday"] = member.birthday_md
    if member.account is not None:
        # With the balance's watermark: a box folds its own later events on top (None: one lot).
        entry["account"] = member.account
    return entry


def publish_member(conn: sa.Connection, member_id: str, at: datetime) -> int:
    """Record the current entry of every card of `member_id` as a change; returns how many."""
    return publish_members(conn, [member_id], at)


def publish_members(conn: sa.Connection, member_ids: Sequence[str], at: datetime) -> int:
    """Record the current entry of every card of these members as changes, in a few statements (the counter
    row stays locked from here to the commit); returns how many."""
    ids = sorted(set(member_ids))
    if not ids:
        return 0
    rows = conn.execute(
        sa.select(member_cards, members).join(members, members.c.member_id == member_cards.c.member_id)
        .where(member_cards.c.member_id.in_(ids)).order_by(member_cards.c.member_id, member_cards.c.card_token)
    ).all()
    if not rows:
        return 0
    # A card's newer entry supersedes its older ones: the log keeps one change per card (and removals), so
    # it never grows with sales, and a box catching up gets each card once.
    conn.execute(directory_changes.delete().where(
        directory_changes.c.card_token.in_([row.card_token for row in rows])))
    first = _take_versions(conn, len(rows))
    conn.execute(directory_changes.insert(), [
        {"version": first + n, "card_token": row.card_token, "entry": entry_of(row, row), "changed_at": at}
        for n, row in enumerate(rows)
    ])
    return len(rows)


def forget_tokens(conn: sa.Connection, tokens: list[str], at: datetime) -> None:
    """Boxes must forget these tokens; their earlier entries leave the change log too."""
    if not tokens:
        return
    conn.execute(directory_changes.delete().where(directory_changes.c.card_token.in_(tokens)))
    first = _take_versions(conn, len(tokens))
    conn.execute(directory_changes.insert(), [
        {"version": first + n, "card_token": token, "entry": None, "changed_at": at}
        for n, token in enumerate(sorted(tokens))
    ])


def staff_entries(conn: sa.Connection, staff_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The staff accounts as boxes get them (`protocol.staff.StaffEntry`), by id: these, or all of them."""
    query = sa.select(staff).order_by(staff.c.staff_id)
    badges = sa.select(staff_badges.c.staff_id, staff_badges.c.card_token).order_by(staff_badges.c.card_token)
    if staff_ids is not None:
        query = query.where(staff.c.staff_id.in_(sorted(set(staff_ids))))
        badges = badges.where(staff_badges.c.staff_id.in_(sorted(set(staff_ids))))
    held: dict[str, list[str]] = {}
    for row in conn.execute(badges):
        held.setdefault(row.staff_id, []).append(row.card_token)
    entries: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query):
        entry: dict[str, Any] = {"staff_id": row.staff_id, "role": row.role, "status": row.status,
                                 "sites": sorted(row.sites or []), "badges": held.get(row.staff_id, [])}
        if row.member_id is not None:
            entry["member_id"] = row.member_id
        entries[row.staff_id] = entry
    return entries


def publish_staff(conn: sa.Connection, staff_ids: Sequence[str], at: datetime) -> int:
    """Record the current account of each of these staff as a change (a deleted one: boxes forget it); their
    earlier changes leave the log. Returns how many."""
    ids = sorted(set(staff_ids))
    if not ids:
        return 0
    entries = staff_entries(conn, ids)
    conn.execute(directory_changes.delete().where(directory_changes.c.staff_id.in_(ids)))
    first = _take_versions(conn, len(ids))
    conn.execute(directory_changes.insert(), [
        {"version": first + n, "card_token": None, "staff_id": staff_id, "entry": entries.get(staff_id),
         "changed_at": at}
        for n, staff_id in enumerate(ids)
    ])
    return len(ids)


class Change(NamedTuple):
    """One change of the log: a card's entry (`token`) or a staff account (`staff_id`); `entry` None: forget it."""

    version: int
    token: str | None
    staff_id: str | None
    entry: dict[str, Any] | None


def oldest_change(conn: sa.Connection) -> int:
    """The lowest version still in the change log (current + 1 when it is empty)."""
    low = conn.execute(sa.select(sa.func.min(directory_changes.c.version))).scalar()
    return int(low) if low is not None else current_version(conn) + 1


def changes_after(conn: sa.Connection, version: int, *, limit: int) -> list[Change]:
    """The changes above `version` (cards' and staff accounts'), oldest first, at most `limit`."""
    rows = conn.execute(
        sa.select(directory_changes.c.version, directory_changes.c.card_token, directory_changes.c.staff_id,
                  directory_changes.c.entry)
        .where(directory_changes.c.version > version).order_by(directory_changes.c.version).limit(limit)
    ).all()
    return [Change(int(row.version), row.card_token, row.staff_id, row.entry) for row in rows]


def snapshot_entries(conn: sa.Connection, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every card's current entry, by token (the caller reads `current_version` in the same transaction)."""
    after = ""
    while True:
        rows = conn.execute(
            sa.select(member_cards, members).join(members, members.c.member_id == member_cards.c.member_id)
            .where(member_cards.c.card_token > after).order_by(member_cards.c.card_token).limit(batch)
        ).all()
        for row in rows:
            yield entry_of(row, row)
        if len(rows) < batch:
            return
        after = rows[-1].card_token
