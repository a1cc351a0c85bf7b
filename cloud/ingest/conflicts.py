"""Resolving a chain conflict: two validly signed events under one seq of one device.

Only the holder of the device's key can sign, so a conflict means two journals under one identity: a
cloned box, a stolen key, or a box whose journal was restored from an old backup. The hub never picks a
side on its own; the owner decides with `marquee-hub devices resolve DEVICE --keep hub|box`:

- `hub`: the events the hub holds stand; the clashing ones stay in `chain_conflicts` for the record.
- `box`: the hub moves its own events from the conflicting seq on to `event_archive` (taking them out
  of the box-office figures) and takes the box's chain from there on its next resend. Refused when the
  box's event does not link to the hub's head (the fork lies where the hub cannot see it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from cloud.analytics.rollups import remove_sales
from cloud.db import ingest as db
from cloud.db.schema import chain_conflicts, devices, event_archive, event_gaps, events
from cloud.errors import RegistryError
from cloud.fraud.ingest import forget_events
from cloud.ingest.rollup import RollupDelta, RollupKey, add_sale
from cloud.ingest.store import check_payload
from cloud.members.ledger import unledger_from
from protocol.events import Event, SaleRecorded

Keep = Literal["hub", "box"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a resolution did."""

    conflicts: int
    archived: int
    head_seq: int


def resolve_conflicts(conn: sa.Connection, *, device_id: str, keep: Keep, at: datetime, note: str | None) -> Resolution:
    """Close the device's open conflicts the way the owner chose; RegistryError when there is none."""
    col = chain_conflicts.c
    device = conn.execute(
        sa.select(devices.c.site_id, devices.c.last_seq).where(devices.c.device_id == device_id).with_for_update()
    ).one_or_none()
    if device is None:
        raise RegistryError(f"device {device_id} is not registered")
    open_rows = conn.execute(
        sa.select(col.id, col.seq, col.held_hash).where(col.device_id == device_id, col.resolved_at.is_(None))
        .order_by(col.seq)
    ).all()
    if not open_rows:
        raise RegistryError(f"device {device_id} has no open chain conflict")
    archived, head_seq = 0, int(device.last_seq)
    if keep == "box":
        first = open_rows[0]
        start = int(first.seq)
        held_at_start = first.held_hash is not None or db.is_gap(conn, device_id=device_id, seq=start)
        if not held_at_start:
            # The box's event did not link to the hub's head: the two journals forked further back, at a
            # seq the hub cannot tell (it holds only one side of it). Taking the box's side needs that seq.
            raise RegistryError(
                f"device {device_id}: the box's event #{start} does not link to the hub's chain, so the fork "
                "lies further back; keep the hub's chain (--keep hub) and re-provision the box"
            )
        archived = _archive_from(conn, device_id=device_id, site_id=device.site_id, start=start, at=at,
                                 conflict_id=int(first.id))
        head_seq = start - 1
    conn.execute(
        sa.update(chain_conflicts)
        .where(col.device_id == device_id, col.resolved_at.is_(None))
        .values(resolved_at=at, resolution=keep, note=(note or None) and note[:500])
    )
    conn.execute(
        sa.update(devices).where(devices.c.device_id == device_id).values(chain_broken_at=None, chain_error=None)
    )
    return Resolution(conflicts=len(open_rows), archived=archived, head_seq=head_seq)


def _archive_from(
    conn: sa.Connection, *, device_id: str, site_id: str, start: int, at: datetime, conflict_id: int
) -> int:
    """Move the device's events from `start` on to the archive, undo their rollups, rewind the head."""
    rows = conn.execute(
        sa.select(events.c.seq, events.c.hash, events.c.body, events.c.received_at)
        .where(events.c.device_id == device_id, events.c.seq >= start)
        .order_by(events.c.seq)
    ).all()
    deltas: dict[RollupKey, RollupDelta] = {}
    archived: list[tuple[Event, object]] = []
    received: list[tuple[Event, object, datetime]] = []
    for row in rows:
        event = Event.model_validate(row.body) if "payload_refused" not in row.body else None
        sale = check_payload(event, site_id=site_id) if event is not None else None
        if event is not None:
            archived.append((event, sale))
            received.append((event, sale, row.received_at))
        if event is not None and isinstance(sale, SaleRecorded):
            add_sale(deltas, site_id=site_id, event=event, sale=sale)
    db.add_box_office(conn, rows=[deltas[key].negated().as_row(key) for key in sorted(deltas)])
    # Members first (their row locks, in the order ingest takes them), then the staff audit and activity, then the
    # analytics rollups (ingest writes them last: another order could deadlock with a batch of the site): the box's
    # events take these seqs.
    unledger_from(conn, device_id=device_id, start=start, at=at)
    forget_events(conn, stored=archived, device_id=device_id, start=start, site_id=site_id)
    remove_sales(conn, archived=received, site_id=site_id)  # the analytics rollups, in the site's local days
    if rows:
        conn.execute(
            sa.insert(event_archive),
            [
                {"device_id": device_id, "seq": row.seq, "hash": row.hash, "body": row.body, "archived_at": at,
                 "conflict_id": conflict_id}
                for row in rows
            ],
        )
    conn.execute(sa.delete(events).where(events.c.device_id == device_id, events.c.seq >= start))
    gaps = conn.execute(
        sa.delete(event_gaps).where(event_gaps.c.device_id == device_id, event_gaps.c.seq >= start)
    ).rowcount
    head_hash = db.hash_at(conn, device_id=device_id, seq=start - 1)
    conn.execute(
        sa.update(devices)
        .where(devices.c.device_id == device_id)
        .values(last_seq=start - 1, last_hash=head_hash, lost_events=devices.c.lost_events - gaps)
    )
    return len(rows)
