"""What to do with a batch given what the hub holds for its device: pure, so it is easy to test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.chain import check_link
from protocol.errors import ChainError
from protocol.events import GENESIS_HASH, Event


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The events to store, in order, and why the rest were not.

    `last_seq`/`last_hash` are the device's chain head once `accept` is stored. At most one of
    `resend_from` (a gap before the batch) and `chain_error` (a link that does not hold) is set.
    """

    accept: tuple[Event, ...]
    duplicates: int
    last_seq: int
    last_hash: str | None
    resend_from: int | None = None
    chain_error: ChainError | None = None
    broken_seq: int | None = None


def plan_batch(events: Sequence[Event], *, last_seq: int, last_hash: str | None) -> BatchPlan:
    """Split a device's events into duplicates, the contiguous valid run to store, and a stop reason."""
    accept: list[Event] = []
    duplicates = 0
    head_seq, head_hash = last_seq, last_hash
    for event in events:
        if event.seq <= head_seq:
            # Already held: at-least-once delivery redelivers, the effect must stay exactly-once.
            duplicates += 1
            continue
        if event.seq > head_seq + 1:
            return BatchPlan(tuple(accept), duplicates, head_seq, head_hash, resend_from=head_seq + 1)
        try:
            check_link(event, prev_seq=head_seq, prev_hash=head_hash or GENESIS_HASH)
        except ChainError as exc:
            return BatchPlan(
                tuple(accept), duplicates, head_seq, head_hash, chain_error=exc, broken_seq=event.seq
            )
        accept.append(event)
        head_seq, head_hash = event.seq, event.hash
    return BatchPlan(tuple(accept), duplicates, head_seq, head_hash)
