"""The hub's tables for fraud control and staff audit: staff accounts and badges, the blocklist, alert cases
with their history and deliveries, where each card was last seen per site, and what staff did (the audit
trail and the daily per-card, per-cashier, per-till rollup the morning report reads).

Imported by `cloud.db.schema`, so `metadata` always holds them. Nothing here reads as a person: cards are
tokens, members and staff are ids.
"""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db.metadata import metadata
from cloud.db.types import BigId, JsonDoc, UtcDateTime

# Staff accounts (`protocol.staff.StaffEntry`): boxes get them in the member directory.
staff = sa.Table(
    "staff",
    metadata,
    sa.Column("staff_id", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Site ids they work at; empty: every site.
    sa.Column("sites", JsonDoc, nullable=False),
    # Their own loyalty membership, if any: its cards are watched on the sales they ring up.
    sa.Column("member_id", sa.String(64), sa.ForeignKey("members.member_id"), nullable=True, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("role IN ('cashier', 'supervisor', 'manager')", name="role"),
    sa.CheckConstraint("status IN ('active', 'suspended', 'left')", name="status"),
)

# The cards a staff member signs in and approves with (by token; the label shows the family and last 4).
staff_badges = sa.Table(
    "staff_badges",
    metadata,
    sa.Column("card_token", sa.String(64), primary_key=True),
    sa.Column("staff_id", sa.String(32), sa.ForeignKey("staff.staff_id"), nullable=False, index=True),
    sa.Column("label", sa.String(40), nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
)

# The chain's blocklist: a card (by token) or a member (by id). Every change publishes the whole list, signed,
# as the next version (`blocklist_state`).
blocklist = sa.Table(
    "blocklist",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Column("added_by", sa.String(64), nullable=True),
    sa.CheckConstraint("kind IN ('card', 'member')", name="kind"),
)

blocklist_state = sa.Table(
    "blocklist_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=True),
)

# Alert cases. One per (source, key): a box's alert event arriving twice, or a rule firing again for the same
# subject on the same day, adds to `count`, never a second case. State: open, acknowledged, resolved.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # `<site>:<key>` for a box's alert, `hub:<key>` for the hub's own.
    sa.Column("dedupe_key", sa.String(240), nullable=False, unique=True),
    sa.Column("code", sa.String(40), nullable=False, index=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=True),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("site_id", sa.String(64), nullable=True, index=True),
    sa.Column("device_id", sa.String(64), nullable=True),
    sa.Column("till_id", sa.String(64), nullable=True),
    sa.Column("cashier_id", sa.String(32), nullable=True),
    sa.Column("staff_id", sa.String(32), nullable=True),
    sa.Column("member_id", sa.String(64), nullable=True),
    sa.Column("card_token", sa.String(64), nullable=True),
    sa.Column("sale_id", sa.String(64), nullable=True),
    sa.Column("summary", sa.String(300), nullable=False),
    # What the rule counted and its limit, the sites and distance of a trip, the seqs of a gap...
    sa.Column("figures", JsonDoc, nullable=False),
    # The events behind it: [{"device_id", "seq"}], the first few.
    sa.Column("events", JsonDoc, nullable=False),
    sa.Column("first_at", UtcDateTime, nullable=False),
    sa.Column("last_at", UtcDateTime, nullable=False),
    sa.Column("raised_at", UtcDateTime, nullable=False, index=True),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("state", sa.String(16), nullable=False, server_default="open"),
    sa.Column("state_at", UtcDateTime, nullable=False),
    sa.Column("state_by", sa.String(64), nullable=True),
    sa.Column("note", sa.String(1000), nullable=True),
    sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="state"),
    sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity"),
)

# Every transition of a case: who, when, from what to what, and their note.
alert_history = sa.Table(
    "alert_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("username", sa.String(64), nullable=True),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("note", sa.String(1000), nullable=True),
)

# One row per case and channel (a configured notification target, by name): sent, or retried with backoff,
# and `failing` with the last error once the retries ran out (still visible on the case).
alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", UtcDateTime, nullable=True, index=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'sent', 'failing')", name="state"),
)

# Where each card was last seen at each site (event time): impossible travel compares a new sighting with the
# card's latest at the other sites.
card_sightings = sa.Table(
    "card_sightings",
    metadata,
    sa.Column("card_token", sa.String(64), primary_key=True),
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

# The staff audit trail: every staff action a box journaled (sign-in and out, refund, void, override, drawer,
# a supervisor's decision), one row per event, kept as the journal says.
staff_audit = sa.Table(
    "staff_audit",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("till_id", sa.String(64), nullable=True),
    sa.Column("staff_id", sa.String(32), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("sale_id", sa.String(64), nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("points", sa.BigInteger, nullable=True),
    # The rest of what the event says (reason, kind, approved, fraud outcome), no personal data.
    sa.Column("detail", JsonDoc, nullable=True),
    sa.Index("ix_staff_audit_site_time", "site_id", "occurred_at"),
    sa.Index("ix_staff_audit_time", "occurred_at"),
    sa.Index("ix_staff_audit_staff_time", "staff_id", "occurred_at"),
)

# Per local day (the bundle's time zone), site, till, cashier and card: what the morning report reads, kept on
# ingest in the batch's transaction. `card_token` '' for sales without a card.
staff_activity = sa.Table(
    "staff_activity",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("till_id", sa.String(64), primary_key=True),
    sa.Column("cashier_id", sa.String(32), primary_key=True),
    sa.Column("card_token", sa.String(64), primary_key=True),
    sa.Column("sales", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("points_earned", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("points_held", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("points_redeemed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunds", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("overrides", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("flagged", sa.BigInteger, nullable=False, server_default="0"),
)

# The morning report, per local day and report channel: claimed by one hub process before it sends (so two
# processes never both send it, and a restart does not send it again), `sent_at` once the channel took it. A
# claim whose process died is taken over after a while (`cloud.fraud.morning`).
report_runs = sa.Table(
    "report_runs",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("claimed_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
)
