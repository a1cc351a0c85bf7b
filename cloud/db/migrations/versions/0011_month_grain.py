"""The month grains of the box-office and occupancy rollups (`sales_monthly`, `site_hours_monthly`,
`site_dayparts_monthly`, `show_monthly`, `show_dayparts_monthly`), filled from the daily rollups already stored.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

AMOUNTS = ("tickets", "ticket_revenue", "concession_revenue", "concession_items", "sales", "member_sales")
SHOW_AMOUNTS = ("shows", "tickets")
KEYS: dict[str, sa.types.TypeEngine[Any]] = {
    "film": sa.String(120), "hall": sa.String(64), "currency": sa.String(3), "hour": sa.SmallInteger(),
    "daypart": sa.String(16)}
GRAINS = (("sales_monthly", "sales_daily", ("film", "hall", "currency"), AMOUNTS),
          ("site_hours_monthly", "site_hourly", ("hour", "currency"), AMOUNTS),
          ("site_dayparts_monthly", "site_dayparts", ("daypart", "currency"), AMOUNTS),
          ("show_monthly", "show_daily", ("film", "hall"), SHOW_AMOUNTS),
          ("show_dayparts_monthly", "show_dayparts", ("daypart", "hall"), SHOW_AMOUNTS))


def upgrade() -> None:
    month = ("CAST(date_trunc('month', day) AS date)" if op.get_bind().dialect.name == "postgresql"
             else "date(day, 'start of month')")
    for name, daily, keys, amounts in GRAINS:
        op.create_table(
            name,
            sa.Column("site_id", sa.String(64), nullable=False),
            sa.Column("month", sa.Date, nullable=False),
            *[sa.Column(key, KEYS[key], nullable=False) for key in keys],
            *[sa.Column(amount, sa.BigInteger, nullable=False, server_default="0") for amount in amounts],
            sa.PrimaryKeyConstraint("site_id", "month", *keys, name=op.f(f"pk_{name}")),
        )
        op.create_index(f"ix_{name}_month", name, ["month"])
        columns = ", ".join(("site_id", "month", *keys, *amounts))
        sums = ", ".join(f"sum({amount})" for amount in amounts)
        op.execute(f"INSERT INTO {name} ({columns}) SELECT site_id, {month}, {', '.join(keys)}, {sums} "
                   f"FROM {daily} GROUP BY site_id, {month}, {', '.join(keys)}")


def downgrade() -> None:
    for name, *_ in reversed(GRAINS):
        op.drop_table(name)
