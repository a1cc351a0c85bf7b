"""What to do with an authenticated batch given what the hub holds for its device: pure, easy to test.

The batch's signature was verified first (`protocol.signing.verify_batch`): every event's hash matches
its content, so planning only compares seqs and links.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.errors import ChainError
from protocol.events import GENESIS_HASH, Event
from protocol.messages import LostEvent

Item = Event | LostEvent
UNKNOWN_HASH = None
"""A held seq whose hash is unknown: a lost event the box could no longer name."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A validly signed event that does not fit the chain the hub holds (a clone, or a stolen key)."""

    event: Event
    held_hash: str | None
    error: ChainError


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The events and lost events to store, in order, and why the rest were not.

    `last_seq`/`last_hash` are the device's chain head once `accept` is stored (`last_hash` None after a
    lost event whose hash the box no longer knew: the next event's link is then taken on its signature).
    At most one of `resend_from` (a gap before the batch) and `conflict` is set.
    """

    accept: tuple[Item, ...]
    duplicates: int
    last_seq: int
    last_hash: str | None
    resend_from: int | None = None
    conflict: Conflict | None = None

    @property
    def events(self) -> tuple[Event, ...]:
        """The accepted events, without the lost ones."""
        return tuple(item for item in self.accept if isinstance(item, Event))

    @property
    def lost(self) -> tuple[LostEvent, ...]:
        """The accepted lost events."""
        return tuple(item for item in self.accept if isinstance(item, LostEvent))


def items_of(events: Sequence[Event], lost: Sequence[LostEvent]) -> list[Item]:
    """Events and lost events of a batch, in seq order."""
    return sorted([*events, *lost], key=lambda item: item.seq)


def held_range(items: Sequence[Item], *, last_seq: int) -> tuple[int, int] | None:
    """The seqs (first, last) of the batch the hub may hold already, to look their hashes up at once."""
    seqs = [item.seq for item in items if item.seq <= last_seq]
    return (min(seqs), max(seqs)) if seqs else None


def plan_batch(
    items: Sequence[Item], *, last_seq: int, last_hash: str | None, held: Mapping[int, str | None]
) -> BatchPlan:
    """Split a device's items into duplicates, the contiguous run to store, and a stop reason.

    `held` maps the seqs at or below `last_seq` that the batch carries to the hashes the hub holds
    (None for a lost event whose hash is unknown).
    """
    accept: list[Item] = []
    known = dict(held)
    duplicates = 0
    head_seq, head_hash = last_seq, last_hash
    for item in items:
        if item.seq <= head_seq:
            held_hash = known.get(item.seq, UNKNOWN_HASH)
            if isinstance(item, LostEvent) or held_hash == item.hash or item.seq not in known:
                # Already held (at-least-once redelivery): a lost event adds nothing to what is held.
                duplicates += 1
                continue
            # An event where the hub holds another one, or a lost event with no hash (the box that lost it
            # cannot send it again: an event there comes from another journal).
            error = ChainError(f"event {item.device_id}#{item.seq}: differs from the event the hub holds at this seq")
            return BatchPlan(tuple(accept), duplicates, head_seq, head_hash, conflict=Conflict(item, held_hash, error))
        if item.seq > head_seq + 1:
            return BatchPlan(tuple(accept), duplicates, head_seq, head_hash, resend_from=head_seq + 1)
        if isinstance(item, Event):
            expected = GENESIS_HASH if head_seq == 0 else head_hash
            if expected is not None and item.prev_hash != expected:
                error = ChainError(f"event {item.device_id}#{item.seq}: prev_hash does not link to #{head_seq}")
                return BatchPlan(
                    tuple(accept), duplicates, head_seq, head_hash, conflict=Conflict(item, None, error)
                )
        accept.append(item)
        known[item.seq] = item.hash
        head_seq, head_hash = item.seq, item.hash
    return BatchPlan(tuple(accept), duplicates, head_seq, head_hash)
