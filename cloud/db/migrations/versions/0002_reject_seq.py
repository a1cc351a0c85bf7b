"""Ingest rejects remember the refused seq, so a repeated refusal is recorded once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ingest_rejects", sa.Column("seq", sa.BigInteger, nullable=True))
    op.create_index(
        "ix_ingest_rejects_device_reason_seq", "ingest_rejects", ["device_id", "reason", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_rejects_device_reason_seq", table_name="ingest_rejects")
    op.drop_column("ingest_rejects", "seq")
