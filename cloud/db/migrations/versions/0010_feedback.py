"""Audience feedback: the feedback code of each ticket sold, the answers to the public form (comments sealed),
the NPS rollup, complaints and their history.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NPS_SUMS = ("answers", "promoters", "passives", "detractors", "film_sum", "film_count", "hall_sum", "hall_count",
            "staff_sum", "staff_count")


def upgrade() -> None:
    op.create_table(
        "feedback_tickets",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("film", sa.String(120), nullable=True),
        sa.Column("hall", sa.String(64), nullable=True),
        sa.Column("showtime", TS, nullable=True),
        sa.Column("sold_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_feedback_tickets")),
    )
    op.create_table(
        "feedback_answers",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("film", sa.String(120), nullable=True),
        sa.Column("hall", sa.String(64), nullable=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("answered_at", TS, nullable=False),
        sa.Column("nps", sa.SmallInteger, nullable=False),
        sa.Column("film_score", sa.SmallInteger, nullable=True),
        sa.Column("hall_score", sa.SmallInteger, nullable=True),
        sa.Column("staff_score", sa.SmallInteger, nullable=True),
        sa.Column("comment", sa.LargeBinary, nullable=True),
        sa.Column("comment_key", sa.LargeBinary, nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.CheckConstraint("nps BETWEEN 0 AND 10", name=op.f("ck_feedback_answers_nps")),
        sa.ForeignKeyConstraint(["code"], ["feedback_tickets.code"],
                                name=op.f("fk_feedback_answers_code_feedback_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_answers")),
        sa.UniqueConstraint("code", name=op.f("uq_feedback_answers_code")),
    )
    op.create_index(op.f("ix_feedback_answers_answered_at"), "feedback_answers", ["answered_at"])
    op.create_index("ix_feedback_answers_site_id", "feedback_answers", ["site_id", "id"])
    op.create_table(
        "nps_daily",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("film", sa.String(120), nullable=False),
        sa.Column("hall", sa.String(64), nullable=False),
        *[sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in NPS_SUMS],
        sa.PrimaryKeyConstraint("site_id", "day", "film", "hall", name=op.f("pk_nps_daily")),
    )
    op.create_index("ix_nps_daily_day", "nps_daily", ["day"])
    op.create_table(
        "complaints",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("answer_id", sa.BigInteger, nullable=True),
        sa.Column("film", sa.String(120), nullable=True),
        sa.Column("hall", sa.String(64), nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=True),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("responded_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("state_at", TS, nullable=False),
        sa.CheckConstraint("state IN ('open', 'in_progress', 'answered', 'resolved', 'closed')",
                           name=op.f("ck_complaints_state")),
        sa.CheckConstraint("source IN ('form', 'hq')", name=op.f("ck_complaints_source")),
        sa.ForeignKeyConstraint(["answer_id"], ["feedback_answers.id"],
                                name=op.f("fk_complaints_answer_id_feedback_answers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_complaints_answer_id")),
    )
    op.create_index(op.f("ix_complaints_opened_at"), "complaints", ["opened_at"])
    op.create_index("ix_complaints_site_id", "complaints", ["site_id", "id"])
    op.create_index("ix_complaints_state_due", "complaints", ["state", "due_at"])
    op.create_table(
        "complaint_history",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("complaint_id", sa.BigInteger, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.ForeignKeyConstraint(["complaint_id"], ["complaints.id"],
                                name=op.f("fk_complaint_history_complaint_id_complaints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_history")),
    )
    op.create_index(op.f("ix_complaint_history_complaint_id"), "complaint_history", ["complaint_id"])


def downgrade() -> None:
    for table in ("complaint_history", "complaints", "nps_daily", "feedback_answers", "feedback_tickets"):
        op.drop_table(table)
