"""Response models of the API: pydantic models, deliberately separate from the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.calendar import known_zone


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
    version: str | None = None
    """The box's software version, as its last heartbeat said (null before its first)."""
    rules_version: int | None = None
    """The rule bundle it decides under (0: its built-in default)."""
    directory_version: int | None = None
    """The member directory version it decides from (0: none yet)."""
    disk_free_bytes: int | None = None
    clock_ok: bool | None = None
    """Whether its clock was synced."""
    counters: dict[str, int] = {}
    """Its own counters (sales answered, frames refused...)."""


class SiteOut(BaseModel):
    """A site: online when one of its devices is; events_held sums its devices' contiguous seqs; its name and
    location (degrees, WGS 84) as HQ set them (null until then)."""

    site_id: str
    last_seen: datetime | None
    online: bool
    events_held: int
    devices: list[DeviceOut]
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None
    """The site's IANA time zone (its local days and hours in the analytics); null: the rules' time zone."""


class SitePlace(BaseModel):
    """PUT /api/v1/sites/{site_id}: a site's name and location; latitude and longitude go together (both null:
    no location, and impossible travel leaves the site out)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    timezone: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$",
                                   examples=["Europe/Paris"])] | None = None
    """The site's IANA time zone: its days and hours in the analytics from now on (`marquee-hub analytics
    rebuild` recomputes what was stored before); null: the rule bundle's time zone."""

    @model_validator(mode="after")
    def _both_or_neither(self) -> SitePlace:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give latitude and longitude together, or neither")
        if self.timezone is not None and not known_zone(self.timezone):
            raise ValueError("unknown time zone; use an IANA name such as Europe/Paris")
        return self


class BoxOfficeOut(BaseModel):
    """Box-office sums for one key; money in minor units of `currency`."""

    key: str
    tickets: int
    revenue: int
    currency: str
    sales: int
