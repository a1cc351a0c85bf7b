"""Data access for ingest: site and device locks, event and gap inserts, rollup upserts, conflicts, rejects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.db.dialect import upsert_add
from cloud.db.schema import (
    box_office,
    chain_conflicts,
    devices,
    event_archive,
    event_gaps,
    events,
    ingest_rejects,
    sites,
)
from protocol.events import Event
from protocol.messages import LostEvent

MAX_DETAIL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeviceHead:
    """A device's row as ingest needs it, read under its row lock."""

    device_id: str
    site_id: str
    last_seq: int
    last_hash: str | None
    public_key: str | None = None
    revoked: bool = False


def lock_site(conn: sa.Connection, *, site_id: str, seen_at: datetime | None) -> bool:
    """Mark the site seen (unless `seen_at` is None) and hold its row lock until commit; False when the
    site is not registered.

    Every write about a site starts here, so writers of one site queue on one row (no deadlocks over
    rollup rows), and on SQLite the first statement being a write takes the database lock up front.
    """
    values: dict[str, Any] = {"site_id": sites.c.site_id}
    if seen_at is not None:
        values = {
            "first_seen": sa.func.coalesce(sites.c.first_seen, seen_at),
            "last_seen": sa.func.coalesce(sa.case((sites.c.last_seen > seen_at, sites.c.last_seen)), seen_at),
        }
    result = conn.execute(sa.update(sites).where(sites.c.site_id == site_id).values(**values))
    return bool(result.rowcount)


def lock_device(conn: sa.Connection, *, device_id: str) -> DeviceHead | None:
    """The registered device's chain head under its row lock; None when it is not registered."""
    col = devices.c
    row = conn.execute(
        sa.select(col.device_id, col.site_id, col.last_seq, col.last_hash, col.public_key, col.revoked_at)
        .where(col.device_id == device_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        return None
    return DeviceHead(
        row.device_id, row.site_id, int(row.last_seq), row.last_hash, row.public_key, row.revoked_at is not None
    )


def insert_events(
    conn: sa.Connection,
    *,
    batch: Sequence[Event],
    site_id: str,
    received_at: datetime,
    bodies: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """Insert events already checked against the chain (one multi-row statement).

    `bodies` replaces the stored body of some events (by seq): a payload the hub refused is kept as its
    envelope and the faulty field names, never as sent.
    """
    if not batch:
        return
    bodies = bodies or {}
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
                "body": bodies.get(event.seq) or event.model_dump(mode="json", by_alias=True),
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
    """Move the device's chain head forward and mark it seen and online: new signed events prove life."""
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(last_seq=last_seq, last_hash=last_hash, last_seen=seen_at, online=True)
    )


def mark_chain_broken(conn: sa.Connection, *, device_id: str, at: datetime, error: str) -> None:
    """Record on the device that its chain has an open conflict (until `marquee-hub devices resolve`)."""
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(chain_broken_at=sa.func.coalesce(devices.c.chain_broken_at, at), chain_error=error[:500])
    )


def stored_hashes(conn: sa.Connection, *, device_id: str, first: int, last: int) -> dict[int, str | None]:
    """The hashes the hub holds for the device's seqs first..last (inclusive), by seq: events' and
    lost events' (None when the box could not name a lost event's hash)."""
    held: dict[int, str | None] = {}
    for table in (event_gaps, events):
        rows = conn.execute(
            sa.select(table.c.seq, table.c.hash).where(table.c.device_id == device_id, table.c.seq.between(first, last))
        )
        held.update({int(row.seq): row.hash for row in rows})
    return held


def hash_at(conn: sa.Connection, *, device_id: str, seq: int) -> str | None:
    """The hash the hub holds at the device's `seq` (an event's, or a lost event's); None for seq 0 or
    a lost event the box could not name."""
    return stored_hashes(conn, device_id=device_id, first=seq, last=seq).get(seq) if seq else None


def is_gap(conn: sa.Connection, *, device_id: str, seq: int) -> bool:
    """True when the hub holds a lost event (a gap) at the device's `seq`."""
    found = conn.execute(
        sa.select(event_gaps.c.seq).where(event_gaps.c.device_id == device_id, event_gaps.c.seq == seq)
    ).first()
    return found is not None


def settled_hashes(conn: sa.Connection, *, device_id: str, first: int, last: int) -> set[tuple[int, str]]:
    """(seq, hash) pairs of the device in first..last that an owner's resolution took out of its chain:
    events archived by `--keep box`, and the refused side of conflicts resolved with `--keep hub`."""
    archived = conn.execute(
        sa.select(event_archive.c.seq, event_archive.c.hash).where(
            event_archive.c.device_id == device_id, event_archive.c.seq.between(first, last)
        )
    )
    col = chain_conflicts.c
    refused = conn.execute(
        sa.select(col.seq, col.received_hash).where(
            col.device_id == device_id, col.seq.between(first, last), col.resolution == "hub"
        )
    )
    return {(int(seq), str(value)) for seq, value in [*archived, *refused]}


def insert_gaps(conn: sa.Connection, *, device_id: str, lost: Sequence[LostEvent], received_at: datetime) -> None:
    """Record the events the box reported lost, and count them on the device."""
    if not lost:
        return
    conn.execute(
        sa.insert(event_gaps),
        [
            {
                "device_id": device_id,
                "seq": item.seq,
                "hash": item.hash,
                "reason": item.reason,
                "received_at": received_at,
            }
            for item in lost
        ],
    )
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(lost_events=devices.c.lost_events + len(lost))
    )


def record_conflict(
    conn: sa.Connection,
    *,
    device_id: str,
    seq: int,
    held_hash: str | None,
    event: Event,
    body: Mapping[str, Any],
    at: datetime,
) -> bool:
    """Keep the signed event that clashed with the chain (`body`: as it may be stored), once per
    (device, seq, hash) while open; False when it was on record already."""
    col = chain_conflicts.c
    exists = conn.execute(
        sa.select(col.id)
        .where(col.device_id == device_id, col.seq == seq, col.received_hash == event.hash, col.resolved_at.is_(None))
        .limit(1)
    ).first()
    if exists is not None:
        return False
    conn.execute(
        sa.insert(chain_conflicts).values(
            device_id=device_id,
            seq=seq,
            held_hash=held_hash,
            received_hash=event.hash,
            received_body=dict(body),
            detected_at=at,
        )
    )
    return True


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
    times: int = 1,
) -> bool:
    """Keep a row about a message the hub refused: the reason and field names, never the raw payload.

    A box resends what was refused, and a stranger may flood, so a row is kept once per (device, reason,
    seq), or per (device, reason, detail) when no seq is known, and repeats only count on it; False when
    such a row existed already.
    """
    device = device_id[:64] if device_id else None
    reason, detail = reason[:64], detail[:MAX_DETAIL_CHARS]
    col = ingest_rejects.c
    same_refusal = sa.and_(
        col.reason == reason,
        col.device_id == device if device is not None else col.device_id.is_(None),
        col.seq == seq if seq is not None else sa.and_(col.seq.is_(None), col.detail == detail),
    )
    row = conn.execute(sa.select(col.id).where(same_refusal).limit(1)).first()
    if row is not None:
        conn.execute(
            sa.update(ingest_rejects).where(col.id == row.id).values(count=col.count + times, last_at=received_at)
        )
        return False
    conn.execute(
        sa.insert(ingest_rejects).values(
            received_at=received_at,
            topic=topic[:255],
            device_id=device,
            reason=reason,
            detail=detail,
            seq=seq,
            count=times,
            last_at=received_at,
        )
    )
    return True
