"""Member analytics: each member's activity and visit days kept on ingest, the campaigns that reached them, the
snapshots of member counts and their refresh state, campaign effects as computed; members by balance.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
COUNTS = ("visits", "sales")
AMOUNTS = ("tickets", "ticket_spend", "concession_spend", "spend", "points_earned")


def upgrade() -> None:
    op.create_table(
        "member_activity",
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("home_site", sa.String(64), nullable=True),
        sa.Column("first_visit", sa.Date, nullable=True),
        sa.Column("last_visit", sa.Date, nullable=True),
        *[sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in COUNTS],
        *[sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in AMOUNTS],
        sa.Column("interval_days", sa.Float, nullable=True),
        sa.Column("churn_at", sa.Date, nullable=True),
        sa.Column("site_visits", JSON_DOC, nullable=True),
        sa.Column("genres", JSON_DOC, nullable=True),
        sa.Column("day_parts", JSON_DOC, nullable=True),
        sa.Column("favourite_genre", sa.String(64), nullable=True),
        sa.Column("favourite_day_part", sa.String(16), nullable=True),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("tier_change", sa.String(8), nullable=True),
        sa.Column("tier_target", sa.String(64), nullable=True),
        sa.Column("tier_gap", sa.Integer, nullable=True),
        sa.Column("tier_month", sa.String(7), nullable=True),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_activity")),
    )
    op.create_index("ix_member_activity_home_site", "member_activity", ["home_site"])
    op.create_index("ix_member_activity_spend", "member_activity", ["spend", "member_id"])
    op.create_index("ix_member_activity_visits", "member_activity", ["visits", "member_id"])
    op.create_index("ix_member_activity_points_earned", "member_activity", ["points_earned", "member_id"])
    op.create_index("ix_member_activity_site_balance", "member_activity", ["home_site", "balance", "member_id"])
    for name, columns in (("ix_member_activity_tier_gap", ["tier_gap", "member_id"]),
                          ("ix_member_activity_tier_site", ["home_site", "tier_gap", "member_id"])):
        op.create_index(name, "member_activity", columns, postgresql_where=sa.text("tier_gap IS NOT NULL"),
                        sqlite_where=sa.text("tier_gap IS NOT NULL"))
    op.create_index("ix_member_activity_tier_month", "member_activity", ["tier_month"])
    op.create_table(
        "member_visits",
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("sales", sa.Integer, nullable=False, server_default="0"),
        sa.Column("spend", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("member_id", "day", name=op.f("pk_member_visits")),
    )
    op.create_index("ix_member_visits_day", "member_visits", ["day", "member_id"])
    op.create_table(
        "member_campaigns",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("campaign_id", "member_id", name=op.f("pk_member_campaigns")),
    )
    op.create_table(
        "member_snapshots",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("body", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_member_snapshots")),
    )
    op.create_table(
        "member_snapshot_state",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("refreshed_at", TS, nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_snapshot_state")),
    )
    op.create_table(
        "campaign_effects",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("days", sa.SmallInteger, nullable=False, autoincrement=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("computed_at", TS, nullable=False),
        sa.Column("body", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "days", "scope", name=op.f("pk_campaign_effects")),
    )
    op.create_index("ix_members_balance", "members", ["balance", "member_id"])


def downgrade() -> None:
    op.drop_index("ix_members_balance", "members")
    for table in ("campaign_effects", "member_snapshot_state", "member_snapshots", "member_campaigns",
                  "member_visits", "member_activity"):
        op.drop_table(table)
