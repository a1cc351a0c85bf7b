"""Fraud control and staff audit: staff and their badges (sent to boxes in the member directory, whose change log
gains `staff_id`), the blocklist, alert cases (history, deliveries), card sightings per site, the staff audit
trail, the daily staff activity rollup; sites get a name and a location (for impossible travel).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("name", sa.String(120), nullable=True))
        batch.add_column(sa.Column("latitude", sa.Float, nullable=True))
        batch.add_column(sa.Column("longitude", sa.Float, nullable=True))
    op.create_table(
        "staff",
        sa.Column("staff_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sites", JSON_DOC, nullable=False),
        sa.Column("member_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("role IN ('cashier', 'supervisor', 'manager')", name=op.f("ck_staff_role")),
        sa.CheckConstraint("status IN ('active', 'suspended', 'left')", name=op.f("ck_staff_status")),
        sa.ForeignKeyConstraint(["member_id"], ["members.member_id"], name=op.f("fk_staff_member_id_members")),
        sa.PrimaryKeyConstraint("staff_id", name=op.f("pk_staff")),
    )
    op.create_index(op.f("ix_staff_member_id"), "staff", ["member_id"])
    op.create_table(
        "staff_badges",
        sa.Column("card_token", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.String(32), nullable=False),
        sa.Column("label", sa.String(40), nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.staff_id"], name=op.f("fk_staff_badges_staff_id_staff")),
        sa.PrimaryKeyConstraint("card_token", name=op.f("pk_staff_badges")),
    )
    op.create_index(op.f("ix_staff_badges_staff_id"), "staff_badges", ["staff_id"])
    op.create_table(
        "blocklist",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("added_at", TS, nullable=False),
        sa.Column("added_by", sa.String(64), nullable=True),
        sa.CheckConstraint("kind IN ('card', 'member')", name=op.f("ck_blocklist_kind")),
        sa.PrimaryKeyConstraint("kind", "value", name=op.f("pk_blocklist")),
    )
    op.create_table(
        "blocklist_state",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocklist_state")),
    )
    op.execute("INSERT INTO blocklist_state (id, version) VALUES (1, 0)")
    # Staff accounts travel in the member directory, versioned with the cards' changes.
    with op.batch_alter_table("directory_changes") as batch:
        batch.alter_column("card_token", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("staff_id", sa.String(32), nullable=True))
        batch.create_index(op.f("ix_directory_changes_staff_id"), ["staff_id"])
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("dedupe_key", sa.String(240), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("till_id", sa.String(64), nullable=True),
        sa.Column("cashier_id", sa.String(32), nullable=True),
        sa.Column("staff_id", sa.String(32), nullable=True),
        sa.Column("member_id", sa.String(64), nullable=True),
        sa.Column("card_token", sa.String(64), nullable=True),
        sa.Column("sale_id", sa.String(64), nullable=True),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("figures", JSON_DOC, nullable=False),
        sa.Column("events", JSON_DOC, nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("state_at", TS, nullable=False),
        sa.Column("state_by", sa.String(64), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_state")),
        sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name=op.f("ck_alerts_severity")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_alerts_dedupe_key")),
    )
    op.create_index(op.f("ix_alerts_code"), "alerts", ["code"])
    op.create_index(op.f("ix_alerts_site_id"), "alerts", ["site_id"])
    op.create_index(op.f("ix_alerts_raised_at"), "alerts", ["raised_at"])
    op.create_table(
        "alert_history",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_history_alert_id_alerts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_history")),
    )
    op.create_index(op.f("ix_alert_history_alert_id"), "alert_history", ["alert_id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", TS, nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failing')", name=op.f("ck_alert_deliveries_state")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_deliveries_alert_id_alerts")),
        sa.PrimaryKeyConstraint("alert_id", "channel", name=op.f("pk_alert_deliveries")),
    )
    op.create_index(op.f("ix_alert_deliveries_next_at"), "alert_deliveries", ["next_at"])
    op.create_table(
        "card_sightings",
        sa.Column("card_token", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("card_token", "site_id", name=op.f("pk_card_sightings")),
    )
    op.create_table(
        "staff_audit",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("till_id", sa.String(64), nullable=True),
        sa.Column("staff_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("sale_id", sa.String(64), nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("points", sa.BigInteger, nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_staff_audit")),
    )
    op.create_index("ix_staff_audit_site_time", "staff_audit", ["site_id", "occurred_at"])
    op.create_index("ix_staff_audit_staff_time", "staff_audit", ["staff_id", "occurred_at"])
    op.create_index("ix_staff_audit_time", "staff_audit", ["occurred_at"])
    op.create_table(
        "staff_activity",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("till_id", sa.String(64), nullable=False),
        sa.Column("cashier_id", sa.String(32), nullable=False),
        sa.Column("card_token", sa.String(64), nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in (
            "sales", "points_earned", "points_held", "points_redeemed", "refunds", "refunded", "overrides",
            "flagged")),
        sa.PrimaryKeyConstraint("day", "site_id", "till_id", "cashier_id", "card_token",
                                name=op.f("pk_staff_activity")),
    )
    op.create_table(
        "report_runs",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("claimed_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("day", "channel", name=op.f("pk_report_runs")),
    )


def downgrade() -> None:
    op.execute("DELETE FROM directory_changes WHERE card_token IS NULL")
    with op.batch_alter_table("directory_changes") as batch:
        batch.drop_index(op.f("ix_directory_changes_staff_id"))
        batch.drop_column("staff_id")
        batch.alter_column("card_token", existing_type=sa.String(64), nullable=False)
    for table in ("report_runs", "staff_activity", "staff_audit", "card_sightings", "alert_deliveries",
                  "alert_history", "alerts", "blocklist_state", "blocklist", "staff_badges", "staff"):
        op.drop_table(table)
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("longitude")
        batch.drop_column("latitude")
        batch.drop_column("name")
