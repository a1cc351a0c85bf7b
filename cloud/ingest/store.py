"""Storing one batch: chain check, idempotent insert, rollups and the ack, in the caller's transaction.

The caller commits, and only after the commit publishes the ack: the ack promises durability.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from cloud.db import ingest as db
from cloud.ingest.plan import BatchPlan, held_range, plan_batch
from cloud.ingest.rollup import RollupDelta, RollupKey, add_sale
from protocol.errors import MalformedMessage
from protocol.events import Event, SaleRecorded
from protocol.messages import Ack, EventBatch
from protocol.topics import device_topic


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The ack to publish plus what happened, for the worker's counters."""

    ack: Ack
    stored: int = 0
    duplicates: int = 0
    gap: bool = False
    chain_broken: bool = False
    rejected: str | None = None
    malformed: str | None = None
    bad_payloads: int = 0


def ingest_batch(conn: sa.Connection, *, batch: EventBatch, site_id: str, received_at: datetime) -> Ack:
    """Store a batch received on site `site_id`'s topic and return the ack to publish after commit."""
    return store_batch(conn, batch=batch, site_id=site_id, received_at=received_at).ack


def store_batch(
    conn: sa.Connection,
    *,
    batch: EventBatch,
    site_id: str,
    received_at: datetime,
    topic: str | None = None,
) -> IngestResult:
    """Like `ingest_batch`, with counts of what was stored, skipped or refused."""
    topic = topic or device_topic(site_id, batch.device_id, "events")
    device_id = batch.device_id
    if batch.site_id != site_id:
        return _reject(
            conn,
            received_at,
            topic,
            batch,
            "site_mismatch",
            f"batch says site {batch.site_id!r}, topic says {site_id!r}",
        )
    if not db.lock_site(conn, site_id=site_id, seen_at=received_at):
        owner = db.site_of_device(conn, device_id=device_id)
        if owner is not None and owner != site_id:
            # Checked before creating the site, so an impostor leaves no phantom site behind.
            return _reject(
                conn,
                received_at,
                topic,
                batch,
                "device_site_mismatch",
                f"device belongs to site {owner!r}, not {site_id!r}",
            )
        db.create_site(conn, site_id=site_id, seen_at=received_at)
    head = db.lock_device(conn, device_id=device_id, site_id=site_id, seen_at=received_at)
    if head.site_id != site_id:
        return _reject(
            conn,
            received_at,
            topic,
            batch,
            "device_site_mismatch",
            f"device belongs to site {head.site_id!r}, not {site_id!r}",
        )

    span = held_range(batch.events, last_seq=head.last_seq)
    held = db.stored_hashes(conn, device_id=device_id, first=span[0], last=span[1]) if span else {}
    plan = plan_batch(batch.events, last_seq=head.last_seq, last_hash=head.last_hash, held=held)
    bad_payloads = _store_accepted(conn, plan=plan, site_id=site_id, received_at=received_at, topic=topic)
    if plan.accept:
        db.advance_device(
            conn, device_id=device_id, last_seq=plan.last_seq, last_hash=plan.last_hash, seen_at=received_at
        )
    stored, duplicates = len(plan.accept), plan.duplicates
    if plan.chain_error is not None:
        reason = str(plan.chain_error)
        db.record_reject(
            conn,
            received_at=received_at,
            topic=topic,
            device_id=device_id,
            reason="chain_broken",
            detail=reason,
            seq=plan.broken_seq,
        )
        db.mark_chain_broken(conn, device_id=device_id, at=received_at, error=reason)
        # No resend_from: the box would resend the same broken event forever.
        ack = Ack(device_id=device_id, acked_seq=plan.last_seq, error="chain_broken")
        return IngestResult(ack, stored, duplicates, chain_broken=True, bad_payloads=bad_payloads)
    if plan.malformed is not None:
        detail = f"event #{plan.broken_seq}: {plan.malformed}"
        db.record_reject(
            conn,
            received_at=received_at,
            topic=topic,
            device_id=device_id,
            reason="malformed",
            detail=detail,
            seq=plan.broken_seq,
        )
        ack = Ack(device_id=device_id, acked_seq=plan.last_seq, error="malformed")
        return IngestResult(ack, stored, duplicates, malformed=detail, bad_payloads=bad_payloads)
    if plan.resend_from is not None:
        ack = Ack(device_id=device_id, acked_seq=plan.last_seq, resend_from=plan.resend_from)
        return IngestResult(ack, stored, duplicates, gap=True, bad_payloads=bad_payloads)
    ack = Ack(device_id=device_id, acked_seq=plan.last_seq)
    return IngestResult(ack, stored, duplicates, bad_payloads=bad_payloads)


def _store_accepted(
    conn: sa.Connection, *, plan: BatchPlan, site_id: str, received_at: datetime, topic: str
) -> int:
    """Insert the accepted events and their rollup deltas; returns how many sales could not be parsed."""
    db.insert_events(conn, batch=plan.accept, site_id=site_id, received_at=received_at)
    deltas: dict[RollupKey, RollupDelta] = {}
    bad = 0
    for event in plan.accept:
        sale = _sale_of(event)
        if isinstance(sale, SaleRecorded):
            add_sale(deltas, site_id=site_id, event=event, sale=sale)
        elif sale is not None:
            # The event is chained and immutable: keep it (refusing would block the device's chain
            # forever) but leave it out of the rollups and say so.
            bad += 1
            db.record_reject(
                conn,
                received_at=received_at,
                topic=topic,
                device_id=event.device_id,
                reason="bad_payload",
                detail=f"event #{event.seq} stored, not rolled up: {sale}",
                seq=event.seq,
            )
    # Sorted keys: concurrent writers take rollup row locks in one order.
    db.add_box_office(conn, rows=[deltas[key].as_row(key) for key in sorted(deltas)])
    return bad


def _sale_of(event: Event) -> SaleRecorded | MalformedMessage | None:
    """The sale in an event, None for other event types, the error for a sale that does not parse."""
    if event.type != SaleRecorded.event_type:
        return None  # unknown or non-sale types are stored, not rolled up
    try:
        payload = event.typed_payload()
    except MalformedMessage as exc:
        return exc
    return payload if isinstance(payload, SaleRecorded) else None


def reject_batch(
    conn: sa.Connection, *, batch: EventBatch, site_id: str, received_at: datetime, topic: str, detail: str
) -> IngestResult:
    """Refuse a batch the database would not take (a clashing event_id, say), in a fresh transaction.

    The ack reports the device's head as held, with error="rejected" so the box backs off.
    """
    _reject(conn, received_at, topic, batch, "rejected", detail)
    acked = db.acked_seq_of(conn, device_id=batch.device_id, site_id=site_id)
    return IngestResult(Ack(device_id=batch.device_id, acked_seq=acked, error="rejected"), rejected="rejected")


def _reject(
    conn: sa.Connection, received_at: datetime, topic: str, batch: EventBatch, reason: str, detail: str
) -> IngestResult:
    device_id = batch.device_id
    db.record_reject(
        conn,
        received_at=received_at,
        topic=topic,
        device_id=device_id,
        reason=reason,
        detail=detail,
        seq=batch.events[0].seq,
    )
    return IngestResult(Ack(device_id=device_id, acked_seq=0, error=reason), rejected=reason)
