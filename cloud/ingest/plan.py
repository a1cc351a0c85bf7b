"""What to do with a batch given what the hub holds for its device: pure, so it is easy to test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.chain import check_link
from protocol.errors import ChainError, MalformedMessage
from protocol.events import GENESIS_HASH, Event


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The events to store, in order, and why the rest were not.

    `last_seq`/`last_hash` are the device's chain head once `accept` is stored. At most one of
    `resend_from` (a gap before the batch), `chain_error` (a link that does not hold, or an event that
    differs from the one held at its seq) and `malformed` (an event that cannot be hashed) is set;
    `broken_seq` names the event the last two stopped at.
    """

    accept: tuple[Event, ...]
    duplicates: int
    last_seq: int
    last_hash: str | None
    resend_from: int | None = None
    chain_error: ChainError | None = None
    broken_seq: int | None = None
    malformed: MalformedMessage | None = None


def held_range(events: Sequence[Event], *, last_seq: int) -> tuple[int, int] | None:
    """The seqs (first, last) of the batch the hub may hold already, to look their hashes up at once."""
    seqs = [event.seq for event in events if event.seq <= last_seq]
    return (min(seqs), max(seqs)) if seqs else None


def plan_batch(
    events: Sequence[Event], *, last_seq: int, last_hash: str | None, held: Mapping[int, str]
) -> BatchPlan:
    """Split a device's events into duplicates, the contiguous valid run to store, and a stop reason.

    `held` maps the seqs at or below `last_seq` that the batch carries to the hashes the hub holds.
    """
    accept: list[Event] = []
    known = dict(held)
    duplicates = 0
    head_seq, head_hash = last_seq, last_hash
    for event in events:
        if event.seq <= head_seq:
            if known.get(event.seq) == event.hash:
                # Already held: at-least-once delivery redelivers, the effect must stay exactly-once.
                duplicates += 1
                continue
            # Another event under a seq already held: a box rebuilt under an old device id, or a forgery.
            error = ChainError(
                f"event {event.device_id}#{event.seq}: differs from the event the hub holds at this seq"
            )
            return BatchPlan(
                tuple(accept), duplicates, head_seq, head_hash, chain_error=error, broken_seq=event.seq
            )
        if event.seq > head_seq + 1:
            return BatchPlan(tuple(accept), duplicates, head_seq, head_hash, resend_from=head_seq + 1)
        try:
            check_link(event, prev_seq=head_seq, prev_hash=head_hash or GENESIS_HASH)
        except ChainError as exc:
            return BatchPlan(
                tuple(accept), duplicates, head_seq, head_hash, chain_error=exc, broken_seq=event.seq
            )
        except MalformedMessage as exc:
            # Content no canonical encoder accepts (a float, say): not a chain break, a hostile payload.
            return BatchPlan(
                tuple(accept), duplicates, head_seq, head_hash, broken_seq=event.seq, malformed=exc
            )
        accept.append(event)
        known[event.seq] = event.hash
        head_seq, head_hash = event.seq, event.hash
    return BatchPlan(tuple(accept), duplicates, head_seq, head_hash)
