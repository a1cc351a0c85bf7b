"""Initial schema: sites, devices, events, the box-office rollup, ingest rejects and users.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_sites")),
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_hash", sa.String(64), nullable=True),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", JSON_DOC, nullable=True),
        sa.Column("status_at", TS, nullable=True),
        sa.Column("chain_broken_at", TS, nullable=True),
        sa.Column("chain_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name=op.f("fk_devices_site_id_sites")),
    )
    op.create_index(op.f("ix_devices_site_id"), "devices", ["site_id"])
    op.create_table(
        "events",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("clock_ok", sa.Boolean, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("body", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_events")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_events_device_id_devices")
        ),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    op.create_table(
        "box_office",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("film", sa.String(120), nullable=False),
        sa.Column("hall", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("tickets", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("ticket_revenue", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("concession_revenue", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sales", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("site_id", "day", "film", "hall", "currency", name=op.f("pk_box_office")),
    )
    op.create_index(op.f("ix_box_office_day"), "box_office", ["day"])
    op.create_table(
        "ingest_rejects",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True
        ),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_rejects")),
    )
    op.create_index(op.f("ix_ingest_rejects_received_at"), "ingest_rejects", ["received_at"])
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_users")),
        sa.CheckConstraint("role IN ('admin', 'analyst', 'site_manager')", name=op.f("ck_users_role")),
    )


def downgrade() -> None:
    for table in ("users", "ingest_rejects", "box_office", "events", "devices", "sites"):
        op.drop_table(table)
