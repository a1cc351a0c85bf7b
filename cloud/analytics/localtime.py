"""Sites' local time for the analytics: each site's time zone, and when a sale happened.

A site's days and hours are those of its own time zone (`sites.timezone`, set at HQ), else the running rule
bundle's, else UTC. A sale happened at its event's `occurred_at` when the box's clock is believed, else when the
hub received it: the rule the points ledger follows (`cloud.members.ledger.trusted_time`), so a box with a clock
years off does not put its sales on another day."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from cloud.db.schema import sites
from cloud.ingest.counters import Throttle
from cloud.members.accounts import running_bundle
from cloud.members.ledger import trusted_time
from protocol.calendar import zone
from protocol.events import Event

log = logging.getLogger(__name__)
_unknown_log = Throttle(log)


def sale_time(event: Event, received_at: datetime) -> datetime:
    """When the event's sale happened, as the analytics count it (UTC)."""
    return event.occurred_at if trusted_time(event, received_at) else received_at


def chain_zone_name(conn: sa.Connection) -> str:
    """The running rule bundle's time zone: the one of every site without its own."""
    return running_bundle(conn).timezone


def site_zones(conn: sa.Connection, *, sites_in: frozenset[str] | None) -> dict[str, tuple[str | None, ZoneInfo]]:
    """Each registered site (of `sites_in`, None: every one) by id: its name and its time zone."""
    stmt = sa.select(sites.c.site_id, sites.c.name, sites.c.timezone).order_by(sites.c.site_id)
    if sites_in is not None:
        stmt = stmt.where(sites.c.site_id.in_(sorted(sites_in)))
    rows = conn.execute(stmt).all()
    chain: ZoneInfo | None = None
    found: dict[str, tuple[str | None, ZoneInfo]] = {}
    for row in rows:
        if row.timezone:
            found[row.site_id] = (row.name, _zone_or_utc(row.timezone, row.site_id))
            continue
        if chain is None:
            chain = _zone_or_utc(chain_zone_name(conn), None)
        found[row.site_id] = (row.name, chain)
    return found


def site_zone(conn: sa.Connection, *, site_id: str) -> ZoneInfo:
    """The time zone of the site's days and hours (UTC for a site the hub does not know)."""
    name = conn.execute(sa.select(sites.c.timezone).where(sites.c.site_id == site_id)).scalar_one_or_none()
    return _zone_or_utc(name or chain_zone_name(conn), site_id if name else None)


def _zone_or_utc(name: str, site_id: str | None) -> ZoneInfo:
    try:
        return zone(name)
    except ValueError:
        # Checked when set; a zone this machine's tz database lacks (an older tzdata) must not stop ingest.
        _unknown_log.warning("time zone %r (%s) is unknown here: counting its days in UTC", name[:64],
                             f"site {site_id}" if site_id else "the rule bundle's")
        return zone("UTC")
