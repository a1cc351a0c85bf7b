"""Data access for sites and devices: status heartbeats in, the sites overview out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.db import ingest as db
from cloud.db.schema import devices, event_gaps, sites
from cloud.errors import IngestError
from protocol.messages import DeviceStatus, PeripheralHealth


@dataclass(frozen=True, slots=True)
class GapView:
    """An event the box reported lost, and why."""

    seq: int
    reason: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class PeripheralView:
    """A card reader or POS line of a box, as the box's last heartbeat reported it."""

    name: str
    kind: str
    till: str | None
    state: str
    frames: int
    reads: int
    errors: dict[str, int]
    reopens: int
    last_read_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device as the overview shows it."""

    device_id: str
    online: bool
    last_seen: datetime | None
    last_seq: int
    backlog: int | None
    chain_ok: bool
    registered: bool = True
    revoked: bool = False
    conflict: str | None = None
    lost_events: int = 0
    recent_gaps: list[GapView] = field(default_factory=list)
    peripherals: list[PeripheralView] = field(default_factory=list)
    version: str | None = None
    rules_version: int | None = None
    directory_version: int | None = None
    disk_free_bytes: int | None = None
    clock_ok: bool | None = None
    counters: dict[str, int] = field(default_factory=dict)
    """What the box's last heartbeat said of itself: its software, rules and directory versions, free disk,
    whether its clock is synced, and its counters (None or empty before its first heartbeat)."""


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site with its devices."""

    site_id: str
    last_seen: datetime | None
    online: bool
    events_held: int
    devices: list[DeviceView] = field(default_factory=list)
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None


def apply_status(
    conn: sa.Connection,
    *,
    device_id: str,
    status: DeviceStatus,
    received_at: datetime,
    seen_at: datetime | None,
) -> bool:
    """Store an authenticated heartbeat of a registered device; False when it is older than the one held.

    `seen_at` is when the box was last heard from (None for the broker's last will, which says the box
    went away, not that it spoke). The will was written when the box connected, so its backlog is as old
    as that: the backlog shown is what the box last said it held beyond what the hub holds now.
    """
    site_known = db.lock_site(conn, site_id=status.site_id, seen_at=seen_at)
    row = conn.execute(
        sa.select(devices.c.site_id, devices.c.status, devices.c.last_seq)
        .where(devices.c.device_id == device_id)
        .with_for_update()
    ).one_or_none()
    if not site_known or row is None or row.site_id != status.site_id:
        raise IngestError(f"device {device_id} is not registered for site {status.site_id}")
    previous = row.status or {}
    body = status.model_dump(mode="json", by_alias=True)
    body.pop("signature", None)
    if status.online and not _newer(body.get("sent_at"), previous.get("sent_at")):
        return False  # a replayed, repeated or reordered heartbeat says nothing new
    if not status.online and previous and body.get("session") != previous.get("session"):
        return False  # the will of an earlier connection (a replay): the box spoke since
    if not status.online:
        box_last = max(status.last_seq, _int(previous.get("last_seq")))
        body["last_seq"] = box_last
        body["backlog"] = max(0, box_last - int(row.last_seq))
        # The will was written at connect time: keep the newest heartbeat's stamp as the mark any later
        # heartbeat must pass, so a replay of one sent before the box died cannot bring it back online.
        if _newer(previous.get("sent_at"), body.get("sent_at")):
            body["sent_at"] = previous["sent_at"]
    values: dict[str, Any] = {"online": status.online, "status": body, "status_at": received_at}
    if seen_at is not None:
        values["last_seen"] = sa.func.coalesce(
            sa.case((devices.c.last_seen > seen_at, devices.c.last_seen)), seen_at
        )
    conn.execute(sa.update(devices).where(devices.c.device_id == device_id).values(**values))
    return True


def _newer(sent_at: object, held: object) -> bool:
    """True unless both stamps are known and `sent_at` is not after `held`.

    Both are the wire's fixed-width UTC form (YYYY-MM-DDTHH:MM:SS.ffffffZ), which sorts as text. The
    heartbeats of a box whose clock stepped back (a reboot without a real-time clock) count again once its
    clock passes its last stamp; until then each batch of events it sends shows it online.
    """
    return not (isinstance(sent_at, str) and isinstance(held, str) and sent_at <= held)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


RECENT_GAPS = 5


def list_sites(conn: sa.Connection, *, now: datetime, offline_after: timedelta) -> list[SiteView]:
    """Every site with its devices; a device is online when its status says so and it spoke recently."""
    fresh_since = now - offline_after
    device_rows = conn.execute(sa.select(devices).order_by(devices.c.site_id, devices.c.device_id)).all()
    by_site: dict[str, list[DeviceView]] = {}
    for row in device_rows:
        backlog = (row.status or {}).get("backlog")
        by_site.setdefault(row.site_id, []).append(
            DeviceView(
                device_id=row.device_id,
                online=bool(row.online) and row.last_seen is not None and row.last_seen >= fresh_since,
                last_seen=row.last_seen,
                last_seq=int(row.last_seq),
                backlog=backlog if isinstance(backlog, int) else None,
                chain_ok=row.chain_error is None,
                registered=row.public_key is not None,
                revoked=row.revoked_at is not None,
                conflict=row.chain_error,
                lost_events=int(row.lost_events),
                recent_gaps=_recent_gaps(conn, row.device_id) if row.lost_events else [],
                peripherals=_peripherals(row.status),
                **_box_health(row.status),
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
                name=site.name,
                latitude=site.latitude,
                longitude=site.longitude,
                timezone=site.timezone,
            )
        )
    return result


PLACE_FIELDS = frozenset({"name", "latitude", "longitude", "timezone"})


def set_place(
    conn: sa.Connection, *, site_id: str, name: str | None, latitude: float | None, longitude: float | None,
    timezone: str | None = None, fields: frozenset[str] = PLACE_FIELDS,
) -> bool:
    """Set a site's name, location (impossible travel compares located sites only) and time zone, those of them
    named in `fields` (the others keep their value); False when the site is not registered."""
    given = {"name": name, "latitude": latitude, "longitude": longitude, "timezone": timezone}
    values = {column: value for column, value in given.items() if column in fields}
    if not values:
        raise ValueError("set_place: no field to set")
    result = conn.execute(sa.update(sites).where(sites.c.site_id == site_id).values(**values))
    return bool(result.rowcount)


def _peripherals(status: object) -> list[PeripheralView]:
    """The devices a box reported in its last heartbeat (validated when it arrived), by name."""
    reported = status.get("peripheral_health") if isinstance(status, dict) else None
    if not isinstance(reported, dict):
        return []
    views = []
    for name, body in sorted(reported.items()):
        health = PeripheralHealth.model_validate(body)
        views.append(PeripheralView(
            name=name, kind=health.kind, till=health.till, state=health.state, frames=health.frames,
            reads=health.reads, errors=dict(health.errors), reopens=health.reopens, last_read_at=health.last_read_at,
        ))
    return views


def _box_health(status: object) -> dict[str, Any]:
    """Versions, disk, clock and counters from a box's last heartbeat (validated when it arrived)."""
    if not isinstance(status, dict):
        return {}

    def typed(name: str, kind: type) -> Any:
        value = status.get(name)
        # bool is an int to isinstance: a version number is never True.
        return value if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)) else None

    counters = status.get("counters")
    return {
        "version": typed("version", str), "rules_version": typed("rules_version", int),
        "directory_version": typed("directory_version", int), "disk_free_bytes": typed("disk_free_bytes", int),
        "clock_ok": typed("clock_ok", bool),
        "counters": {str(k): v for k, v in sorted(counters.items()) if isinstance(v, int)}
        if isinstance(counters, dict) else {},
    }


def _recent_gaps(conn: sa.Connection, device_id: str) -> list[GapView]:
    rows = conn.execute(
        sa.select(event_gaps.c.seq, event_gaps.c.reason, event_gaps.c.received_at)
        .where(event_gaps.c.device_id == device_id)
        .order_by(event_gaps.c.seq.desc())
        .limit(RECENT_GAPS)
    )
    return [GapView(int(row.seq), row.reason, row.received_at) for row in rows]
