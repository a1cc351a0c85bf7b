"""Data access for sites and devices: status heartbeats in, the sites overview out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.db import ingest as db
from cloud.db.schema import devices, sites


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device as the overview shows it."""

    device_id: str
    online: bool
    last_seen: datetime
    last_seq: int
    backlog: int | None
    chain_ok: bool


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site with its devices."""

    site_id: str
    last_seen: datetime
    online: bool
    events_held: int
    devices: list[DeviceView] = field(default_factory=list)


def apply_status(
    conn: sa.Connection,
    *,
    site_id: str,
    device_id: str,
    online: bool,
    status: dict[str, Any],
    received_at: datetime,
    seen_at: datetime | None,
) -> str | None:
    """Store a device's heartbeat; returns a reject reason instead when the device is another site's.

    `seen_at` is when the box was last heard from (None for the broker's last will, which says the box
    went away, not that it spoke).
    """
    stamp = seen_at or received_at
    if not db.lock_site(conn, site_id=site_id, seen_at=stamp):
        owner = db.site_of_device(conn, device_id=device_id)
        if owner is not None and owner != site_id:
            return "device_site_mismatch"
        db.create_site(conn, site_id=site_id, seen_at=stamp)
    head = db.lock_device(conn, device_id=device_id, site_id=site_id, seen_at=stamp)
    if head.site_id != site_id:
        return "device_site_mismatch"
    values: dict[str, Any] = {"online": online, "status": status, "status_at": received_at}
    if seen_at is not None:
        values["last_seen"] = sa.func.coalesce(
            sa.case((devices.c.last_seen > seen_at, devices.c.last_seen)), seen_at
        )
    conn.execute(sa.update(devices).where(devices.c.device_id == device_id).values(**values))
    return None


def list_sites(conn: sa.Connection, *, now: datetime, offline_after: timedelta) -> list[SiteView]:
    """Every site with its devices; a device is online when its status says so and it spoke recently."""
    fresh_since = now - offline_after
    device_rows = conn.execute(
        sa.select(
            devices.c.site_id,
            devices.c.device_id,
            devices.c.online,
            devices.c.last_seen,
            devices.c.last_seq,
            devices.c.status,
            devices.c.chain_error,
        ).order_by(devices.c.site_id, devices.c.device_id)
    ).all()
    by_site: dict[str, list[DeviceView]] = {}
    for row in device_rows:
        backlog = (row.status or {}).get("backlog")
        by_site.setdefault(row.site_id, []).append(
            DeviceView(
                device_id=row.device_id,
                online=bool(row.online) and row.last_seen >= fresh_since,
                last_seen=row.last_seen,
                last_seq=int(row.last_seq),
                backlog=backlog if isinstance(backlog, int) else None,
                chain_ok=row.chain_error is None,
            )
        )
    result = []
    for site in conn.execute(sa.select(sites).order_by(sites.c.site_id)).all():
        members = by_site.get(site.site_id, [])
        result.append(
            SiteView(
                site_id=site.site_id,
                last_seen=site.last_seen,
                online=any(device.online for device in members),
                events_held=sum(device.last_seq for device in members),
                devices=members,
            )
        )
    return result
