"""The per-device hash chain: sealing new events and verifying received ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from protocol.canonical import canonical_bytes, sha256_hex
from protocol.errors import ChainError
from protocol.events import EVENT_SCHEMA, GENESIS_HASH, Event


def compute_hash(hashed_fields: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical encoding of an event's fields without `hash`."""
    return sha256_hex(canonical_bytes(hashed_fields))


def seal(
    *,
    type: str,
    device_id: str,
    seq: int,
    event_id: UUID,
    occurred_at: datetime,
    clock_ok: bool,
    prev_hash: str,
    payload: Mapping[str, Any],
) -> Event:
    """Build the event that follows `prev_hash` and compute its hash."""
    draft = Event(
        schema_=EVENT_SCHEMA,
        type=type,
        device_id=device_id,
        seq=seq,
        event_id=event_id,
        occurred_at=occurred_at,
        clock_ok=clock_ok,
        prev_hash=prev_hash,
        hash=GENESIS_HASH,
        payload=dict(payload),
    )
    return draft.model_copy(update={"hash": compute_hash(draft.hashed_fields())})


def check_hash(event: Event) -> None:
    """Raise ChainError when the event's own hash does not match its content."""
    if compute_hash(event.hashed_fields()) != event.hash:
        raise ChainError(f"event {event.device_id}#{event.seq}: hash does not match its content")


def check_link(event: Event, *, prev_seq: int, prev_hash: str) -> None:
    """Raise ChainError unless `event` is the valid successor of (prev_seq, prev_hash)."""
    check_hash(event)
    if event.seq != prev_seq + 1:
        raise ChainError(f"event {event.device_id}#{event.seq}: expected seq {prev_seq + 1}")
    if event.prev_hash != prev_hash:
        raise ChainError(f"event {event.device_id}#{event.seq}: prev_hash does not link to #{prev_seq}")


def verify_chain(events: Iterable[Event], *, prev_seq: int = 0, prev_hash: str = GENESIS_HASH) -> None:
    """Raise ChainError at the first event that does not continue the chain."""
    for event in events:
        check_link(event, prev_seq=prev_seq, prev_hash=prev_hash)
        prev_seq, prev_hash = event.seq, event.hash
