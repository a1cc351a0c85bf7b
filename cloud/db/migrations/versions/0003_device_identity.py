"""Device identities: registered Ed25519 keys, lost-event gaps, chain conflicts and the event archive.

Refusals are counted on one row rather than repeated. Devices and sites are now created by
registration (`marquee-hub devices add`), so their first and last sightings may be empty. A device
seen before this revision has no key: nothing more is accepted from it until its key is registered.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.alter_column("first_seen", existing_type=TS, nullable=True)
        batch.alter_column("last_seen", existing_type=TS, nullable=True)
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("public_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("registered_at", TS, nullable=True))
        batch.add_column(sa.Column("revoked_at", TS, nullable=True))
        batch.add_column(sa.Column("lost_events", sa.BigInteger, nullable=False, server_default="0"))
        batch.alter_column("last_seen", existing_type=TS, nullable=True)
    with op.batch_alter_table("ingest_rejects") as batch:
        batch.add_column(sa.Column("count", sa.BigInteger, nullable=False, server_default="1"))
        batch.add_column(sa.Column("last_at", TS, nullable=True))
    op.create_table(
        "event_gaps",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_event_gaps")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_event_gaps_device_id_devices")
        ),
    )
    op.create_table(
        "chain_conflicts",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("held_hash", sa.String(64), nullable=True),
        sa.Column("received_hash", sa.String(64), nullable=False),
        sa.Column("received_body", JSON_DOC, nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_conflicts")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.device_id"], name=op.f("fk_chain_conflicts_device_id_devices")
        ),
    )
    op.create_index(op.f("ix_chain_conflicts_device_id"), "chain_conflicts", ["device_id"])
    op.create_table(
        "event_archive",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", JSON_DOC, nullable=False),
        sa.Column("archived_at", TS, nullable=False),
        sa.Column("conflict_id", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_archive")),
    )
    op.create_index(op.f("ix_event_archive_device_id"), "event_archive", ["device_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_event_archive_device_id"), table_name="event_archive")
    op.drop_table("event_archive")
    op.drop_index(op.f("ix_chain_conflicts_device_id"), table_name="chain_conflicts")
    op.drop_table("chain_conflicts")
    op.drop_table("event_gaps")
    with op.batch_alter_table("ingest_rejects") as batch:
        batch.drop_column("last_at")
        batch.drop_column("count")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("lost_events")
        batch.drop_column("revoked_at")
        batch.drop_column("registered_at")
        batch.drop_column("public_key")

