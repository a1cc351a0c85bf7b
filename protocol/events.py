"""The event envelope and its payloads.

Every fact a site box records is an immutable event. The envelope carries the identity and the hash
chain; the payload is kept as the raw mapping that was hashed, so fields a newer box adds survive a
hub that does not know them yet. `Event.typed_payload()` parses it into the model for its type.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from protocol.codec import validate
from protocol.errors import MalformedMessage
from protocol.ids import ID_PATTERN

EVENT_SCHEMA: Final = "marquee.event/1"
HASH_PATTERN = r"^[0-9a-f]{64}$"
GENESIS_HASH = "0" * 64
"""The prev_hash of a device's first event (seq 1)."""


_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic would read 1700000000 (or "1700000000") as seconds since 1970: a number is not a date here.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_INSTANT.match(value):
        return value
    raise ValueError("a timestamp must be an ISO 8601 string with a time zone, e.g. 2026-11-23T19:30:00Z")


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    if not 1970 <= value.year <= 2200:  # a local time of year 9999 is past what datetime can hold
        raise ValueError("timestamps must fall between the years 1970 and 2200")
    return value.astimezone(UTC)


def _format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_iso_only),
    AfterValidator(_as_utc),
    PlainSerializer(_format_utc, return_type=str, when_used="json"),
]
"""A timezone-aware instant, stored in UTC and always written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""

Id = Annotated[str, Field(pattern=ID_PATTERN)]
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _text(max_length: int, min_length: int = 0) -> Any:
    # No control characters: PostgreSQL's JSONB cannot hold \u0000, and none belongs in a receipt line.
    return Field(min_length=min_length, max_length=max_length, pattern=_PRINTABLE)



Hash = Annotated[str, Field(pattern=HASH_PATTERN)]
MinorUnits = Annotated[int, Field(ge=0, le=10**12)]
INT64_MAX = 2**63 - 1
"""Every counter on the wire fits a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT)."""
Seq = Annotated[int, Field(ge=1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


def _is_v7(value: UUID) -> UUID:
    if value.version != 7:
        raise ValueError("event_id must be a UUIDv7")
    return value


class Event(BaseModel):
    """One immutable fact from one device, chained to the device's previous event by `prev_hash`."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.event/1"] = Field(default=EVENT_SCHEMA, alias="schema")
    type: Annotated[str, Field(min_length=1, max_length=64)]
    device_id: Id
    seq: Seq
    event_id: Annotated[UUID, AfterValidator(_is_v7)]
    occurred_at: UtcDatetime
    clock_ok: bool
    prev_hash: Hash
    hash: Hash
    payload: dict[str, Any]

    def hashed_fields(self) -> dict[str, Any]:
        """The JSON form of every field but `hash`, unknown ones included: what the hash covers."""
        data = self.model_dump(mode="json", by_alias=True)
        data.pop("hash")
        return data

    def typed_payload(self) -> BaseModel:
        """The payload parsed into the model registered for this event's type.

        MalformedMessage names the faulty fields, never their values (see `protocol.codec.invalid`).
        """
        model = PAYLOAD_TYPES.get(self.type)
        if model is None:
            raise MalformedMessage(f"unknown event type {self.type[:64]!r}")
        return validate(model, self.payload)


class Payload(BaseModel):
    """Base of event payloads: unknown fields are kept, values are frozen."""

    model_config = ConfigDict(extra="allow", frozen=True)
    event_type: ClassVar[str]


class LineItem(BaseModel):
    """One line of a sale: a ticket for a show, or a concession item."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["ticket", "concession"]
    sku: Annotated[str, _text(64, 1)]
    description: Annotated[str, _text(120)] | None = None
    film: Annotated[str, _text(120)] | None = None
    hall: Annotated[str, _text(64)] | None = None
    showtime: UtcDatetime | None = None
    category: Annotated[str, _text(64, 1)] | None = None
    """What the rules group it under: a concession's (popcorn, drinks) or a ticket's (adult, child)."""
    format: Annotated[str, _text(64, 1)] | None = None
    """A ticket's format (2d, 3d, imax, premium)."""
    genre: Annotated[str, _text(64, 1)] | None = None
    """A ticket's genre as the till knows it; else the bundle's film catalogue gives it."""
    quantity: Annotated[int, Field(ge=1, le=1000)] = 1
    unit_price: MinorUnits

    @property
    def amount(self) -> int:
        """Line total in minor units."""
        return self.unit_price * self.quantity


class EarnedPart(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    rule: Annotated[str, _text(80, 1)]
    points: Annotated[int, Field(ge=0, le=10**12)]
    sponsor: Annotated[str, _text(64, 1)] | None = None


class BenefitLine(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    line: Annotated[int, Field(ge=0, le=199)]
    amount: MinorUnits
    reason: Literal["pass", "birthday", "member"]


class PassUse(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    pass_id: Annotated[str, _text(64, 1)]
    uses: Annotated[int, Field(ge=1, le=1000)]


class LoyaltyOutcome(BaseModel):
    """What loyalty decided for a sale."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: Literal["earned", "no_card", "unavailable", "blocked"]
    """blocked: the card is lost, blocked or replaced, or its member suspended: nothing earned or paid."""
    points_earned: Annotated[int, Field(ge=0, le=10**12)] = 0
    points_redeemed: Annotated[int, Field(ge=0, le=10**12)] = 0
    """Points this sale was paid with (a hold captured)."""
    amount_redeemed: MinorUnits = 0
    """The money those points paid."""
    hold_id: Annotated[str, Field(pattern=r"^h[0-9a-f]{16}$")] | None = None
    balance: Annotated[int, Field(ge=-(10**12), le=10**12)] | None = None
    rule_id: str | None = None
    """The earning rules that gave points, comma-separated."""
    rules_version: Annotated[int, Field(ge=0)] | None = None
    """The rule bundle the sale was decided under (0: the box's built-in default)."""
    earned_by: Annotated[list[EarnedPart], Field(max_length=100)] = Field(default_factory=list)
    """Points per rule (earning rule, tier, day part, campaign with its sponsor)."""
    benefits: Annotated[list[BenefitLine], Field(max_length=400)] = Field(default_factory=list)
    """Money off the sale's lines that the till applied (pass, birthday ticket, member discount)."""
    discount: MinorUnits = 0
    spend: MinorUnits | None = None
    """Money the member paid (after benefits and points): what tiers and the spend discount count. None in
    sales recorded before it was: the total less the money points paid."""
    visit: bool | None = None
    pass_uses: Annotated[list[PassUse], Field(max_length=20)] = Field(default_factory=list)
    passes_bought: Annotated[list[Annotated[str, _text(64, 1)]], Field(max_length=50)] = Field(default_factory=list)
    birthday_year: Annotated[int, Field(ge=1900, le=3000)] | None = None
    """The birthday ticket this sale gave: the year it was for."""
    tier: Annotated[str, _text(64, 1)] | None = None
    programme: Annotated[str, _text(64, 1)] | None = None
    capped: Annotated[str, _text(200)] | None = None
    """Why the daily caps cut the points, when they did."""
    benefits_asked: bool | None = None
    """The till asked for the money off the rules give (it applies them): a replay under other rules gives
    them too. None in sales recorded before it was."""


class SaleRecorded(Payload):
    """A till completed a sale and the box answered it; recorded once the answer is decided."""

    event_type: ClassVar[str] = "sale.recorded"

    site_id: Id
    till_id: Id
    cashier_id: Annotated[str, _text(64, 1)]
    sale_id: Annotated[str, _text(64, 1)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[LineItem], Field(min_length=1, max_length=200)]
    total: MinorUnits
    card_token: Annotated[str, Field(pattern=r"^[0-9a-f]{32,64}$")] | None = None
    loyalty: LoyaltyOutcome

    @model_validator(mode="after")
    def _total_matches_items(self) -> SaleRecorded:
        if self.total != sum(item.amount for item in self.items):
            raise ValueError("total must equal the sum of the items")
        return self


class SaleConflict(Payload):
    """A till reused a sale id with other content: the box answered "conflict" and changed nothing else.

    The first sale stands (`original_seq`); this records the attempt, for HQ to see, as it was sent.
    """

    event_type: ClassVar[str] = "sale.conflict"

    site_id: Id
    till_id: Id
    cashier_id: Annotated[str, _text(64, 1)]
    sale_id: Annotated[str, _text(64, 1)]
    original_seq: Seq
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[LineItem], Field(min_length=1, max_length=200)]
    total: MinorUnits


HoldId = Annotated[str, Field(pattern=r"^h[0-9a-f]{16}$")]
Token = Annotated[str, Field(pattern=r"^[0-9a-f]{32,64}$")]


class _Hold(Payload):
    """What every event of a hold names: the till's sale, the hold, the card, the points."""

    site_id: Id
    till_id: Id
    sale_id: Annotated[str, _text(64, 1)]
    hold_id: HoldId
    card_token: Token
    points: Annotated[int, Field(ge=1, le=10**12)]


class RedemptionAuthorised(_Hold):
    """The box held a member's points for a sale the till is about to complete (two-phase, like a card)."""

    event_type: ClassVar[str] = "redemption.authorised"

    amount: MinorUnits
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    expires_at: UtcDatetime
    rules_version: Annotated[int, Field(ge=0)]


class RedemptionReleased(_Hold):
    """A hold ended without paying: the till cancelled it, it expired, its answer came too late for the till, or
    the sale it was for had nothing left for the points to pay (unused)."""

    event_type: ClassVar[str] = "redemption.released"

    reason: Literal["cancelled", "expired", "late", "unused"]


class RedemptionReversed(_Hold):
    """Points a sale was paid with, given back: its answer could not reach the till in time, so the till
    completed the sale without them."""

    event_type: ClassVar[str] = "redemption.reversed"

    sale_seq: Seq
    reason: Literal["late"]


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    SaleRecorded.event_type: SaleRecorded,
    SaleConflict.event_type: SaleConflict,
    RedemptionAuthorised.event_type: RedemptionAuthorised,
    RedemptionReleased.event_type: RedemptionReleased,
    RedemptionReversed.event_type: RedemptionReversed,
}
"""Event type name to payload model."""
