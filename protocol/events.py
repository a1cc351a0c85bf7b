"""The event envelope and its payloads.

Every fact a site box records is an immutable event. The envelope carries the identity and the hash
chain; the payload is kept as the raw mapping that was hashed, so fields a newer box adds survive a
hub that does not know them yet. `Event.typed_payload()` parses it into the model for its type.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from protocol import alerts, staff
from protocol.codec import validate
from protocol.errors import MalformedMessage
from protocol.fields import Hash, Id, MinorUnits, Payload, Seq, Token, UtcDatetime, text
from protocol.fraud import FraudOutcome

EVENT_SCHEMA: Final = "marquee.event/1"
GENESIS_HASH = "0" * 64
"""The prev_hash of a device's first event (seq 1)."""


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


class LineItem(BaseModel):
    """One line of a sale: a ticket for a show, or a concession item."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["ticket", "concession"]
    sku: Annotated[str, text(64, 1)]
    description: Annotated[str, text(120)] | None = None
    film: Annotated[str, text(120)] | None = None
    hall: Annotated[str, text(64)] | None = None
    showtime: UtcDatetime | None = None
    category: Annotated[str, text(64, 1)] | None = None
    """What the rules group it under: a concession's (popcorn, drinks) or a ticket's (adult, child)."""
    format: Annotated[str, text(64, 1)] | None = None
    """A ticket's format (2d, 3d, imax, premium)."""
    genre: Annotated[str, text(64, 1)] | None = None
    """A ticket's genre as the till knows it; else the bundle's film catalogue gives it."""
    quantity: Annotated[int, Field(ge=1, le=1000)] = 1
    unit_price: MinorUnits

    @property
    def amount(self) -> int:
        """Line total in minor units."""
        return self.unit_price * self.quantity


class EarnedPart(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    rule: Annotated[str, text(80, 1)]
    points: Annotated[int, Field(ge=0, le=10**12)]
    sponsor: Annotated[str, text(64, 1)] | None = None


class BenefitLine(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    line: Annotated[int, Field(ge=0, le=199)]
    amount: MinorUnits
    reason: Literal["pass", "birthday", "member"]


class PassUse(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    pass_id: Annotated[str, text(64, 1)]
    uses: Annotated[int, Field(ge=1, le=1000)]


class LoyaltyOutcome(BaseModel):
    """What loyalty decided for a sale."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: Literal["earned", "no_card", "unavailable", "blocked", "held", "withheld"]
    """blocked: the card is lost, blocked or replaced, or its member suspended: nothing earned or paid.
    held: the fraud rules held the loyalty part for a supervisor (`points_held` wait for their decision);
    withheld: the fraud rules declined it (nothing earned or given; see the sale's `fraud`)."""
    points_earned: Annotated[int, Field(ge=0, le=10**12)] = 0
    points_held: Annotated[int, Field(ge=0, le=10**12)] = 0
    """Points the sale would have earned, kept back by the fraud rules: waiting for a supervisor (held) or never
    paid (withheld)."""
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
    passes_bought: Annotated[list[Annotated[str, text(64, 1)]], Field(max_length=50)] = Field(default_factory=list)
    birthday_year: Annotated[int, Field(ge=1900, le=3000)] | None = None
    """The birthday ticket this sale gave: the year it was for."""
    tier: Annotated[str, text(64, 1)] | None = None
    programme: Annotated[str, text(64, 1)] | None = None
    capped: Annotated[str, text(200)] | None = None
    """Why the daily caps cut the points, when they did."""
    benefits_asked: bool | None = None
    """The till asked for the money off the rules give (it applies them): a replay under other rules gives
    them too. None in sales recorded before it was."""


class SaleRecorded(Payload):
    """A till completed a sale and the box answered it; recorded once the answer is decided."""

    event_type: ClassVar[str] = "sale.recorded"

    site_id: Id
    till_id: Id
    cashier_id: Annotated[str, text(64, 1)]
    sale_id: Annotated[str, text(64, 1)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[LineItem], Field(min_length=1, max_length=200)]
    total: MinorUnits
    card_token: Annotated[str, Field(pattern=r"^[0-9a-f]{32,64}$")] | None = None
    loyalty: LoyaltyOutcome
    fraud: FraudOutcome | None = None
    """What the fraud rules decided, when a rule fired (None: nothing did, or a box before them)."""

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
    cashier_id: Annotated[str, text(64, 1)]
    sale_id: Annotated[str, text(64, 1)]
    original_seq: Seq
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[LineItem], Field(min_length=1, max_length=200)]
    total: MinorUnits


HoldId = Annotated[str, Field(pattern=r"^h[0-9a-f]{16}$")]


class _Hold(Payload):
    """What every event of a hold names: the till's sale, the hold, the card, the points."""

    site_id: Id
    till_id: Id
    sale_id: Annotated[str, text(64, 1)]
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
    **staff.PAYLOADS,
    **alerts.PAYLOADS,
    SaleRecorded.event_type: SaleRecorded,
    SaleConflict.event_type: SaleConflict,
    RedemptionAuthorised.event_type: RedemptionAuthorised,
    RedemptionReleased.event_type: RedemptionReleased,
    RedemptionReversed.event_type: RedemptionReversed,
}
"""Event type name to payload model."""

