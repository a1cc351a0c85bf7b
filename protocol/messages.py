"""Messages on the wire besides events: the uplink batch, the hub's ack and the box's status heartbeat."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.events import Count, Event, Id, Seq, UtcDatetime

MAX_BATCH_EVENTS = 500


class EventBatch(BaseModel):
    """Events of one device, in seq order, published on `.../{site}/{device}/events`."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.batch/1"] = Field(default="marquee.batch/1", alias="schema")
    site_id: Id
    device_id: Id
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]

    @model_validator(mode="after")
    def _one_device_in_order(self) -> EventBatch:
        for previous, event in zip(self.events, self.events[1:], strict=False):
            if event.seq != previous.seq + 1:
                raise ValueError("events of a batch must have consecutive seq")
        if any(event.device_id != self.device_id for event in self.events):
            raise ValueError("every event of a batch must come from the batch's device")
        return self


class Ack(BaseModel):
    """The hub holds every event of `device_id` up to `acked_seq`, committed.

    `resend_from` asks the box to publish again from that seq (a gap, or a batch that failed to store).
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.ack/1"] = Field(default="marquee.ack/1", alias="schema")
    device_id: Id
    acked_seq: Count
    resend_from: Seq | None = None
    error: Annotated[str, Field(max_length=200)] | None = None


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
    peripherals: dict[str, str] = Field(default_factory=dict)
    counters: dict[str, Count] = Field(default_factory=dict)
