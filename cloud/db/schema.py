"""The hub's tables (SQLAlchemy Core). Alembic migrations in `migrations/versions` create the same shape."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db import access_tables as access_tables  # sessions, API tokens, the HQ audit log, on `metadata`
from cloud.db import analytics_tables as analytics_tables  # halls and the box-office rollups, on `metadata`
from cloud.db import feedback_tables as feedback_tables  # ticket codes, answers, NPS, complaints
from cloud.db import fraud_tables as fraud_tables  # the tables of fraud control and staff audit, on `metadata`
from cloud.db import member_analytics_tables as member_analytics_tables  # members' activity, on `metadata`
from cloud.db.metadata import metadata
from cloud.db.types import BigId, JsonDoc, UtcDateTime

ROLES = ("admin", "analyst", "site_manager")

# A site exists once a device is registered for it; first/last seen stay empty until it speaks.
sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("first_seen", UtcDateTime, nullable=True),
    sa.Column("last_seen", UtcDateTime, nullable=True),
    # Where it is (WGS 84 degrees), for impossible travel between sites; set at HQ (`PUT /api/v1/sites/{id}`).
    sa.Column("name", sa.String(120), nullable=True),
    sa.Column("latitude", sa.Float, nullable=True),
    sa.Column("longitude", sa.Float, nullable=True),
    # The site's IANA time zone (Europe/Paris): its local days and hours in the analytics; None: the rules'.
    sa.Column("timezone", sa.String(64), nullable=True),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), nullable=False, index=True),
    # The box's Ed25519 identity (`ed25519:...`); nothing from a device without one is accepted.
    sa.Column("public_key", sa.String(64), nullable=True),
    sa.Column("registered_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    # Highest seq held with every lower seq held too: what the next ack reports.
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_hash", sa.String(64), nullable=True),
    sa.Column("last_seen", UtcDateTime, nullable=True),
    sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", JsonDoc, nullable=True),
    sa.Column("status_at", UtcDateTime, nullable=True),
    # An open chain conflict (two signed events under one seq); cleared by `marquee-hub devices resolve`.
    sa.Column("chain_broken_at", UtcDateTime, nullable=True),
    sa.Column("chain_error", sa.String(500), nullable=True),
    # Events the box reported lost (unreadable journal rows), each a row of `event_gaps`.
    sa.Column("lost_events", sa.BigInteger, nullable=False, server_default="0"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("clock_ok", sa.Boolean, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    # The whole event as received, unknown fields included, so a later hub can re-read what it skipped.
    sa.Column("body", JsonDoc, nullable=False),
    # A period's events in time order (the backtest's pages, reports) without scanning the table.
    sa.Index("ix_events_time", "occurred_at", "device_id", "seq"),
    # One site's period (the transaction export filtered by site) without reading every site's index entries.
    sa.Index("ix_events_site_time", "site_id", "occurred_at", "device_id", "seq"),
)

box_office = sa.Table(
    "box_office",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    # '' rather than NULL: NULLs never conflict in a primary key or an ON CONFLICT target.
    sa.Column("film", sa.String(120), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("tickets", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("ticket_revenue", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("concession_revenue", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sales", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_box_office_day", "day"),
)

ingest_rejects = sa.Table(
    "ingest_rejects",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("received_at", UtcDateTime, nullable=False, index=True),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    # The first refused event's seq, when known: a box resending the same refused batch adds no row.
    sa.Column("seq", sa.BigInteger, nullable=True),
    # How often the same refusal came, and when last: a flood of refused messages grows no table.
    sa.Column("count", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("last_at", UtcDateTime, nullable=True),
    sa.Index("ix_ingest_rejects_device_reason_seq", "device_id", "reason", "seq"),
)

event_gaps = sa.Table(
    "event_gaps",
    metadata,
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    # The lost event's hash when the box still knew it.
    sa.Column("hash", sa.String(64), nullable=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

chain_conflicts = sa.Table(
    "chain_conflicts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False, index=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("held_hash", sa.String(64), nullable=True),
    sa.Column("received_hash", sa.String(64), nullable=False),
    # The validly signed event that clashed with the one held, kept for the owner's investigation.
    sa.Column("received_body", JsonDoc, nullable=False),
    sa.Column("detected_at", UtcDateTime, nullable=False),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("resolution", sa.String(16), nullable=True),
    sa.Column("note", sa.String(500), nullable=True),
)

# Events a resolution took out of a device's chain (`devices resolve --keep box`), kept as they were.
event_archive = sa.Table(
    "event_archive",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), nullable=False, index=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("body", JsonDoc, nullable=False),
    sa.Column("archived_at", UtcDateTime, nullable=False),
    sa.Column("conflict_id", sa.BigInteger, nullable=True),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # A site manager's sites (a JSON list of site ids); None for the roles that see every site.
    sa.Column("sites", JsonDoc, nullable=True),
    sa.Column("disabled_at", UtcDateTime, nullable=True),
    # Lockout: failed passwords in a row, and until when the account refuses every password after too many.
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", UtcDateTime, nullable=True),
    sa.Column("password_changed_at", UtcDateTime, nullable=True),
    sa.CheckConstraint("role IN ('admin', 'analyst', 'site_manager')", name="role"),
)

# Every rule bundle HQ published, signed, newest version last; boxes get the latest retained on their
# site's rules topic. Kept whole (signature included) so the same bytes can be published again.
rule_bundles = sa.Table(
    "rule_bundles",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
    sa.Column("published_by", sa.String(64), nullable=True),
    sa.Column("body", JsonDoc, nullable=False),
)

# Members. Personal data only ever sealed: `profile` under the member's data key, that key wrapped by the
# hub's member key (outside the database, `cloud.members.vault`). Erasure nulls both, keeps the row.
members = sa.Table(
    "members",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("programme", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("enrolled_at", UtcDateTime, nullable=True),
    sa.Column("erased_at", UtcDateTime, nullable=True),
    sa.Column("external_id", sa.String(64), nullable=True, unique=True),
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("profile", sa.LargeBinary, nullable=True),
    # HMACs of the normalised phone and e-mail under a key derived from the member key: search by equality.
    sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
    sa.Column("email_hash", sa.String(64), nullable=True, index=True),
    sa.Column("consent", JsonDoc, nullable=True),
    # MM-DD of the birthday, no year: what boxes get for a birthday offer. Nulled by erasure.
    sa.Column("birthday_md", sa.String(5), nullable=True),
    # The ledger's sum and, per device, the highest seq of its events that the sum includes.
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("seen", JsonDoc, nullable=True),
    sa.Column("redeemed_day", sa.Date, nullable=True),
    sa.Column("redeemed", sa.BigInteger, nullable=False, server_default="0"),
    # The member's account (`protocol.account.Account` as JSON: lots, tier, activity, passes) folded from
    # their ledger under the running bundle; `balance` is its balance. `account_due`: the next instant a
    # time rule (month start, inactivity burn) has something to do for it, when the rules clock takes it.
    sa.Column("account", JsonDoc, nullable=True),
    sa.Column("account_due", UtcDateTime, nullable=True, index=True),
    sa.CheckConstraint("status IN ('active', 'anonymous', 'suspended', 'erased')", name="status"),
    sa.Index("ix_members_balance", "balance", "member_id"),  # top members by balance, a page at a time
)

member_cards = sa.Table(
    "member_cards",
    metadata,
    sa.Column("card_token", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), sa.ForeignKey("members.member_id"), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    # Family and last 4 characters only (`em4100:******7558`), for the member's list of cards.
    sa.Column("label", sa.String(40), nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Column("state_at", UtcDateTime, nullable=False),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.CheckConstraint("state IN ('active', 'lost', 'blocked', 'replaced')", name="state"),
)

# Every change of points, in event time: earned and redeemed at tills (one row per event, by device and
# seq), carried over by an import, adjusted by HQ; and what the time-based rules did, derived from those
# (kinds expiry, burn, bonus, tier; no device), rewritten when a late event refolds the member. A member's
# balance is the sum of their rows.
member_ledger = sa.Table(
    "member_ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(64), sa.ForeignKey("members.member_id"), nullable=False),
    sa.Column("card_token", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("site_id", sa.String(64), nullable=True),
    sa.Column("device_id", sa.String(64), nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("sale_id", sa.String(64), nullable=True),
    sa.Column("rules_version", sa.BigInteger, nullable=True),
    # Earn rows: what the rules count (spend, visit, earning_sale, pass_uses, passes_bought, birthday_year);
    # derived rows: {"detail": which lots, months or tiers}.
    sa.Column("detail", JsonDoc, nullable=True),
    sa.UniqueConstraint("device_id", "seq", "kind", name="uq_member_ledger_device_seq_kind"),
    sa.Index("ix_member_ledger_member_time", "member_id", "occurred_at"),
    # The points moved after a period's end (the reports' loyalty liability at that end) as a range, not a scan.
    sa.Index("ix_member_ledger_time", "occurred_at"),
)

# Who read or changed a member's personal data, and when (never the data itself).
pii_access = sa.Table(
    "pii_access",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False, index=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("member_id", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
)

# The member directory boxes hold: each change of a card's entry, or of a staff account, gets the next version
# (one counter row, updated in the changing transaction, so versions commit in order whatever the number of hub
# processes). A row is about a card (`card_token`) or a staff account (`staff_id`), never both.
directory_changes = sa.Table(
    "directory_changes",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("card_token", sa.String(64), nullable=True, index=True),
    sa.Column("staff_id", sa.String(32), nullable=True, index=True),
    # The entry (`DirectoryEntry` or `StaffEntry`) as boxes get it; NULL: boxes forget the token (erasure) or
    # the staff account (deleted).
    sa.Column("entry", JsonDoc, nullable=True),
    sa.Column("changed_at", UtcDateTime, nullable=False),
)

directory_state = sa.Table(
    "directory_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# A member's balance that went below zero at the hub: boxes cut off from each other redeemed the same
# points. One open record per member, updated while it lasts; settled when the balance is back at zero.
overdrafts = sa.Table(
    "overdrafts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(64), sa.ForeignKey("members.member_id"), nullable=False, index=True),
    sa.Column("detected_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Points below zero at the worst (positive), and the balance now.
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("sites", JsonDoc, nullable=False),
    # The redemptions involved: site, device, seq, sale, points, when.
    sa.Column("events", JsonDoc, nullable=False),
    sa.Column("settled_at", UtcDateTime, nullable=True),
)
