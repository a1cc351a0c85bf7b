"""Data access for the device registry: which boxes exist, for which site, under which public key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore
from cloud.db.schema import chain_conflicts, devices, sites
from cloud.errors import RegistryError


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What ingest needs to authenticate a device's messages."""

    device_id: str
    site_id: str
    public_key: str | None
    revoked: bool

    @property
    def usable(self) -> bool:
        """True when messages from this device can be authenticated at all."""
        return self.public_key is not None and not self.revoked


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A registered device as `marquee-hub devices list` shows it."""

    device_id: str
    site_id: str
    public_key: str | None
    registered_at: datetime | None
    revoked_at: datetime | None
    last_seq: int
    last_seen: datetime | None
    lost_events: int
    conflict: str | None


def device_identity(conn: sa.Connection, *, device_id: str) -> DeviceIdentity | None:
    """The device's site and key, or None for a device the hub has never registered."""
    row = conn.execute(
        sa.select(devices.c.site_id, devices.c.public_key, devices.c.revoked_at).where(
            devices.c.device_id == device_id
        )
    ).one_or_none()
    if row is None:
        return None
    return DeviceIdentity(device_id, row.site_id, row.public_key, row.revoked_at is not None)


def register_device(
    conn: sa.Connection, *, site_id: str, device_id: str, public_key: str, at: datetime, replace_key: bool = False
) -> str:
    """Register a box's public key for a site; returns what changed ("registered", "key replaced",
    "unchanged"). RegistryError when the device belongs to another site or has another key and
    `replace_key` is not set."""
    existing = conn.execute(
        sa.select(devices.c.site_id, devices.c.public_key, devices.c.revoked_at)
        .where(devices.c.device_id == device_id)
        .with_for_update()
    ).one_or_none()
    if existing is not None and existing.site_id != site_id:
        raise RegistryError(
            f"device {device_id} belongs to site {existing.site_id}; a device id never moves to another site"
        )
    insert_or_ignore(conn, sites, {"site_id": site_id})
    if existing is None:
        conn.execute(
            sa.insert(devices).values(
                device_id=device_id, site_id=site_id, public_key=public_key, registered_at=at, last_seq=0
            )
        )
        return "registered"
    same_key = existing.public_key == public_key
    if same_key and existing.revoked_at is None:
        return "unchanged"
    if existing.public_key is not None and not same_key and not replace_key:
        raise RegistryError(
            f"device {device_id} is registered with another key; pass --replace-key to register this one"
        )
    if existing.revoked_at is not None and not replace_key:
        raise RegistryError(f"device {device_id} was revoked; pass --replace-key to register it again")
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(public_key=public_key, registered_at=at, revoked_at=None)
    )
    return "registered" if existing.public_key is None else "key replaced"


def revoke_device(conn: sa.Connection, *, device_id: str, at: datetime) -> bool:
    """Refuse everything the device sends from now on; False when it is unknown or revoked already."""
    result = conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id, devices.c.revoked_at.is_(None))
        .values(revoked_at=at, online=False)
    )
    return bool(result.rowcount)


def list_devices(conn: sa.Connection, *, site_id: str | None = None) -> list[DeviceRecord]:
    """Every device (of one site when given), by site then device id."""
    stmt = sa.select(devices).order_by(devices.c.site_id, devices.c.device_id)
    if site_id is not None:
        stmt = stmt.where(devices.c.site_id == site_id)
    return [
        DeviceRecord(
            device_id=row.device_id,
            site_id=row.site_id,
            public_key=row.public_key,
            registered_at=row.registered_at,
            revoked_at=row.revoked_at,
            last_seq=int(row.last_seq),
            last_seen=row.last_seen,
            lost_events=int(row.lost_events),
            conflict=row.chain_error,
        )
        for row in conn.execute(stmt)
    ]


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """Two validly signed events under one seq of one device."""

    conflict_id: int
    device_id: str
    seq: int
    held_hash: str | None
    received_hash: str
    detected_at: datetime
    resolved_at: datetime | None
    resolution: str | None


def list_conflicts(
    conn: sa.Connection, *, device_id: str | None = None, open_only: bool = True
) -> list[ConflictRecord]:
    """Chain conflicts, oldest first; only unresolved ones unless `open_only` is False."""
    col = chain_conflicts.c
    stmt = sa.select(chain_conflicts).order_by(col.device_id, col.seq, col.id)
    if device_id is not None:
        stmt = stmt.where(col.device_id == device_id)
    if open_only:
        stmt = stmt.where(col.resolved_at.is_(None))
    return [
        ConflictRecord(
            row.id, row.device_id, int(row.seq), row.held_hash, row.received_hash, row.detected_at,
            row.resolved_at, row.resolution,
        )
        for row in conn.execute(stmt)
    ]
