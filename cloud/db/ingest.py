"""Data access for ingest: site and device locks, event inserts, rollup upserts, rejects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore, upsert_add
from cloud.db.schema import box_office, devices, events, ingest_rejects, sites
from protocol.events import Event

MAX_DETAIL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeviceHead:
    """A device's row as ingest needs it, read under its row lock."""

    device_id: str
    site_id: str
    last_seq: int
    last_hash: str | None


def lock_site(conn: sa.Connection, *, site_id: str, seen_at: datetime) -> bool:
    """Mark the site seen and hold its row lock until commit; False when the site is not known yet.

    Every write about a site starts here, so writers of one site queue on one row (no deadlocks over
    rollup rows), and on SQLite the first statement being a write takes the database lock up front.
    """
    result = conn.execute(
        sa.update(sites)
        .where(sites.c.site_id == site_id)
        .values(
            last_seen=sa.func.coalesce(sa.case((sites.c.last_seen > seen_at, sites.c.last_seen)), seen_at)
        )
    )
    return bool(result.rowcount)


def create_site(conn: sa.Connection, *, site_id: str, seen_at: datetime) -> None:
    """Create the site unless a concurrent writer did, then take its lock."""
    insert_or_ignore(conn, sites, {"site_id": site_id, "first_seen": seen_at, "last_seen": seen_at})
    lock_site(conn, site_id=site_id, seen_at=seen_at)


def site_of_device(conn: sa.Connection, *, device_id: str) -> str | None:
    """The site a device belongs to, or None for a device never seen."""
    return conn.execute(
        sa.select(devices.c.site_id).where(devices.c.device_id == device_id)
    ).scalar_one_or_none()


def lock_device(conn: sa.Connection, *, device_id: str, site_id: str, seen_at: datetime) -> DeviceHead:
    """The device's chain head under its row lock, creating the device (for `site_id`) when new."""
    insert_or_ignore(
        conn, devices, {"device_id": device_id, "site_id": site_id, "last_seq": 0, "last_seen": seen_at}
    )
    row = conn.execute(
        sa.select(devices.c.device_id, devices.c.site_id, devices.c.last_seq, devices.c.last_hash)
        .where(devices.c.device_id == device_id)
        .with_for_update()
    ).one()
    return DeviceHead(row.device_id, row.site_id, int(row.last_seq), row.last_hash)


def insert_events(
    conn: sa.Connection, *, batch: Sequence[Event], site_id: str, received_at: datetime
) -> None:
    """Insert events already checked against the chain (one multi-row statement)."""
    if not batch:
        return
    conn.execute(
        sa.insert(events),
        [
            {
                "device_id": event.device_id,
                "seq": event.seq,
                "event_id": str(event.event_id),
                "type": event.type,
                "site_id": site_id,
                "occurred_at": event.occurred_at,
                "received_at": received_at,
                "clock_ok": event.clock_ok,
                "hash": event.hash,
                "prev_hash": event.prev_hash,
                "body": event.model_dump(mode="json", by_alias=True),
            }
            for event in batch
        ],
    )


def add_box_office(conn: sa.Connection, *, rows: Sequence[Mapping[str, object]]) -> None:
    """Add rollup deltas onto the box-office rows; pass them sorted by key so lock order is fixed."""
    upsert_add(
        conn,
        box_office,
        rows,
        key=("site_id", "day", "film", "hall", "currency"),
        add=("tickets", "ticket_revenue", "concession_revenue", "sales"),
    )


def advance_device(
    conn: sa.Connection, *, device_id: str, last_seq: int, last_hash: str | None, seen_at: datetime
) -> None:
    """Move the device's chain head forward and mark it seen."""
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(last_seq=last_seq, last_hash=last_hash, last_seen=seen_at)
    )


def mark_chain_broken(conn: sa.Connection, *, device_id: str, at: datetime, error: str) -> None:
    """Record on the device that its chain does not hold (kept until an operator clears it)."""
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(chain_broken_at=sa.func.coalesce(devices.c.chain_broken_at, at), chain_error=error[:500])
    )


def stored_hashes(conn: sa.Connection, *, device_id: str, first: int, last: int) -> dict[int, str]:
    """The hashes the hub holds for the device's seqs first..last (inclusive), by seq."""
    rows = conn.execute(
        sa.select(events.c.seq, events.c.hash).where(
            events.c.device_id == device_id, events.c.seq.between(first, last)
        )
    )
    return {int(row.seq): row.hash for row in rows}


def acked_seq_of(conn: sa.Connection, *, device_id: str, site_id: str) -> int:
    """The device's chain head as its acks report it; 0 for a device unknown on that site."""
    value = conn.execute(
        sa.select(devices.c.last_seq).where(devices.c.device_id == device_id, devices.c.site_id == site_id)
    ).scalar_one_or_none()
    return int(value or 0)


def record_reject(
    conn: sa.Connection,
    *,
    received_at: datetime,
    topic: str,
    device_id: str | None,
    reason: str,
    detail: str,
    seq: int | None = None,
) -> bool:
    """Keep a row about a message the hub refused: the reason, never the raw payload.

    A box resends what was refused, so a row is kept once per (device, reason, seq), or per
    (device, reason, detail) when no seq is known; False when such a row exists already.
    """
    device = device_id[:64] if device_id else None
    reason, detail = reason[:64], detail[:MAX_DETAIL_CHARS]
    col = ingest_rejects.c
    same_refusal = sa.and_(
        col.reason == reason,
        col.device_id == device if device is not None else col.device_id.is_(None),
        col.seq == seq if seq is not None else sa.and_(col.seq.is_(None), col.detail == detail),
    )
    if conn.execute(sa.select(col.id).where(same_refusal).limit(1)).first() is not None:
        return False
    conn.execute(
        sa.insert(ingest_rejects).values(
            received_at=received_at, topic=topic[:255], device_id=device, reason=reason, detail=detail, seq=seq
        )
    )
    return True
