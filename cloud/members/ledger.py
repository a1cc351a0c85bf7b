"""The points ledger at the hub: every event that moved a card's points, in event time, per member.

Ingest calls `apply_moves` in the batch's own transaction (so the ack still promises it): a card no
member holds starts an anonymous account that a later enrolment claims, with its history. A member's
account is folded from their ledger's moves (`cloud.members.accounts`), and what the time-based rules did is
in the ledger too, so the balance is the sum of their rows; `seen` says, per device, the highest seq the
balance includes (ingest takes each device's events in seq order, so every earlier event of that device is in).

A move folds at its event's time, unless the box's clock could not be trusted (the event says its clock was not
synchronised, or it is stamped more than `CLOCK_SLACK` after the batch reached the hub): then at the time the
hub received it, and the ledger row keeps that time, so a refold from the ledger folds it the same. One box with
a clock years ahead would otherwise expire every point of the members it saw.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore
from cloud.db.schema import member_cards, member_ledger, members
from cloud.members.accounts import fold_in, move_detail, refold, rulebook, stored_account
from cloud.members.directory import publish_member, publish_members
from cloud.members.overdrafts import check_overdraft
from protocol.account import Move
from protocol.events import Event, RedemptionReversed, SaleRecorded
from protocol.loyalty import approval_move, refund_move, reversal_move, sale_moves
from protocol.staff import HoldDecided, SaleRefunded

log = logging.getLogger(__name__)
CLOCK_SLACK = timedelta(minutes=5)
"""How far after the batch's arrival an event may be stamped before its box's clock is not believed."""
retimed: Counter[str] = Counter()
"""Per device, the moves this hub process ledgered at their arrival because the box's clock was not trusted."""
_warned: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PointsMove:
    """One event's effect on one card's account."""

    event: Event
    site_id: str
    card_token: str
    move: Move
    sale_id: str | None
    rules_version: int | None

    @property
    def kind(self) -> str:
        return self.move.kind

    @property
    def points(self) -> int:
        return self.move.points


def moves_of(event: Event, payload: object, site_id: str) -> list[PointsMove]:
    """What an event did to its card's account, derived as the box derives it: a sale earns (and counts
    spend, visit, passes) and may redeem (a captured hold), a reversal gives redeemed points back, a refund takes
    earned points (and spend) back and gives redeemed ones back, a supervisor's approval releases held points.
    Nothing for a sale without a card or with a blocked one, a refund that moved nothing, a refused hold."""
    order = (event.device_id, event.seq)
    if isinstance(payload, SaleRecorded) and payload.card_token is not None:
        return [PointsMove(event, site_id, payload.card_token, move, payload.sale_id, payload.loyalty.rules_version)
                for move in sale_moves(payload, event.occurred_at, order)]
    if isinstance(payload, RedemptionReversed):
        return [PointsMove(event, site_id, payload.card_token, reversal_move(payload, event.occurred_at, order),
                           payload.sale_id, None)]
    if isinstance(payload, SaleRefunded) and payload.card_token is not None:
        move = refund_move(payload, event.occurred_at, order)
        return [PointsMove(event, site_id, payload.card_token, move, payload.sale_id, None)] if move else []
    if isinstance(payload, HoldDecided):
        move = approval_move(payload, event.occurred_at, order)
        return [PointsMove(event, site_id, payload.card_token, move, payload.sale_id, None)] if move else []
    return []


CLOCK_NEVER_SET = datetime(2020, 1, 1, tzinfo=UTC)
"""A box's time before this was never set (a board without a real-time clock boots in 1970)."""


def trusted_time(event: Event, received_at: datetime) -> bool:
    """Whether the event's own time is believed (see `move_time`)."""
    return event.occurred_at <= received_at + CLOCK_SLACK and (event.clock_ok or event.occurred_at >= CLOCK_NEVER_SET)


def move_time(event: Event, received_at: datetime) -> datetime:
    """When the event's moves fold: its own time, or `received_at` when that time cannot be: after the batch
    arrived (beyond a few minutes' slack), or, from a box that says its clock is not synchronised, before
    2020. A box offline with an unsynchronised but running clock keeps its times: its offline sales fold
    where they happened, as the box folded them. Counted in `retimed`, logged once per device and process."""
    if trusted_time(event, received_at):
        return event.occurred_at
    retimed[event.device_id] += 1
    with _warned_lock:
        first = event.device_id not in _warned
        _warned.add(event.device_id)
    if first:
        log.warning("device %s sends events stamped %s (clock %s) in a batch the hub received at %s: its members' "
                    "points are ledgered at the time the hub received them; check the box's clock (NTP)",
                    event.device_id, event.occurred_at.isoformat(),
                    "synchronised" if event.clock_ok else "not synchronised", received_at.isoformat())
    return received_at


def _holders(conn: sa.Connection, tokens: Sequence[str], at: datetime) -> dict[str, str]:
    """Token -> member id, an anonymous account created for every token nobody holds."""
    found = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)
                              .where(member_cards.c.card_token.in_(tokens))).all())
    for token in sorted(set(tokens) - found.keys()):
        member_id = f"m{secrets.token_hex(8)}"
        conn.execute(members.insert().values(member_id=member_id, programme="default", status="anonymous",
                                             created_at=at, updated_at=at, balance=0, redeemed=0))
        insert_or_ignore(conn, member_cards, {"card_token": token, "member_id": member_id, "state": "active",
                                              "label": "seen at a till", "added_at": at, "state_at": at})
        holder = conn.execute(sa.select(member_cards.c.member_id)
                              .where(member_cards.c.card_token == token)).scalar_one()
        if holder != member_id:  # another hub process created it first: use theirs
            conn.execute(members.delete().where(members.c.member_id == member_id))
        found[token] = str(holder)
    return {token: str(member) for token, member in found.items()}


def apply_moves(conn: sa.Connection, moves: Sequence[PointsMove], *, received_at: datetime) -> None:
    """Ledger the moves, fold them into each member's account, update balance and watermark, and change their
    directory entries."""
    if not moves:
        return
    holders = _holders(conn, [move.card_token for move in moves], received_at)
    touched = sorted(set(holders.values()))
    # Row locks in one order: two hub processes storing batches that share members cannot deadlock.
    rows = {row.member_id: row for row in conn.execute(
        sa.select(members).where(members.c.member_id.in_(touched)).order_by(members.c.member_id).with_for_update())}
    state: dict[str, dict[str, Any]] = {
        member_id: {"seen": dict(row.seen or {}), "redeemed_day": row.redeemed_day, "redeemed": int(row.redeemed)}
        for member_id, row in rows.items()}
    ledger_rows = []
    redeemed_days: dict[str, set[Any]] = {}
    new_moves: dict[str, list[Move]] = {}
    for move in moves:
        member_id = holders[move.card_token]
        current = state[member_id]
        event = move.event
        when = move_time(event, received_at)
        new_moves.setdefault(member_id, []).append(replace(move.move, at=when))
        current["seen"][event.device_id] = max(current["seen"].get(event.device_id, 0), event.seq)
        if move.kind == "redeem":
            redeemed_days.setdefault(member_id, set()).add(when.date())
        if move.kind in ("redeem", "reversal"):
            day = when.date()
            if current["redeemed_day"] is None or day > current["redeemed_day"]:
                current["redeemed_day"], current["redeemed"] = day, 0
            if day == current["redeemed_day"]:
                current["redeemed"] = max(0, current["redeemed"] - move.points)
        ledger_rows.append({
            "member_id": member_id, "card_token": move.card_token, "kind": move.kind, "points": move.points,
            "occurred_at": when, "recorded_at": received_at, "site_id": move.site_id,
            "device_id": event.device_id, "seq": event.seq, "sale_id": move.sale_id,
            "rules_version": move.rules_version, "detail": move_detail(move.move),
        })
    conn.execute(member_ledger.insert(), ledger_rows)
    book = rulebook(conn)
    for member_id in touched:
        values = fold_in(conn, rows[member_id], new_moves[member_id], book, at=received_at)
        conn.execute(members.update().where(members.c.member_id == member_id).values(
            updated_at=received_at, **state[member_id], **values))
        check_overdraft(conn, member_id, values["balance"], redeemed_days.get(member_id, set()), received_at)
    publish_members(conn, touched, received_at)


def lock_members(conn: sa.Connection, member_ids: Sequence[str]) -> None:
    """Row-lock members in one order (ingest locks in the same), before reading their ledger to rewrite them."""
    conn.execute(sa.select(members.c.member_id).where(members.c.member_id.in_(sorted(set(member_ids))))
                 .order_by(members.c.member_id).with_for_update()).all()


def recompute(conn: sa.Connection, member_id: str, *, at: datetime | None = None) -> None:
    """Refold a member's account from their ledger rows and set balance, watermark and day's redemptions
    (after a merge, or events leaving the ledger). The caller holds the member's row lock (`lock_members`): a
    batch ingested meanwhile cannot be overwritten."""
    lock_members(conn, [member_id])
    member = conn.execute(sa.select(members.c.programme, members.c.account)
                          .where(members.c.member_id == member_id)).one()
    rows = conn.execute(sa.select(member_ledger.c.points, member_ledger.c.kind, member_ledger.c.device_id,
                                  member_ledger.c.seq, member_ledger.c.occurred_at)
                        .where(member_ledger.c.member_id == member_id)).all()
    seen: dict[str, int] = {}
    for row in rows:
        if row.device_id is not None and row.seq is not None:
            seen[row.device_id] = max(seen.get(row.device_id, 0), int(row.seq))
    redemptions = [row for row in rows if row.kind in ("redeem", "reversal")]
    day = max((row.occurred_at.date() for row in redemptions), default=None)
    account = stored_account(member.account)
    values = refold(conn, member_id, member.programme, rulebook(conn), at=at or datetime.now(UTC),
                    until=account.as_of if account is not None else None)
    conn.execute(members.update().where(members.c.member_id == member_id).values(
        seen=seen, redeemed_day=day,
        redeemed=max(0, sum(-int(row.points) for row in redemptions if row.occurred_at.date() == day)), **values))


def ledger_of(conn: sa.Connection, member_id: str, *, limit: int, before_id: int | None = None) -> list[Any]:
    """A member's ledger rows, newest first (by event time), `limit` at most, before row `before_id`."""
    query = sa.select(member_ledger).where(member_ledger.c.member_id == member_id)
    if before_id is not None:
        # Keyset on (event time, id), the order shown: a row ledgered late (an offline box) is on its page.
        cursor = conn.execute(sa.select(member_ledger.c.occurred_at).where(member_ledger.c.id == before_id)).scalar()
        if cursor is None:
            return []
        query = query.where(sa.or_(member_ledger.c.occurred_at < cursor, sa.and_(
            member_ledger.c.occurred_at == cursor, member_ledger.c.id < before_id)))
    return list(conn.execute(query.order_by(member_ledger.c.occurred_at.desc(), member_ledger.c.id.desc())
                             .limit(limit)).all())


def unledger_from(conn: sa.Connection, *, device_id: str, start: int, at: datetime) -> None:
    """Take a device's events from `start` on out of the ledger (they left its chain: a conflict resolved
    for the box), and set the members they touched right."""
    touched = sorted(set(conn.execute(sa.select(member_ledger.c.member_id).where(
        member_ledger.c.device_id == device_id, member_ledger.c.seq >= start)).scalars()))
    if not touched:
        return
    lock_members(conn, touched)
    conn.execute(member_ledger.delete().where(member_ledger.c.device_id == device_id, member_ledger.c.seq >= start))
    for member_id in touched:
        recompute(conn, member_id, at=at)
        conn.execute(members.update().where(members.c.member_id == member_id).values(updated_at=at))
        publish_member(conn, member_id, at)
