"""Response models of the API: pydantic models, deliberately separate from the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    """Whether the hub can do its job: database reachable, broker connected, ingest counters."""

    status: Literal["ok", "degraded"]
    database: bool
    mqtt_connected: bool
    counters: dict[str, int]


class DeviceOut(BaseModel):
    """One site box (or other device) as last heard from."""

    device_id: str
    online: bool
    last_seen: datetime
    last_seq: int
    backlog: int | None
    chain_ok: bool


class SiteOut(BaseModel):
    """A site: online when one of its devices is; events_held sums its devices' contiguous seqs."""

    site_id: str
    last_seen: datetime
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
