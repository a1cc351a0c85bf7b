"""Rule bundles: every bundle HQ published, signed, by version.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rule_bundles",
        sa.Column("version", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("published_by", sa.String(64), nullable=True),
        sa.Column("body", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_rule_bundles")),
    )


def downgrade() -> None:
    op.drop_table("rule_bundles")
