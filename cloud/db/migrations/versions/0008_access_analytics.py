"""HQ access and analytics: users get sites (site managers), a disabled mark and lockout state; browser
sessions, API tokens and the HQ audit log; sites get a time zone; the halls catalogue (seats) and the
box-office rollups (by local hour, day and day part, by show, and shows by day and day part); indexes for one
site's events in a period (the export) and for the members' ledger by time (the reports' liability).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AMOUNTS = ("tickets", "ticket_revenue", "concession_revenue", "concession_items", "sales", "member_sales")
SHOW_AMOUNTS = ("shows", "tickets")


def upgrade() -> None:
    op.create_index("ix_events_site_time", "events", ["site_id", "occurred_at", "device_id", "seq"])
    op.create_index("ix_member_ledger_time", "member_ledger", ["occurred_at"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sites", JSON_DOC, nullable=True))
        batch.add_column(sa.Column("disabled_at", TS, nullable=True))
        batch.add_column(sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", TS, nullable=True))
        batch.add_column(sa.Column("password_changed_at", TS, nullable=True))
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["username"], ["users.username"], name=op.f("fk_sessions_username_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_username"), "sessions", ["username"])
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["username"], ["users.username"], name=op.f("fk_api_tokens_username_users")),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_api_tokens")),
    )
    op.create_index(op.f("ix_api_tokens_username"), "api_tokens", ["username"])
    op.create_table(
        "hq_audit",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hq_audit")),
    )
    for column in ("at", "username", "action", "site_id"):
        op.create_index(op.f(f"ix_hq_audit_{column}"), "hq_audit", [column])
    op.create_table(
        "halls",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("hall", sa.String(64), nullable=False),
        sa.Column("name", sa.String(120), nullable=True),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("seats > 0", name=op.f("ck_halls_seats")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"], name=op.f("fk_halls_site_id_sites")),
        sa.PrimaryKeyConstraint("site_id", "hall", name=op.f("pk_halls")),
    )
    op.create_table(
        "sales_hourly",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("hour", sa.SmallInteger, nullable=False),
        sa.Column("film", sa.String(120), nullable=False),
        sa.Column("hall", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        *_amounts(),
        sa.PrimaryKeyConstraint("site_id", "day", "hour", "film", "hall", "currency", name=op.f("pk_sales_hourly")),
    )
    op.create_index("ix_sales_hourly_day", "sales_hourly", ["day"])
    op.create_table(
        "show_sales",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("hall", sa.String(64), nullable=False),
        sa.Column("showtime", TS, nullable=False),
        sa.Column("film", sa.String(120), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("show_day", sa.Date, nullable=False),
        sa.Column("show_hour", sa.SmallInteger, nullable=False),
        *_amounts(),
        sa.PrimaryKeyConstraint("site_id", "hall", "showtime", "film", "currency", name=op.f("pk_show_sales")),
    )
    op.create_index("ix_show_sales_show_day", "show_sales", ["show_day"])
    op.create_index("ix_show_sales_showtime", "show_sales", ["showtime"])
    _rollup("sales_daily", [sa.Column("film", sa.String(120), nullable=False),
                            sa.Column("hall", sa.String(64), nullable=False),
                            sa.Column("currency", sa.String(3), nullable=False)], _amounts())
    _rollup("site_hourly", [sa.Column("hour", sa.SmallInteger, nullable=False),
                            sa.Column("currency", sa.String(3), nullable=False)], _amounts())
    _rollup("site_dayparts", [sa.Column("daypart", sa.String(16), nullable=False),
                              sa.Column("currency", sa.String(3), nullable=False)], _amounts())
    _rollup("show_daily", [sa.Column("film", sa.String(120), nullable=False),
                           sa.Column("hall", sa.String(64), nullable=False)], _amounts(SHOW_AMOUNTS))
    _rollup("show_dayparts", [sa.Column("daypart", sa.String(16), nullable=False),
                              sa.Column("hall", sa.String(64), nullable=False)], _amounts(SHOW_AMOUNTS))


def _rollup(name: str, keys: list[sa.Column[object]], amounts: list[sa.Column[int]]) -> None:
    """A rollup table keyed by site, local day and `keys`, with an index on the day (chain-wide ranges)."""
    op.create_table(
        name,
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        *keys,
        *amounts,
        sa.PrimaryKeyConstraint("site_id", "day", *[column.name for column in keys], name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_day", name, ["day"])


def _amounts(names: tuple[str, ...] = AMOUNTS) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in names]


def downgrade() -> None:
    op.drop_index("ix_member_ledger_time", table_name="member_ledger")
    op.drop_index("ix_events_site_time", table_name="events")
    for table in ("show_dayparts", "show_daily", "site_dayparts", "site_hourly", "sales_daily", "show_sales",
                  "sales_hourly", "halls", "hq_audit", "api_tokens", "sessions"):
        op.drop_table(table)
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("users") as batch:
        for column in ("password_changed_at", "locked_until", "failed_logins", "disabled_at", "sites"):
            batch.drop_column(column)
