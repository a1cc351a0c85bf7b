"""Storing one authenticated batch: chain plan, idempotent insert, gaps, rollups and the ack, in the
caller's transaction.

The caller verified the batch's signature first and commits after; only after the commit does it
publish the ack: the ack promises durability.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.analytics import ingest as analytics
from cloud.db import ingest as db
from cloud.errors import IngestError, ReplayError
from cloud.fraud import ingest as fraud
from cloud.fraud.integrity import conflict_case
from cloud.ingest.plan import BatchPlan, held_range, items_of, plan_batch
from cloud.ingest.rollup import RollupDelta, RollupKey, add_sale
from cloud.members.ledger import PointsMove, apply_moves, moves_of
from protocol.errors import MalformedMessage
from protocol.events import PAYLOAD_TYPES, Event, SaleRecorded
from protocol.messages import Ack, EventBatch
from protocol.topics import device_topic


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The ack to publish plus what happened, for the worker's counters."""

    ack: Ack
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    gap: bool = False
    conflict: bool = False
    rejected: str | None = None
    bad_payloads: int = 0


@dataclass(frozen=True, slots=True)
class PayloadRefusal:
    """Why an event's payload was not taken as sent: a reason code and the faulty field names."""

    reason: str
    fields: tuple[str, ...] = ()

    def body(self, event: Event) -> dict[str, Any]:
        """The event as kept: its envelope, no payload, and what was wrong with it."""
        envelope = event.model_dump(mode="json", by_alias=True)
        envelope["payload"] = {}
        envelope["payload_refused"] = {"reason": self.reason, "fields": list(self.fields)}
        return envelope


def ingest_batch(conn: sa.Connection, *, batch: EventBatch, site_id: str, received_at: datetime) -> Ack:
    """Store an authenticated batch of site `site_id` and return the ack to publish after commit."""
    return store_batch(conn, batch=batch, site_id=site_id, received_at=received_at).ack


def store_batch(
    conn: sa.Connection,
    *,
    batch: EventBatch,
    site_id: str,
    received_at: datetime,
    topic: str | None = None,
    verified_with: str | None = None,
) -> IngestResult:
    """Like `ingest_batch`, with counts of what was stored, skipped or refused.

    IngestError when the device is not (or no longer) registered for the site, or (given
    `verified_with`, the key its signature was checked against) its key changed since: checked again
    here, under the row lock, because a revocation or a new key may have landed in between.
    """
    topic = topic or device_topic(site_id, batch.device_id, "events")
    device_id = batch.device_id
    items = items_of(batch.events, batch.lost)
    site_known = db.lock_site(conn, site_id=site_id, seen_at=received_at)
    head = db.lock_device(conn, device_id=device_id)
    if not site_known or head is None or head.site_id != site_id or head.revoked:
        raise IngestError(f"device {device_id} is not registered for site {site_id}")
    if verified_with is not None and head.public_key != verified_with:
        raise IngestError(f"device {device_id} has a new key since this batch was verified")
    # Under the device's row lock, so a resolution committing meanwhile is seen (the caller rolls back).
    settled = db.settled_hashes(conn, device_id=device_id, first=items[0].seq, last=items[-1].seq)
    if any((event.seq, event.hash) in settled for event in batch.events):
        # Signed, but settled by the owner already: answering it would only disturb the genuine box.
        raise ReplayError(f"device {device_id}: a batch with an event the owner's resolution settled")

    span = held_range(items, last_seq=head.last_seq)
    held = db.stored_hashes(conn, device_id=device_id, first=span[0], last=span[1]) if span else {}
    plan = plan_batch(items, last_seq=head.last_seq, last_hash=head.last_hash, held=held)
    bad_payloads = _store_accepted(
        conn, plan=plan, device_id=device_id, site_id=site_id, received_at=received_at, topic=topic
    )
    if plan.accept:
        db.advance_device(
            conn, device_id=device_id, last_seq=plan.last_seq, last_hash=plan.last_hash, seen_at=received_at
        )
    stored, duplicates, lost = len(plan.events), plan.duplicates, len(plan.lost)
    if plan.conflict is not None:
        conflict = plan.conflict
        reason = str(conflict.error)
        # Kept for the owner's investigation, under the rule every stored event follows: a payload that
        # does not validate is kept as its envelope and field names only.
        checked = check_payload(conflict.event, site_id=site_id)
        body = (
            checked.body(conflict.event)
            if isinstance(checked, PayloadRefusal)
            else conflict.event.model_dump(mode="json", by_alias=True)
        )
        if db.record_conflict(
            conn, device_id=device_id, seq=conflict.event.seq, held_hash=conflict.held_hash, event=conflict.event,
            body=body, at=received_at,
        ):
            db.mark_chain_broken(conn, device_id=device_id, at=received_at, error=reason)
            conflict_case(conn, seq=conflict.event.seq, device_id=device_id, site_id=site_id, at=received_at)
        db.record_reject(
            conn, received_at=received_at, topic=topic, device_id=device_id, reason="chain_conflict", detail=reason,
            seq=conflict.event.seq,
        )
        # The box's events are held up to the seq before the clash at most; no resend_from: the box
        # would resend the same clashing event forever.
        acked = min(plan.last_seq, conflict.event.seq - 1)
        acked_hash = plan.last_hash if acked == plan.last_seq else db.hash_at(conn, device_id=device_id, seq=acked)
        ack = Ack(device_id=device_id, acked_seq=acked, acked_hash=acked_hash, error="chain_conflict",
                  refused_seq=conflict.event.seq, refused_hash=conflict.event.hash)
        return IngestResult(ack, stored, duplicates, lost, conflict=True, bad_payloads=bad_payloads)
    if plan.resend_from is not None:
        ack = Ack(device_id=device_id, acked_seq=plan.last_seq, acked_hash=plan.last_hash,
                  resend_from=plan.resend_from)
        return IngestResult(ack, stored, duplicates, lost, gap=True, bad_payloads=bad_payloads)
    ack = Ack(device_id=device_id, acked_seq=plan.last_seq, acked_hash=plan.last_hash)
    return IngestResult(ack, stored, duplicates, lost, bad_payloads=bad_payloads)


def _store_accepted(
    conn: sa.Connection, *, plan: BatchPlan, device_id: str, site_id: str, received_at: datetime, topic: str
) -> int:
    """Insert the accepted events, gaps and rollup deltas; returns how many payloads were refused."""
    deltas: dict[RollupKey, RollupDelta] = {}
    refused: dict[int, dict[str, Any]] = {}
    moves: list[PointsMove] = []
    stored: list[tuple[Event, object]] = []
    for event in plan.events:
        checked = check_payload(event, site_id=site_id)
        stored.append((event, checked))
        if isinstance(checked, PayloadRefusal):
            # The event is signed and chained: keep its place in the chain (refusing it would block the
            # device for good) but not its content, and say why, by field name only.
            refused[event.seq] = checked.body(event)
            db.record_reject(
                conn,
                received_at=received_at,
                topic=topic,
                device_id=device_id,
                reason=checked.reason,
                detail=f"event #{event.seq} ({event.type[:64]}) kept without its payload; fields: "
                + (", ".join(checked.fields) or "-"),
                seq=event.seq,
            )
        elif isinstance(checked, SaleRecorded):
            add_sale(deltas, site_id=site_id, event=event, sale=checked)
        moves.extend(moves_of(event, checked, site_id))
    db.insert_events(conn, batch=plan.events, site_id=site_id, received_at=received_at, bodies=refused)
    db.insert_gaps(conn, device_id=device_id, lost=plan.lost, received_at=received_at)
    # Sorted keys: concurrent writers take rollup row locks in one order.
    db.add_box_office(conn, rows=[deltas[key].as_row(key) for key in sorted(deltas)])
    # Members' points in the same transaction: the ack promises them too.
    apply_moves(conn, moves, received_at=received_at)
    # Alert cases, the staff audit and activity, impossible travel, lost events: the ack promises them too.
    fraud.on_stored(conn, stored=stored, lost=plan.lost, device_id=device_id, site_id=site_id,
                    received_at=received_at)
    # The analytics rollups, members' activity and ticket feedback codes: no dashboard request scans events.
    analytics.on_stored(conn, stored=stored, site_id=site_id, device_id=device_id, received_at=received_at)
    return len(refused)


def check_payload(event: Event, *, site_id: str) -> object | PayloadRefusal | None:
    """The event's typed payload; a PayloadRefusal when it does not validate or names another site;
    None for a type this hub does not know (stored as sent, for a later hub to read)."""
    if event.type not in PAYLOAD_TYPES:
        return None
    try:
        payload = event.typed_payload()
    except MalformedMessage as exc:
        return PayloadRefusal("bad_payload", exc.fields)
    if getattr(payload, "site_id", site_id) != site_id:
        return PayloadRefusal("payload_site_mismatch", ("payload.site_id",))
    return payload


def reject_batch(
    conn: sa.Connection, *, batch: EventBatch, site_id: str, received_at: datetime, topic: str, detail: str
) -> IngestResult:
    """Refuse an authenticated batch the database would not take (a clashing event_id, say), in a fresh
    transaction. The ack reports the device's head as held, with error="rejected" so the box backs off."""
    db.record_reject(
        conn,
        received_at=received_at,
        topic=topic,
        device_id=batch.device_id,
        reason="rejected",
        detail=detail,
        seq=batch.first_seq,
    )
    acked = db.acked_seq_of(conn, device_id=batch.device_id, site_id=site_id)
    first = items_of(batch.events, batch.lost)[0]
    ack = Ack(
        device_id=batch.device_id,
        acked_seq=acked,
        acked_hash=db.hash_at(conn, device_id=batch.device_id, seq=acked),
        error="rejected",
        refused_seq=first.seq,
        refused_hash=first.hash,
    )
    return IngestResult(ack, rejected="rejected")
