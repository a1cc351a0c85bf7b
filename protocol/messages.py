"""Messages on the wire besides events: the uplink batch, the hub's ack and the box's status heartbeat.

A batch and a status carry the box's Ed25519 signature (`protocol.signing`); the hub verifies it
against the device's registered key before it changes anything.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.events import Event
from protocol.fields import Count, Hash, Id, Seq, UtcDatetime

MAX_BATCH_EVENTS = 500
SIGNATURE_PATTERN = r"^[A-Za-z0-9_-]{86}$"
"""An Ed25519 signature (64 bytes) in unpadded base64url."""
Signature = Annotated[str, Field(pattern=SIGNATURE_PATTERN)]
Reason = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class LostEvent(BaseModel):
    """An event the box recorded but can no longer read (its journal row failed authentication).

    The box sends it in place of the event, so the hub records a gap with its reason and the chain goes
    on; `hash` is the lost event's hash when the box still knows it (the next event links to it).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    seq: Seq
    hash: Hash | None = None
    reason: Reason


class EventBatch(BaseModel):
    """Events of one device, in seq order, published on `.../{site}/{device}/events`.

    `lost` holds the seqs in the batch's run that the box could not read; events and lost seqs together
    are consecutive. `signature` is the box's signature over the batch (`protocol.signing.sign_batch`).
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.batch/1"] = Field(default="marquee.batch/1", alias="schema")
    site_id: Id
    device_id: Id
    events: Annotated[list[Event], Field(max_length=MAX_BATCH_EVENTS)]
    lost: Annotated[list[LostEvent], Field(max_length=MAX_BATCH_EVENTS)] = Field(default_factory=list)
    signature: Signature | None = None

    @model_validator(mode="after")
    def _one_device_in_order(self) -> EventBatch:
        if not self.events and not self.lost:
            raise ValueError("a batch needs at least one event or lost event")
        if len(self.events) + len(self.lost) > MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_EVENTS} events and lost events")
        for previous, event in zip(self.events, self.events[1:], strict=False):
            if event.seq <= previous.seq:
                raise ValueError("events of a batch must have consecutive seq")
        seqs = sorted([event.seq for event in self.events] + [lost.seq for lost in self.lost])
        if any(later != earlier + 1 for earlier, later in zip(seqs, seqs[1:], strict=False)):
            raise ValueError("events of a batch must have consecutive seq")
        if any(event.device_id != self.device_id for event in self.events):
            raise ValueError("every event of a batch must come from the batch's device")
        return self

    @property
    def first_seq(self) -> int:
        """The lowest seq the batch carries, an event's or a lost one's."""
        return min([event.seq for event in self.events[:1]] + [lost.seq for lost in self.lost])


class Ack(BaseModel):
    """The hub holds every event of `device_id` up to `acked_seq`, committed.

    `acked_hash` is the hash of the event the hub holds at `acked_seq`: a box advances only when it is
    the hash of its own event there (two journals under one identity must not ack each other's events).
    `resend_from` asks the box to publish again from that seq (a gap, or a batch that failed to store).
    With `error`, `refused_seq`/`refused_hash` name the event the hub refused: a box holds back only for
    an error about its own event, so a replayed error about another journal's event stalls nobody.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.ack/1"] = Field(default="marquee.ack/1", alias="schema")
    device_id: Id
    acked_seq: Count
    acked_hash: Hash | None = None
    resend_from: Seq | None = None
    error: Annotated[str, Field(max_length=200)] | None = None
    refused_seq: Seq | None = None
    refused_hash: Hash | None = None


ShortName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class PeripheralHealth(BaseModel):
    """One device the box reads (a card reader, a till's POS line), as its heartbeat reports it.

    `frames`: well-formed frames; `reads`: cards presented (repeats of a card resting on a reader are one);
    `errors`: faults by kind (noise, checksum, parity, timeout, card_id...); `reopens`: times the port came
    back after it was lost; `last_read_at`: the last card presented.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: ShortName
    till: Id | None = None
    state: Literal["starting", "up", "down", "stopped"]
    frames: Count = 0
    reads: Count = 0
    errors: dict[ShortName, Count] = Field(default_factory=dict)
    reopens: Count = 0
    last_read_at: UtcDatetime | None = None


class DeviceStatus(BaseModel):
    """The box's heartbeat, retained on `.../{site}/{device}/status`; the broker's last will says offline."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.status/1"] = Field(default="marquee.status/1", alias="schema")
    site_id: Id
    device_id: Id
    online: bool
    sent_at: UtcDatetime | None = None
    clock_ok: bool | None = None
    version: str | None = None
    last_seq: Count = 0
    acked_seq: Count = 0
    backlog: Count = 0
    disk_free_bytes: Count | None = None
    quarantined: Count = 0
    """Journal rows the box could not read and set aside (each reaches the hub as a lost event)."""
    session: Annotated[str, Field(pattern=r"^[0-9a-f]{8,32}$")] | None = None
    """Random per connection to the broker, in the heartbeats and the last will of that connection: the
    hub takes a will only for the connection it last heard from, so an old will replayed changes nothing."""
    rules_version: Count | None = None
    """The rule bundle the box decides under (0: its built-in default, before the hub's first bundle)."""
    rules_refusal: Annotated[str, Field(max_length=300)] | None = None
    """Why the last bundle the hub sent was refused (a bad signature, an older version...), if it was."""
    directory_version: Count | None = None
    """The member directory version the box decides from (0: none yet)."""
    peripherals: dict[str, str] = Field(default_factory=dict)
    """Each peripheral's state by name (kept for hubs that read only this; `peripheral_health` has it all)."""
    peripheral_health: dict[ShortName, PeripheralHealth] = Field(default_factory=dict)
    counters: dict[str, Count] = Field(default_factory=dict)
    signature: Signature | None = None
