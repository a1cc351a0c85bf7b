"""POS line protocol v1.3: staff at the till (sign in and out, refund, void, override, drawer, a supervisor's
approval) and what the fraud rules decided. docs/pos-protocol.md section 10.

Each request is journaled before it is answered (`edge.staffdesk`); the answer is a `StaffAnswer`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from edge.devices.pos_messages import Currency, FraudLine, IdStr, Label, SaleId, _Message
from protocol.staff import STAFF_ID_PATTERN

Money = Annotated[int, Field(strict=True, ge=1, le=10**9)]
Cashier = Annotated[str, StringConstraints(pattern=STAFF_ID_PATTERN)]
"""A staff member's code: what their tills send as `cashier` and HQ registers them under."""


class SignInRequest(_Message):
    """A cashier starts working this till (a badge read at the till just before proves who they are)."""

    type: Literal["signin"] = "signin"
    till: IdStr
    cashier: Cashier


class SignOutRequest(_Message):
    """The cashier stops working this till."""

    type: Literal["signout"] = "signout"
    till: IdStr
    cashier: Cashier


class RefundRequest(_Message):
    """Money of a completed sale given back (`amount`, part or all): the points it earned are taken back pro rata."""

    type: Literal["refund"] = "refund"
    refund_id: SaleId
    till: IdStr
    cashier: Cashier
    sale_id: SaleId
    sale_till: IdStr | None = None
    """The till the sale was rung up at, when not this one."""
    currency: Currency
    amount: Money


class VoidRequest(_Message):
    """A completed sale cancelled whole (before the customer left): every point it earned is taken back."""

    type: Literal["void"] = "void"
    till: IdStr
    cashier: Cashier
    sale_id: SaleId
    sale_till: IdStr | None = None


class OverrideRequest(_Message):
    """The cashier took money off by hand (`discount`) or overrode a price (`override`) on a sale."""

    type: Literal["override"] = "override"
    till: IdStr
    cashier: Cashier
    sale_id: SaleId
    kind: Literal["discount", "override"] = "discount"
    amount: Money
    reason: Label | None = None


class DrawerRequest(_Message):
    """The cash drawer opened without a sale."""

    type: Literal["drawer"] = "drawer"
    till: IdStr
    cashier: Cashier
    reason: Label | None = None


class ApproveRequest(_Message):
    """A supervisor, whose badge was read at this till just before, decides on a sale whose loyalty part the
    fraud rules held: `approve` true credits the points, false drops them."""

    type: Literal["approve"] = "approve"
    till: IdStr
    cashier: Cashier
    sale_id: SaleId
    approve: bool = True


StaffRequest = SignInRequest | SignOutRequest | RefundRequest | VoidRequest | OverrideRequest | DrawerRequest | \
    ApproveRequest
STAFF_REQUESTS = (SignInRequest, SignOutRequest, RefundRequest, VoidRequest, OverrideRequest, DrawerRequest,
                  ApproveRequest)


class StaffAnswer(_Message):
    """The box's answer to a v1.3 staff request."""

    type: Literal["staff"] = "staff"
    request: Literal["signin", "signout", "refund", "void", "override", "drawer", "approve"]
    status: Literal["ok", "refused", "error"]
    """ok: recorded (and done); refused: recorded as an attempt, not done (`message` says why); error: the box
    could not record it (the till goes on; nothing changed)."""
    sale_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    points_reversed: int | None = None
    points_returned: int | None = None
    points: int | None = None
    """approve: the points credited."""
    balance: int | None = None
    fraud: FraudLine | None = None
    message: Annotated[str, StringConstraints(max_length=200)] | None = None
