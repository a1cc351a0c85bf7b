"""The halls catalogue: each site's halls as its tills name them, with their seats (what occupancy divides by)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloud.db.analytics_tables import halls
from cloud.db.schema import sites


@dataclass(frozen=True, slots=True)
class Hall:
    """A site's hall: its name on tickets (`hall`), a display name, its seats, when HQ last set it."""

    site_id: str
    hall: str
    name: str | None
    seats: int
    updated_at: datetime


def site_known(conn: sa.Connection, *, site_id: str) -> bool:
    """True when the hub knows the site."""
    return conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id == site_id)).first() is not None


def list_halls(conn: sa.Connection, *, site_id: str) -> list[Hall]:
    """The site's halls, by hall."""
    rows = conn.execute(sa.select(halls).where(halls.c.site_id == site_id).order_by(halls.c.hall))
    return [Hall(row.site_id, row.hall, row.name, int(row.seats), row.updated_at) for row in rows]


def get_hall(conn: sa.Connection, *, site_id: str, hall: str) -> Hall | None:
    """One hall of the site; None when the catalogue does not have it."""
    row = conn.execute(sa.select(halls).where(halls.c.site_id == site_id, halls.c.hall == hall)).one_or_none()
    return None if row is None else Hall(row.site_id, row.hall, row.name, int(row.seats), row.updated_at)


def set_hall(conn: sa.Connection, *, site_id: str, hall: str, name: str | None, seats: int, at: datetime) -> Hall:
    """Create the hall or set its name and seats (the site must exist)."""
    insert = postgresql.insert(halls) if conn.dialect.name == "postgresql" else sqlite.insert(halls)
    values = {"name": name, "seats": seats, "updated_at": at}
    conn.execute(insert.values(site_id=site_id, hall=hall, **values)
                 .on_conflict_do_update(index_elements=["site_id", "hall"], set_=values))
    return Hall(site_id, hall, name, seats, at)


def delete_hall(conn: sa.Connection, *, site_id: str, hall: str) -> bool:
    """Take the hall out of the catalogue (its shows then have no known capacity); False when it was not in."""
    return bool(conn.execute(sa.delete(halls).where(halls.c.site_id == site_id, halls.c.hall == hall)).rowcount)
