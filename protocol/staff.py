"""Staff: who may work a till, and every staff action as an event in the box's hash-chained journal.

HQ keeps the staff accounts and sends them to the boxes in the member directory (`StaffEntry`, in
`protocol.directory.DirectoryPage.staff`). A staff member's `staff_id` is the cashier code their tills send
(`cashier` in the POS protocol). Their badges are the cards they sign in and approve with; `member_id` is
their own loyalty membership, whose cards the fraud rules watch on the sales they ring up.

Each event below happens at a till (docs/pos-protocol.md section 10) and is journaled before the till is
answered, so the record of what staff did cannot be edited unnoticed (the chain, `protocol.chain`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.fields import Id, MinorUnits, Payload, Seq, Token, text
from protocol.fraud import FraudOutcome

STAFF_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
StaffId = Annotated[str, Field(pattern=STAFF_ID_PATTERN)]
StaffRole = Literal["cashier", "supervisor", "manager"]
APPROVERS: tuple[StaffRole, ...] = ("supervisor", "manager")
"""Roles whose badge approves a transaction the fraud rules held."""
Label = Annotated[str, text(64, 1)]
SaleId = Annotated[str, text(64, 1)]


class StaffEntry(BaseModel):
    """One staff account as boxes get it. No name, phone or e-mail: the id is the employee's cashier code."""

    model_config = ConfigDict(extra="allow", frozen=True)

    staff_id: StaffId
    role: StaffRole
    status: Literal["active", "suspended", "left"] = "active"
    """Only an active account signs in or approves."""
    sites: Annotated[list[Id], Field(max_length=500)] = Field(default_factory=list)
    """The sites they work at; empty: every site of the chain."""
    badges: Annotated[list[Token], Field(max_length=20)] = Field(default_factory=list)
    """Tokens of the cards they sign in and approve with."""
    member_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None
    """Their own loyalty membership, if they have one."""

    def works_at(self, site_id: str) -> bool:
        return self.status == "active" and (not self.sites or site_id in self.sites)


class _TillAction(Payload):
    site_id: Id
    till_id: Id


class StaffSignedIn(_TillAction):
    """A cashier signed in at a till: their shift there starts (and any other cashier's there ends first)."""

    event_type: ClassVar[str] = "staff.signed_in"

    staff_id: StaffId
    badge: bool = False
    """Their badge was read at the till just before (else the till's word only)."""
    known: bool = True
    """The directory knows them as active at this site (an unknown code is recorded, and flagged)."""


class StaffSignedOut(_TillAction):
    """A cashier's shift at a till ended: they signed out, or another signed in at the same till."""

    event_type: ClassVar[str] = "staff.signed_out"

    staff_id: StaffId
    reason: Literal["signed_out", "replaced"] = "signed_out"


class SaleRefunded(_TillAction):
    """A completed sale refunded in part (`refund`) or voided whole (`void`); the points it earned are taken
    back pro rata and the points it was paid with given back pro rata (`protocol.loyalty.refund_points`)."""

    event_type: ClassVar[str] = "sale.refunded"

    cashier_id: StaffId
    kind: Literal["refund", "void"]
    refund_id: SaleId
    """The till's id for this refund (a repeat of it changes nothing)."""
    sale_id: SaleId
    original_till_id: Id
    original_seq: Seq | None = None
    """The journal seq of the sale refunded; None when this box does not hold it (refunded on the till's
    word: nothing to take back)."""
    amount: MinorUnits
    """Money refunded."""
    card_token: Token | None = None
    points_reversed: Annotated[int, Field(ge=0, le=10**12)] = 0
    points_returned: Annotated[int, Field(ge=0, le=10**12)] = 0
    spend_reversed: MinorUnits = 0
    """The member's spend the refund takes back (what tiers count)."""
    fraud: FraudOutcome | None = None


class PriceOverride(_TillAction):
    """A cashier took money off a line by hand (a manual discount) or overrode a price."""

    event_type: ClassVar[str] = "till.override"

    cashier_id: StaffId
    kind: Literal["discount", "override"]
    sale_id: SaleId
    amount: MinorUnits
    """Money off."""
    reason: Label | None = None
    approved_by: StaffId | None = None
    fraud: FraudOutcome | None = None


class DrawerOpened(_TillAction):
    """The cash drawer opened without a sale (no-sale, change, a float count)."""

    event_type: ClassVar[str] = "till.drawer_opened"

    cashier_id: StaffId
    reason: Label | None = None


class HoldDecided(_TillAction):
    """A supervisor decided, with their badge at the till, on a sale whose loyalty part the fraud rules held:
    `approved` credits the held points (with the spend and visit the sale counts); else they are dropped."""

    event_type: ClassVar[str] = "fraud.decided"

    sale_id: SaleId
    sale_seq: Seq
    supervisor_id: StaffId
    approved: bool
    card_token: Token
    points: Annotated[int, Field(ge=0, le=10**12)] = 0
    spend: MinorUnits = 0
    visit: bool = False
    kept: MinorUnits | None = None
    """The sale's money not refunded when the supervisor decided: what `points` and `spend` are for (a later
    refund takes them back pro rata of it). None: the whole sale."""


PAYLOADS: dict[str, type[Payload]] = {
    cls.event_type: cls
    for cls in (StaffSignedIn, StaffSignedOut, SaleRefunded, PriceOverride, DrawerOpened, HoldDecided)
}
