"""The month grains of the box-office and occupancy rollups (`sales_monthly`, `show_monthly`), filled from
the daily rollups already stored.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

AMOUNTS = ("tickets", "ticket_revenue", "concession_revenue", "concession_items", "sales", "member_sales")
SHOW_AMOUNTS = ("shows", "tickets")


def upgrade() -> None:
    for name, daily, keys, amounts in (("sales_monthly", "sales_daily", ("film", "hall", "currency"), AMOUNTS),
                                       ("show_monthly", "show_daily", ("film", "hall"), SHOW_AMOUNTS)):
        op.create_table(
            name,
            sa.Column("site_id", sa.String(64), nullable=False),
            sa.Column("month", sa.Date, nullable=False),
            sa.Column("film", sa.String(120), nullable=False),
            sa.Column("hall", sa.String(64), nullable=False),
            *([sa.Column("currency", sa.String(3), nullable=False)] if "currency" in keys else []),
            *[sa.Column(amount, sa.BigInteger, nullable=False, server_default="0") for amount in amounts],
            sa.PrimaryKeyConstraint("site_id", "month", *keys, name=op.f(f"pk_{name}")),
        )
        op.create_index(f"ix_{name}_month", name, ["month"])
        month = ("CAST(date_trunc('month', day) AS date)" if op.get_bind().dialect.name == "postgresql"
                 else "date(day, 'start of month')")
        columns = ", ".join(("site_id", "month", *keys, *amounts))
        sums = ", ".join(f"sum({amount})" for amount in amounts)
        op.execute(f"INSERT INTO {name} ({columns}) SELECT site_id, {month}, {', '.join(keys)}, {sums} "
                   f"FROM {daily} GROUP BY site_id, {month}, {', '.join(keys)}")


def downgrade() -> None:
    op.drop_table("show_monthly")
    op.drop_table("sales_monthly")
