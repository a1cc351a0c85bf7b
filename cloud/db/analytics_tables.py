"""The hub's analytics tables: the catalogue of halls (seats) and the box-office rollups kept on ingest.

Days and hours are the site's local ones (`sites.timezone`, else the rule bundle's time zone), fixed when the
event is stored; `marquee-hub analytics rebuild` recomputes them from the stored events (after a time zone
is corrected, or for events stored before the rollups existed). Which query reads which grain, and why these
grains: `cloud.analytics.rollups`."""

from __future__ import annotations

import sqlalchemy as sa

from cloud.db.metadata import metadata
from cloud.db.types import UtcDateTime

# A site's halls as tills name them, with their seats: what occupancy divides by. Edited at HQ.
halls = sa.Table(
    "halls",
    metadata,
    sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(120), nullable=True),
    sa.Column("seats", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("seats > 0", name="seats"),
)

AMOUNTS = ("tickets", "ticket_revenue", "concession_revenue", "concession_items", "sales", "member_sales")
"""What every sales rollup row adds up: tickets sold, their revenue, the bar's revenue and items, sales (each
counted once, under its first ticket line), and sales with a member's card. A sale's concessions count under
its first ticket line too (its film, hall and show), so attach rates by film and hall mean something."""

SHOW_AMOUNTS = ("shows", "tickets")
"""What the occupancy rollups add up: shows (a film in a hall at a start time, counted once) and their tickets."""


def _amounts(names: tuple[str, ...] = AMOUNTS) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in names]


# By the sale's local day and hour: what sells when, by film and hall. '' for no film or hall.
sales_hourly = sa.Table(
    "sales_hourly",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("hour", sa.SmallInteger, primary_key=True),
    sa.Column("film", sa.String(120), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    *_amounts(),
    sa.Index("ix_sales_hourly_day", "day"),
)

# By the sale's local day, without the hour: films and halls over weeks and months.
sales_daily = sa.Table(
    "sales_daily",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("film", sa.String(120), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    *_amounts(),
    sa.Index("ix_sales_daily_day", "day"),
)

# A site's sales by local day and hour, without film or hall: the chain's hours.
site_hourly = sa.Table(
    "site_hourly",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("hour", sa.SmallInteger, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    *_amounts(),
    sa.Index("ix_site_hourly_day", "day"),
)

# A site's sales by local day and day part (a ticket's show start when known, else the sale's hour): sites,
# days, weekdays and day parts, and each site's today for the live overview.
site_dayparts = sa.Table(
    "site_dayparts",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("daypart", sa.String(16), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    *_amounts(),
    sa.Index("ix_site_dayparts_day", "day"),
)

# By show (a film in a hall at a start time): occupancy per show, by the show's local day and hour.
# A sale's concessions count under the show of its first ticket line. Ticket lines without a showtime are
# in the sales rollups only.
show_sales = sa.Table(
    "show_sales",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    sa.Column("showtime", UtcDateTime, primary_key=True),
    sa.Column("film", sa.String(120), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("show_day", sa.Date, nullable=False),
    sa.Column("show_hour", sa.SmallInteger, nullable=False),
    *_amounts(),
    sa.Index("ix_show_sales_show_day", "show_day"),
    sa.Index("ix_show_sales_showtime", "showtime"),
)

# Shows and their tickets by the show's local day, film and hall (the hall: capacity comes from `halls` when
# read, so a corrected seat count applies to the past at once).
show_daily = sa.Table(
    "show_daily",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("film", sa.String(120), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    *_amounts(SHOW_AMOUNTS),
    sa.Index("ix_show_daily_day", "day"),
)

# Shows and their tickets by the show's local day, day part and hall.
show_dayparts = sa.Table(
    "show_dayparts",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("daypart", sa.String(16), primary_key=True),
    sa.Column("hall", sa.String(64), primary_key=True),
    *_amounts(SHOW_AMOUNTS),
    sa.Index("ix_show_dayparts_day", "day"),
)

# The month grains: the daily rollups summed by the local month (its first day). A range reads its whole months
# from these (a year is twelve rows per key, not 365), its other days from the daily grains
# (`cloud.analytics.grains`). Kept on ingest beside the daily rows; a rebuild sums them from the daily rows again.
def _monthly(name: str, keys: list[sa.Column[object]], amounts: tuple[str, ...] = AMOUNTS) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        *keys,
        *_amounts(amounts),
        sa.Index(f"ix_{name}_month", "month"),
    )


sales_monthly = _monthly("sales_monthly", [sa.Column("film", sa.String(120), primary_key=True),
                                           sa.Column("hall", sa.String(64), primary_key=True),
                                           sa.Column("currency", sa.String(3), primary_key=True)])
site_hours_monthly = _monthly("site_hours_monthly", [sa.Column("hour", sa.SmallInteger, primary_key=True),
                                                     sa.Column("currency", sa.String(3), primary_key=True)])
site_dayparts_monthly = _monthly("site_dayparts_monthly", [sa.Column("daypart", sa.String(16), primary_key=True),
                                                           sa.Column("currency", sa.String(3), primary_key=True)])
show_monthly = _monthly("show_monthly", [sa.Column("film", sa.String(120), primary_key=True),
                                         sa.Column("hall", sa.String(64), primary_key=True)], SHOW_AMOUNTS)
show_dayparts_monthly = _monthly("show_dayparts_monthly", [sa.Column("daypart", sa.String(16), primary_key=True),
                                                           sa.Column("hall", sa.String(64), primary_key=True)],
                                 SHOW_AMOUNTS)
