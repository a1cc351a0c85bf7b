"""The POS line protocol's messages: what a till sends (sale; v1.1 redeem and cancel) and what the box answers
(v1.4: with the ticket's feedback link when the till asks).

docs/pos-protocol.md is the vendors' description; `edge.devices.pos` frames, parses and encodes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

from protocol.fields import UtcDatetime

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SALE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


IdStr = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# JSON escapes can smuggle control characters (\u0000) past the framing's byte check: refuse them here.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=PRINTABLE)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=PRINTABLE)]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
Price = Annotated[int, Field(strict=True, ge=0, le=10_000_000)]  # minor units
Qty = Annotated[int, Field(strict=True, ge=1, le=999)]


def _iso_z(value: datetime) -> str:
    # UtcDatetime writes microseconds always; on the POS line keep the short form the doc shows.
    return value.isoformat().replace("+00:00", "Z")


# UtcDatetime refuses numbers (pydantic would read 1700000000 as a unix time) and naive times, and
# converts to UTC; the serializer after it keeps `2026-11-23T19:30:00Z` as the till wrote it.
Showtime = Annotated[UtcDatetime, PlainSerializer(_iso_z, return_type=str, when_used="json")]


class _Message(BaseModel):
    # Unknown fields are ignored so a POS that sends more than we read still gets an answer.
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)


class SaleItem(_Message):
    """One line of a sale: a ticket (film, hall, showtime required) or a concession (description required)."""

    kind: Literal["ticket", "concession"]
    sku: Sku
    qty: Qty
    price: Price  # unit price
    film: ShortText | None = None
    hall: IdStr | None = None
    showtime: Showtime | None = None
    description: ShortText | None = None
    category: Label | None = None
    """v1.2: what the rules group the item under (popcorn, drinks; adult, child)."""
    format: Label | None = None
    """v1.2: a ticket's format (2d, 3d, imax, premium)."""
    genre: Label | None = None
    """v1.2: a ticket's genre, when the till knows it."""

    @model_validator(mode="after")
    def _fields_for_kind(self) -> SaleItem:
        if self.kind == "ticket":
            missing = [name for name in ("film", "hall", "showtime") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a ticket needs {', '.join(missing)}")
        elif self.description is None:
            raise ValueError("a concession needs a description")
        return self


HoldIdStr = Annotated[str, StringConstraints(pattern=r"^h[0-9a-f]{16}$")]
Cashier = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=PRINTABLE)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
SaleId = Annotated[str, StringConstraints(pattern=SALE_ID_PATTERN)]
Items = Annotated[list[SaleItem], Field(min_length=1, max_length=200)]
Points = Annotated[int, Field(strict=True, ge=1, le=10**9)]


class SaleRequest(_Message):
    """What the till sends when a sale is about to complete; prices are unit prices in minor units.

    `hold_id` (v1.1): the sale completes a redemption the box authorised; recording it captures the hold.
    """

    type: Literal["sale"] = "sale"
    sale_id: SaleId
    till: IdStr
    cashier: Cashier
    currency: Currency
    items: Items
    hold_id: HoldIdStr | None = None
    fraud: bool | None = None
    """v1.3: true, the till shows what the fraud rules decided (`fraud` in the answer, status held/withheld)."""
    benefits: bool | None = None
    """v1.2: present, the till prints what the rules gave (earned by rule, tier, passes, birthday ticket);
    true, it also applies the money off the answer gives (pass, birthday ticket, member discount)."""
    feedback: bool | None = None
    """v1.4: true, the till prints the feedback link of a sale with tickets (`feedback` in the answer)."""

    @property
    def total(self) -> int:
        """Sum of qty * price over the items, in minor units."""
        return sum(item.qty * item.price for item in self.items)


class RedeemRequest(_Message):
    """v1.1: the till asks to pay part of a sale with points (`points`, or the money `amount`) before it
    completes; the box holds them and answers with an `Authorisation`."""

    type: Literal["redeem"] = "redeem"
    sale_id: SaleId
    till: IdStr
    cashier: Cashier
    currency: Currency
    items: Items
    points: Points | None = None
    amount: Annotated[int, Field(strict=True, ge=1, le=10**9)] | None = None
    fraud: bool | None = None
    """v1.3: as in a sale request."""

    @model_validator(mode="after")
    def _points_or_amount(self) -> RedeemRequest:
        if (self.points is None) == (self.amount is None):
            raise ValueError("give points or amount, one of them")
        return self


class CancelRequest(_Message):
    """v1.1: the till will not complete the sale: the box releases its hold."""

    type: Literal["cancel"] = "cancel"
    sale_id: SaleId
    till: IdStr
    hold_id: HoldIdStr


PosRequest = SaleRequest | RedeemRequest | CancelRequest


class EarnedLine(_Message):
    """v1.2: points one rule gave (an earning rule, `tier:<id>`, `daypart:<id>`, `campaign:<id>`)."""

    rule: str
    points: int


class BenefitLine(_Message):
    """v1.2: money off one line of the sale (0-based; null: summed over several lines), and why."""

    line: int | None
    amount: int
    reason: Literal["pass", "birthday", "member"]


class TierLine(_Message):
    """v1.2: the member's tier and what it lets the till offer."""

    id: str
    name: str
    free_upgrade: bool = False
    early_booking: bool = False


class PassLine(_Message):
    """v1.2: a subscription pass the member holds, after this sale."""

    id: str
    name: str
    left_this_week: int
    left_today: int
    valid_to: str


class Loyalty(_Message):
    """The loyalty part of an answer: points earned by this sale and the balance after it; `redeemed` (v1.1,
    only for a sale that captured a hold) the points it was paid with; the rest (v1.2, only for a request
    with `benefits`) what the till prints."""

    status: Literal["earned", "no_card", "unavailable", "blocked", "held", "withheld"]
    """held, withheld (v1.3, only to a till that asked for `fraud`): the fraud rules held the loyalty part for a
    supervisor, or declined it; to other tills such a sale reads `unavailable`."""
    points: int = 0
    balance: int | None = None
    redeemed: int | None = None
    earned_by: list[EarnedLine] | None = None
    discount: int | None = None
    redeemed_amount: int | None = None
    to_pay: int | None = None
    benefits: list[BenefitLine] | None = None
    tier: TierLine | None = None
    passes: list[PassLine] | None = None
    birthday_reward: Literal["available", "used"] | None = None
    capped: Annotated[str, StringConstraints(max_length=200)] | None = None


OPTIONAL_LOYALTY = frozenset({"redeemed", "earned_by", "discount", "redeemed_amount", "to_pay", "benefits", "tier",
                              "passes", "birthday_reward", "capped"})
"""Answer fields a till gets only when its request speaks the version that brought them."""


def mask_card_id(card_id: str) -> str:
    """The id with all but its last 4 characters replaced by `*` (fully masked when 4 or shorter)."""
    if len(card_id) <= 4:
        return "*" * len(card_id)
    return "*" * (len(card_id) - 4) + card_id[-4:]


# Masked on the way in: no code path can put a full card id on the POS line (or its logs).
MaskedCard = Annotated[str, AfterValidator(mask_card_id)]


class FraudLine(_Message):
    """v1.3: what the fraud rules decided: `flag` (loyalty as usual, HQ alerted), `hold` (the loyalty part waits
    for a supervisor), `decline` (no loyalty part); the reason codes and the sentence to show."""

    action: Literal["flag", "hold", "decline"]
    reasons: list[str]
    message: Annotated[str, StringConstraints(max_length=200)]


class Authorisation(_Message):
    """v1.1: the box's answer to a redeem request. `authorised`: `points` are held for `expires_in_s`
    seconds and pay `amount` of the sale; `declined`: nothing held, `message` says why."""

    type: Literal["authorisation"] = "authorisation"
    sale_id: Annotated[str, StringConstraints(max_length=64)] | None
    status: Literal["authorised", "declined", "rejected", "error"]
    hold_id: HoldIdStr | None = None
    points: int = 0
    amount: int = 0
    balance: int | None = None
    expires_in_s: int | None = None
    card: MaskedCard | None = None
    message: Annotated[str, StringConstraints(max_length=200)] | None = None
    fraud: FraudLine | None = None
    """v1.3: why the fraud rules declined or held it (only to a till that asked for `fraud`)."""


class Released(_Message):
    """v1.1: the box's answer to a cancel: `released` (the points are free again) or `unknown` (no open hold
    of that id for this sale: already captured, released or expired)."""

    type: Literal["released"] = "released"
    sale_id: str
    hold_id: str
    status: Literal["released", "unknown"]


class FeedbackLine(_Message):
    """v1.4: the ticket's feedback code and the link to print as a QR code (`protocol.feedback`)."""

    code: Annotated[str, StringConstraints(min_length=16, max_length=16)]
    url: Annotated[str, StringConstraints(max_length=300)]


class SaleAnswer(_Message):
    """What the box answers to a sale; `card` is always masked."""

    type: Literal["answer"] = "answer"
    sale_id: Annotated[str, StringConstraints(max_length=64)] | None  # None: the request had no usable id
    # ok: decided; rejected: unusable request; conflict: sale_id already used for another sale;
    # error: the box could not decide (sell without loyalty).
    status: Literal["ok", "rejected", "conflict", "error"]
    loyalty: Loyalty | None = None
    card: MaskedCard | None = None
    message: Annotated[str, StringConstraints(max_length=200)] | None = None
    fraud: FraudLine | None = None
    """v1.3: what the fraud rules decided, when one fired (only to a till that asked for `fraud`)."""
    feedback: FeedbackLine | None = None
    """v1.4: the ticket's feedback link (only to a till that asked for `feedback`, for a sale with tickets, when
    the chain's rules give a feedback address)."""
