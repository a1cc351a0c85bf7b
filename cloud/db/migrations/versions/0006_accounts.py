"""Members' accounts: each member's account (lots, tier, activity, passes) folded from their ledger under the
running bundle, the next instant a time-based rule is due for it, and the counts earn rows keep.

Existing members are folded here: their earn rows get what the rules count from the sale they came from
(spend, visit, passes), what the time-based rules did between their moves is ledgered, and every card's
directory entry is published again with the account, so boxes hold it. `account_due` is left empty: the
rules clock computes every member's when it first runs (as it does for each new bundle).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql

from protocol.account import Move, fold
from protocol.events import SaleRecorded
from protocol.loyalty import sale_moves
from protocol.rules import RuleBundle, default_bundle

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
BATCH = 500
MOVE_KINDS = {"earn": "earn", "redeem": "redeem", "reversal": "reversal", "import": "adjust"}
DERIVED_KINDS = ("expiry", "burn", "bonus", "tier")
_BOX_STATUS = {"active": "active", "anonymous": "anonymous", "suspended": "blocked"}

members = sa.table("members", sa.column("member_id"), sa.column("programme"), sa.column("status"),
                   sa.column("balance"), sa.column("seen", JSON_DOC), sa.column("redeemed_day", sa.Date),
                   sa.column("redeemed"), sa.column("birthday_md"), sa.column("account", JSON_DOC),
                   sa.column("account_due", TS))
ledger = sa.table("member_ledger", sa.column("id"), sa.column("member_id"), sa.column("card_token"),
                  sa.column("kind"), sa.column("points"), sa.column("occurred_at", TS), sa.column("recorded_at", TS),
                  sa.column("site_id"), sa.column("device_id"), sa.column("seq"), sa.column("sale_id"),
                  sa.column("rules_version"), sa.column("detail", JSON_DOC))
events = sa.table("events", sa.column("device_id"), sa.column("seq"), sa.column("body", JSON_DOC))
cards = sa.table("member_cards", sa.column("card_token"), sa.column("member_id"), sa.column("state"))
changes = sa.table("directory_changes", sa.column("version"), sa.column("card_token"), sa.column("entry", JSON_DOC),
                   sa.column("changed_at", TS))
bundles = sa.table("rule_bundles", sa.column("version"), sa.column("body", JSON_DOC))


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("account", JSON_DOC, nullable=True))
        batch.add_column(sa.Column("account_due", TS, nullable=True))
        batch.create_index(op.f("ix_members_account_due"), ["account_due"])
    with op.batch_alter_table("member_ledger") as batch:
        batch.add_column(sa.Column("detail", JSON_DOC, nullable=True))
    op.create_index("ix_events_time", "events", ["occurred_at", "device_id", "seq"])
    _fold_every_member(op.get_bind())


def _as_utc(value: Any) -> Any:
    # SQLite hands back naive UTC values; the fold compares them with aware ones.
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def _bundle(conn: sa.Connection) -> RuleBundle:
    body = conn.execute(sa.select(bundles.c.body).order_by(bundles.c.version.desc()).limit(1)).scalar()
    if body is not None:
        try:
            return RuleBundle.model_validate(body)
        except ValidationError:
            pass  # a bundle this hub cannot read: the default's rules (no time-based rule) until the next one
    return default_bundle("XXX", datetime(1970, 1, 1, tzinfo=UTC))


def _earn_detail(row: Any) -> dict[str, Any]:
    """What an earn row counts, from the sale it came from (the recorded loyalty outcome)."""
    move: Move | None = None
    payload = (row.body or {}).get("payload") if isinstance(row.body, dict) else None
    if payload:
        try:
            found = sale_moves(SaleRecorded.model_validate(payload), _as_utc(row.occurred_at), ("", 0))
            move = found[0] if found else None
        except ValidationError:
            move = None
    if move is None:
        return {"spend": 0, "visit": False, "earning_sale": int(row.points) > 0, "pass_uses": [],
                "passes_bought": [], "birthday_year": None}
    return {"spend": move.spend, "visit": move.visit, "earning_sale": move.earning_sale,
            "pass_uses": [[pass_id, uses] for pass_id, uses in move.pass_uses],
            "passes_bought": list(move.passes_bought), "birthday_year": move.birthday_year}


def _move(row: Any, detail: dict[str, Any] | None) -> Move:
    detail = detail or {}
    return Move(at=_as_utc(row.occurred_at), kind=MOVE_KINDS[row.kind], points=int(row.points),  # type: ignore[arg-type]
                spend=int(detail.get("spend", 0)), visit=bool(detail.get("visit", False)),
                earning_sale=bool(detail.get("earning_sale", False)),
                pass_uses=tuple((str(pass_id), int(uses)) for pass_id, uses in detail.get("pass_uses", ())),
                passes_bought=tuple(str(pass_id) for pass_id in detail.get("passes_bought", ())),
                birthday_year=detail.get("birthday_year"), order=(row.device_id or "", int(row.seq or 0)))


def _fold_every_member(conn: sa.Connection) -> None:
    bundle = _bundle(conn)
    now = datetime.now(UTC)
    version = int(conn.execute(sa.text("SELECT version FROM directory_state WHERE id = 1")).scalar() or 0)
    after = ""
    while batch := conn.execute(sa.select(members).where(members.c.member_id > after)
                                .order_by(members.c.member_id).limit(BATCH)).all():
        after = batch[-1].member_id
        ids = [row.member_id for row in batch]
        rows = conn.execute(
            sa.select(ledger.c.id, ledger.c.member_id, ledger.c.kind, ledger.c.points, ledger.c.occurred_at,
                      ledger.c.device_id, ledger.c.seq, events.c.body)
            .select_from(ledger.outerjoin(events, sa.and_(events.c.device_id == ledger.c.device_id,
                                                          events.c.seq == ledger.c.seq)))
            .where(ledger.c.member_id.in_(ids), ledger.c.kind.in_(list(MOVE_KINDS)))).all()
        moves: dict[str, list[Move]] = {member_id: [] for member_id in ids}
        details = []
        for row in rows:
            detail = _earn_detail(row) if row.kind == "earn" else None
            if detail is not None:
                details.append({"row_id": row.id, "value": detail})
            moves[row.member_id].append(_move(row, detail))
        if details:
            conn.execute(ledger.update().where(ledger.c.id == sa.bindparam("row_id"))
                         .values(detail=sa.bindparam("value", type_=JSON_DOC)), details)
        derived = []
        for member in batch:
            rules = bundle.rules_for(member.programme)
            account, effects = fold(moves[member.member_id], rules, bundle.timezone)
            derived += [{"member_id": member.member_id, "card_token": None, "kind": effect.kind,
                         "points": effect.points, "occurred_at": effect.at, "recorded_at": now, "site_id": None,
                         "device_id": None, "seq": None, "sale_id": None, "rules_version": bundle.version,
                         "detail": {"detail": effect.detail}} for effect in effects]
            document = account.model_dump(mode="json")
            conn.execute(members.update().where(members.c.member_id == member.member_id).values(
                account=document, balance=account.balance))
            version = _republish(conn, member, document, account.balance, version, now)
        if derived:
            conn.execute(ledger.insert(), derived)
    conn.execute(sa.text("UPDATE directory_state SET version = :v WHERE id = 1"), {"v": version})


def _republish(conn: sa.Connection, member: Any, account: dict[str, Any], balance: int, version: int,
               at: datetime) -> int:
    """Each card's directory entry again, with the account (as `cloud.members.directory.entry_of` built it)."""
    held = conn.execute(sa.select(cards.c.card_token, cards.c.state).where(cards.c.member_id == member.member_id)
                        .order_by(cards.c.card_token)).all()
    if not held:
        return version
    conn.execute(changes.delete().where(changes.c.card_token.in_([card.card_token for card in held])))
    rows = []
    for card in held:
        status = _BOX_STATUS.get(member.status, "blocked") if card.state == "active" else "blocked"
        entry: dict[str, Any] = {"token": card.card_token, "member_id": member.member_id,
                                 "programme": member.programme, "status": status, "balance": balance,
                                 "seen": dict(member.seen or {}), "redeemed": int(member.redeemed)}
        if member.redeemed_day is not None:
            entry["redeemed_day"] = member.redeemed_day.isoformat()
        if member.birthday_md:
            entry["birthday"] = member.birthday_md
        entry["account"] = account
        version += 1
        rows.append({"version": version, "card_token": card.card_token, "entry": entry, "changed_at": at})
    conn.execute(changes.insert(), rows)
    return version


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(ledger.delete().where(ledger.c.kind.in_(DERIVED_KINDS)))
    total = sa.select(sa.func.coalesce(sa.func.sum(ledger.c.points), 0)).where(
        ledger.c.member_id == members.c.member_id).scalar_subquery()
    bind.execute(members.update().values(balance=total))
    op.drop_index("ix_events_time", table_name="events")
    with op.batch_alter_table("member_ledger") as batch:
        batch.drop_column("detail")
    with op.batch_alter_table("members") as batch:
        batch.drop_index(op.f("ix_members_account_due"))
        batch.drop_column("account_due")
        batch.drop_column("account")
