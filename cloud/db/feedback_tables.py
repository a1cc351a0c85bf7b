"""The hub's tables for audience feedback: the feedback code of every ticket sold (kept on ingest), the answers
to the public form (a comment only sealed), the NPS rollup kept as answers arrive, and complaints with their
history.

Imported by `cloud.db.schema`, so `metadata` always holds them. Nothing here reads as a person: a comment, which
may carry a name, a phone or an e-mail, is kept sealed under a key wrapped by the hub's member key, or not kept.
"""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db.metadata import metadata
from cloud.db.types import BigId, UtcDateTime

# One row per sale with a ticket, by its feedback code (`protocol.feedback.ticket_code` of the sale's event hash):
# what an answer to the form is about (the first ticket line's film, hall and show).
feedback_tickets = sa.Table(
    "feedback_tickets",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("film", sa.String(120), nullable=True),
    sa.Column("hall", sa.String(64), nullable=True),
    sa.Column("showtime", UtcDateTime, nullable=True),
    sa.Column("sold_at", UtcDateTime, nullable=False),
)

# One answer per code (the unique constraint is what refuses a second one, whatever the number of hub processes).
# Scores: `nps` 0-10 (how likely to recommend), the others 1-5 or NULL when skipped. `day`: the show's local day
# (the sale's without a showtime), as in the rollup.
feedback_answers = sa.Table(
    "feedback_answers",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(16), sa.ForeignKey("feedback_tickets.code"), nullable=False, unique=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("film", sa.String(120), nullable=True),
    sa.Column("hall", sa.String(64), nullable=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("answered_at", UtcDateTime, nullable=False, index=True),
    sa.Column("nps", sa.SmallInteger, nullable=False),
    sa.Column("film_score", sa.SmallInteger, nullable=True),
    sa.Column("hall_score", sa.SmallInteger, nullable=True),
    sa.Column("staff_score", sa.SmallInteger, nullable=True),
    # The comment sealed (AES-GCM) under a key of its own, that key wrapped by the member key (`key_id` names it):
    # nulling `comment_key` shreds the comment.
    sa.Column("comment", sa.LargeBinary, nullable=True),
    sa.Column("comment_key", sa.LargeBinary, nullable=True),
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.CheckConstraint("nps BETWEEN 0 AND 10", name="nps"),
    sa.Index("ix_feedback_answers_site_id", "site_id", "id"),
)

# Per site, local day, film and hall ('' for none): the NPS and the averages of each 1-5 question, kept as answers
# are stored (in their transaction), so no dashboard request reads the answers.
nps_daily = sa.Table(
    "nps_daily",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("film", sa.String(120), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    *[sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in (
        "answers", "promoters", "passives", "detractors", "film_sum", "film_count", "hall_sum", "hall_count",
        "staff_sum", "staff_count")],
    sa.Index("ix_nps_daily_day", "day"),
)

# A complaint: from an answer to the form (the filmgoer's contact, if any, is in that answer's sealed comment) or
# opened by HQ staff. `due_at`: the response deadline (per category); `responded_at`, `resolved_at`: when it first
# reached answered, and resolved or closed.
complaints = sa.Table(
    "complaints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("answer_id", sa.BigInteger, sa.ForeignKey("feedback_answers.id"), nullable=True, unique=True),
    sa.Column("film", sa.String(120), nullable=True),
    sa.Column("hall", sa.String(64), nullable=True),
    sa.Column("opened_at", UtcDateTime, nullable=False, index=True),
    sa.Column("opened_by", sa.String(64), nullable=True),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("responded_at", UtcDateTime, nullable=True),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("state_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("state IN ('open', 'in_progress', 'answered', 'resolved', 'closed')", name="state"),
    sa.CheckConstraint("source IN ('form', 'hq')", name="source"),
    sa.Index("ix_complaints_site_id", "site_id", "id"),
    sa.Index("ix_complaints_state_due", "state", "due_at"),
)

# Every change of a complaint: its opening (by nobody, from the form), each move and each change of owner, with
# the staff member's note.
complaint_history = sa.Table(
    "complaint_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("complaint_id", sa.BigInteger, sa.ForeignKey("complaints.id"), nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("username", sa.String(64), nullable=True),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("note", sa.String(1000), nullable=True),
)
