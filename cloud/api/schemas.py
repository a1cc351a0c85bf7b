"""Response models of the API: pydantic models, deliberately separate from the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    """GET /healthz, for load balancers: up when the database answers and ingest (if it runs) is
    connected to the broker. Nothing else, since it needs no login."""

    status: Literal["up", "down"]


class HealthDetail(BaseModel):
    """GET /api/v1/health, for operators: what /healthz sums up, and the ingest counters."""

    status: Literal["up", "down"]
    database: bool
    ingest: bool
    mqtt_connected: bool
    counters: dict[str, int]


class ErrorOut(BaseModel):
    """The body of an error answer (401, 403, 429, 503)."""

    detail: str


class GapOut(BaseModel):
    """An event the box recorded but could not read back (a journal row that failed authentication)."""

    seq: int
    reason: str
    received_at: datetime


class PeripheralOut(BaseModel):
    """A card reader or a till's POS line of a box, as its last heartbeat said; errors by kind."""

    name: str
    kind: str
    till: str | None
    state: str
    frames: int
    reads: int
    errors: dict[str, int]
    reopens: int
    last_read_at: datetime | None


class DeviceOut(BaseModel):
    """One site box as last heard from; `last_seen` is null until it first speaks."""

    device_id: str
    online: bool
    last_seen: datetime | None
    last_seq: int
    backlog: int | None
    chain_ok: bool
    registered: bool
    revoked: bool
    conflict: str | None
    lost_events: int
    recent_gaps: list[GapOut]
    peripherals: list[PeripheralOut]


class SiteOut(BaseModel):
    """A site: online when one of its devices is; events_held sums its devices' contiguous seqs."""

    site_id: str
    last_seen: datetime | None
    online: bool
    events_held: int
    devices: list[DeviceOut]


class BoxOfficeOut(BaseModel):
    """Box-office sums for one key; money in minor units of `currency`."""

    key: str
    tickets: int
    revenue: int
    currency: str
    sales: int
