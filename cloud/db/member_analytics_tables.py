"""The hub's member analytics tables: each member's activity and visit days kept on ingest, the campaigns that
reached them, and the snapshots the dashboard's member counts are read from.

Members are pseudonymous ids here: no card, name, phone or e-mail in any of these tables. Days are the local
days of the site a sale was made at (`sites.timezone`, else the rule bundle's time zone)."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db.metadata import metadata
from cloud.db.types import JsonDoc, UtcDateTime

# One row per member with at least one sale with their card (`cloud.analytics.member_activity`). Money in minor
# units of the chain's currency, as the tills priced the lines (before loyalty benefits; refunds not taken off).
member_activity = sa.Table(
    "member_activity",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    # Where they visit most (visit days per site in `site_visits`; a tie goes to the smallest site id): the site
    # a site manager sees them under.
    sa.Column("home_site", sa.String(64), nullable=True),
    sa.Column("first_visit", sa.Date, nullable=True),
    sa.Column("last_visit", sa.Date, nullable=True),
    sa.Column("visits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sales", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tickets", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("ticket_spend", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("concession_spend", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("spend", sa.BigInteger, nullable=False, server_default="0"),
    # Points the member's sales earned (lifetime; what "top by points" ranks).
    sa.Column("points_earned", sa.BigInteger, nullable=False, server_default="0"),
    # Their usual interval between visits, in days: an exponentially weighted mean of the gaps (None before a
    # second visit); and the local day from which they count as drifting away (None below the rule's visits).
    sa.Column("interval_days", sa.Float, nullable=True),
    sa.Column("churn_at", sa.Date, nullable=True),
    sa.Column("site_visits", JsonDoc, nullable=True),
    sa.Column("genres", JsonDoc, nullable=True),
    sa.Column("day_parts", JsonDoc, nullable=True),
    sa.Column("favourite_genre", sa.String(64), nullable=True),
    sa.Column("favourite_day_part", sa.String(16), nullable=True),
    # How close they are to a tier change under the running bundle, for the month `tier_month`: "up" (the next
    # tier within reach) or "down" (the current one lost at the next review without more visits); `tier_gap`
    # the share of the threshold still missing, in thousandths (what the list is ordered by).
    sa.Column("tier", sa.String(64), nullable=True),
    sa.Column("tier_change", sa.String(8), nullable=True),
    sa.Column("tier_target", sa.String(64), nullable=True),
    sa.Column("tier_gap", sa.Integer, nullable=True),
    sa.Column("tier_month", sa.String(7), nullable=True),
    # `members.balance` as of the member's last sale or the last snapshot refresh: orders a site manager's top
    # members by balance (the list shows the exact one).
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", UtcDateTime, nullable=True),
    sa.Index("ix_member_activity_home_site", "home_site"),
    sa.Index("ix_member_activity_spend", "spend", "member_id"),
    sa.Index("ix_member_activity_visits", "visits", "member_id"),
    sa.Index("ix_member_activity_points_earned", "points_earned", "member_id"),
    sa.Index("ix_member_activity_site_balance", "home_site", "balance", "member_id"),
    # Only the few members close to a tier change have a gap: small indexes, chain-wide and per home site.
    sa.Index("ix_member_activity_tier_gap", "tier_gap", "member_id", postgresql_where=sa.text("tier_gap IS NOT NULL"),
             sqlite_where=sa.text("tier_gap IS NOT NULL")),
    sa.Index("ix_member_activity_tier_site", "home_site", "tier_gap", "member_id",
             postgresql_where=sa.text("tier_gap IS NOT NULL"), sqlite_where=sa.text("tier_gap IS NOT NULL")),
    sa.Index("ix_member_activity_tier_month", "tier_month"),
)

# Every local day a member bought something (a visit), at the first site stored for that day, with that day's
# sales and spend: what makes a visit count once, intervals exact whatever order sales arrive in, and the
# campaign effect's before and after.
member_visits = sa.Table(
    "member_visits",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("sales", sa.Integer, nullable=False, server_default="0"),
    sa.Column("spend", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_member_visits_day", "day", "member_id"),
)

# The campaigns that paid a member points (`earned_by` parts named `campaign:<id>`): who a campaign reached.
member_campaigns = sa.Table(
    "member_campaigns",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("first_at", UtcDateTime, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
)

# Member counts per home site (summary, RFM cells, preferences) as of `as_of`: the dashboard reads these, a
# periodic refresh recomputes them (`cloud.analytics.members_snapshot`).
member_snapshots = sa.Table(
    "member_snapshots",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("as_of", UtcDateTime, nullable=False),
    sa.Column("body", JsonDoc, nullable=False),
)

# One row: when the snapshots were last refreshed, and until when a hub process has claimed the next refresh.
member_snapshot_state = sa.Table(
    "member_snapshot_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("refreshed_at", UtcDateTime, nullable=True),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
)

# A campaign's effect as last computed, per window and viewer scope ("*" or a hash of the sites), kept for the
# snapshot period: the computation reads every member's visits around the start.
campaign_effects = sa.Table(
    "campaign_effects",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("days", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("computed_at", UtcDateTime, nullable=False),
    sa.Column("body", JsonDoc, nullable=False),
)
