"""Members, their cards, the points ledger, personal-data access records and the member directory.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("programme", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("enrolled_at", TS, nullable=True),
        sa.Column("erased_at", TS, nullable=True),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("profile", sa.LargeBinary, nullable=True),
        sa.Column("phone_hash", sa.String(64), nullable=True),
        sa.Column("email_hash", sa.String(64), nullable=True),
        sa.Column("consent", JSON_DOC, nullable=True),
        sa.Column("birthday_md", sa.String(5), nullable=True),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("seen", JSON_DOC, nullable=True),
        sa.Column("redeemed_day", sa.Date, nullable=True),
        sa.Column("redeemed", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("status IN ('active', 'anonymous', 'suspended', 'erased')", name=op.f("ck_members_status")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_members")),
        sa.UniqueConstraint("external_id", name=op.f("uq_members_external_id")),
    )
    op.create_index(op.f("ix_members_phone_hash"), "members", ["phone_hash"])
    op.create_index(op.f("ix_members_email_hash"), "members", ["email_hash"])
    op.create_table(
        "member_cards",
        sa.Column("card_token", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("label", sa.String(40), nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.Column("state_at", TS, nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.CheckConstraint("state IN ('active', 'lost', 'blocked', 'replaced')", name=op.f("ck_member_cards_state")),
        sa.ForeignKeyConstraint(["member_id"], ["members.member_id"],
                                name=op.f("fk_member_cards_member_id_members")),
        sa.PrimaryKeyConstraint("card_token", name=op.f("pk_member_cards")),
    )
    op.create_index(op.f("ix_member_cards_member_id"), "member_cards", ["member_id"])
    op.create_table(
        "member_ledger",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("card_token", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("sale_id", sa.String(64), nullable=True),
        sa.Column("rules_version", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.member_id"],
                                name=op.f("fk_member_ledger_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_ledger")),
        sa.UniqueConstraint("device_id", "seq", "kind", name="uq_member_ledger_device_seq_kind"),
    )
    op.create_index("ix_member_ledger_member_time", "member_ledger", ["member_id", "occurred_at"])
    op.create_table(
        "pii_access",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pii_access")),
    )
    op.create_index(op.f("ix_pii_access_at"), "pii_access", ["at"])
    op.create_index(op.f("ix_pii_access_member_id"), "pii_access", ["member_id"])
    op.create_table(
        "directory_changes",
        sa.Column("version", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("card_token", sa.String(64), nullable=False),
        sa.Column("entry", JSON_DOC, nullable=True),
        sa.Column("changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_directory_changes")),
    )
    op.create_index(op.f("ix_directory_changes_card_token"), "directory_changes", ["card_token"])
    op.create_table(
        "directory_state",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_state")),
    )
    op.execute("INSERT INTO directory_state (id, version) VALUES (1, 0)")
    op.create_table(
        "overdrafts",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("sites", JSON_DOC, nullable=False),
        sa.Column("events", JSON_DOC, nullable=False),
        sa.Column("settled_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.member_id"], name=op.f("fk_overdrafts_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overdrafts")),
    )
    op.create_index(op.f("ix_overdrafts_member_id"), "overdrafts", ["member_id"])
    _ledger_from_stored_sales(op.get_bind())


def _ledger_from_stored_sales(conn: sa.Connection) -> None:
    """Points earned before members existed: every stored card sale becomes a ledger row of an anonymous
    account per card (claimed when the member enrols), with its balance, watermark and directory entry, so
    that boxes keep the balances they had."""
    events = sa.table("events", sa.column("device_id"), sa.column("seq"), sa.column("type"), sa.column("site_id"),
                      sa.column("occurred_at"), sa.column("received_at"), sa.column("body", JSON_DOC))
    members = sa.table("members", sa.column("member_id"), sa.column("programme"), sa.column("status"),
                       sa.column("created_at"), sa.column("updated_at"), sa.column("balance"), sa.column("redeemed"),
                       sa.column("seen", JSON_DOC))
    cards = sa.table("member_cards", sa.column("card_token"), sa.column("member_id"), sa.column("state"),
                     sa.column("label"), sa.column("added_at"), sa.column("state_at"))
    ledger = sa.table("member_ledger", *(sa.column(name) for name in (
        "member_id", "card_token", "kind", "points", "occurred_at", "recorded_at", "site_id", "device_id", "seq",
        "sale_id", "rules_version")))
    holders: dict[str, str] = {}
    totals: dict[str, dict[str, Any]] = {}
    after: tuple[str, int] = ("", 0)
    while rows := conn.execute(
            sa.select(events.c.device_id, events.c.seq, events.c.site_id, events.c.occurred_at, events.c.received_at,
                      events.c.body)
            .where(events.c.type == "sale.recorded", sa.tuple_(events.c.device_id, events.c.seq) > after)
            .order_by(events.c.device_id, events.c.seq).limit(2000)).all():
        after = (rows[-1].device_id, int(rows[-1].seq))
        new_members, new_cards, moves = [], [], []
        for row in rows:
            payload = (row.body or {}).get("payload") or {}
            token, loyalty = payload.get("card_token"), payload.get("loyalty") or {}
            points = loyalty.get("points_earned", 0)
            if not isinstance(token, str) or type(points) is not int:
                continue
            if token not in holders:
                member_id = holders[token] = f"m{secrets.token_hex(8)}"
                totals[member_id] = {"balance": 0, "seen": {}, "since": row.received_at}
                new_members.append({"member_id": member_id, "programme": "default", "status": "anonymous",
                                    "created_at": row.received_at, "updated_at": row.received_at, "balance": 0,
                                    "redeemed": 0})
                new_cards.append({"card_token": token, "member_id": member_id, "state": "active",
                                  "label": "seen at a till", "added_at": row.received_at, "state_at": row.received_at})
            member_id = holders[token]
            total = totals[member_id]
            total["balance"] += points
            total["seen"][row.device_id] = max(total["seen"].get(row.device_id, 0), int(row.seq))
            moves.append({"member_id": member_id, "card_token": token, "kind": "earn", "points": points,
                          "occurred_at": row.occurred_at, "recorded_at": row.received_at, "site_id": row.site_id,
                          "device_id": row.device_id, "seq": int(row.seq), "sale_id": payload.get("sale_id"),
                          "rules_version": loyalty.get("rules_version")})
        for table, values in ((members, new_members), (cards, new_cards), (ledger, moves)):
            if values:
                conn.execute(table.insert(), values)
    changes = sa.table("directory_changes", sa.column("version"), sa.column("card_token"),
                       sa.column("entry", JSON_DOC), sa.column("changed_at"))
    for version, (token, member_id) in enumerate(sorted(holders.items()), start=1):
        total = totals[member_id]
        conn.execute(members.update().where(members.c.member_id == member_id).values(
            balance=total["balance"], seen=total["seen"]))
        entry = {"token": token, "member_id": member_id, "programme": "default", "status": "anonymous",
                 "balance": total["balance"], "seen": total["seen"], "redeemed": 0}
        conn.execute(changes.insert().values(version=version, card_token=token, changed_at=total["since"],
                                             entry=entry))
    if holders:
        conn.execute(sa.text("UPDATE directory_state SET version = :v WHERE id = 1"), {"v": len(holders)})


def downgrade() -> None:
    for table in ("overdrafts", "directory_state", "directory_changes", "pii_access", "member_ledger",
                  "member_cards", "members"):
        op.drop_table(table)
