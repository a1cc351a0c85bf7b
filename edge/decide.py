"""Every loyalty decision of the box, from the state it is given; no I/O, no clock.

The agent hands it protocol types (the running bundle, the member as the directory and the journal
see them, the sale, a hold) and records what it returns. This module never imports devices, store or
sync (an import-linter contract). Fraud decisions join here later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from protocol.events import LineItem, LoyaltyOutcome, SaleRecorded
from protocol.redemption import RedemptionPlan, eligible_amount, plan_redemption, split_over_lines
from protocol.rules import RuleBundle, points_earned

MemberStatus = Literal["active", "anonymous", "blocked", "unknown"]


@dataclass(frozen=True, slots=True)
class MemberState:
    """A card's holder as this box sees them now.

    `balance`: the directory's balance plus this box's events above its watermark (holds not deducted);
    `held`: points in this member's open holds; `unconfirmed_today`: points redeemed today at this box
    that the directory does not include yet, holds included (what the offline cap counts).
    """

    token: str
    member_id: str | None
    status: MemberStatus
    balance: int
    held: int = 0
    unconfirmed_today: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class Capture:
    """An open hold the till's sale confirms: its points and the money they were to pay."""

    hold_id: str
    points: int
    amount: int


def authorise(rules: RuleBundle, items: Sequence[LineItem], member: MemberState | None, *,
              points: int | None = None, amount: int | None = None, currency: str | None = None) -> RedemptionPlan:
    """Whether, and how much of, the sale points may pay: against the balance less holds and the offline cap."""
    if currency is not None and currency != rules.currency:
        return RedemptionPlan(0, 0, f"points pay in {rules.currency}, not {currency}")
    if member is None:
        return RedemptionPlan(0, 0, "no member card presented at this till")
    if member.status == "blocked":
        return RedemptionPlan(0, 0, "this card is blocked")
    cap = rules.redemption.offline_daily_cap
    cap_left = cap - member.unconfirmed_today if cap else None
    return plan_redemption(rules, items, points=points, amount=amount, available=member.available, cap_left=cap_left)


def capture_of(rules: RuleBundle, items: Sequence[LineItem], hold: Capture) -> Capture:
    """What a hold pays of the final sale: all of it, or only what the sale's eligible lines still cost."""
    rate = rules.redemption.points_per_unit
    amount = min(hold.amount, eligible_amount(rules, items))
    return Capture(hold.hold_id, min(hold.points, amount * rate), amount)


def decide_sale(
    *,
    rules: RuleBundle,
    site_id: str,
    till_id: str,
    cashier_id: str,
    sale_id: str,
    currency: str,
    items: Sequence[LineItem],
    member: MemberState | None,
    capture: Capture | None = None,
) -> SaleRecorded:
    """The sale as it will be recorded, with its loyalty outcome: points earned on what was not paid with
    points, points redeemed (a captured hold), and the balance after."""
    token = member.token if member is not None else None
    if member is None:
        outcome = LoyaltyOutcome(status="no_card", rules_version=rules.version)
    elif member.status == "blocked":
        outcome = LoyaltyOutcome(status="blocked", rules_version=rules.version)
    else:
        paid = split_over_lines(rules, items, capture.amount) if capture is not None else []
        earned, rule_ids = points_earned(rules, items, paid)
        redeemed = capture.points if capture is not None else 0
        outcome = LoyaltyOutcome(
            status="earned", points_earned=earned, points_redeemed=redeemed,
            amount_redeemed=capture.amount if capture is not None else 0,
            hold_id=capture.hold_id if capture is not None else None,
            balance=member.balance - redeemed + earned,
            rule_id=",".join(rule_ids)[:200] or None, rules_version=rules.version,
        )
    return SaleRecorded(
        site_id=site_id, till_id=till_id, cashier_id=cashier_id, sale_id=sale_id, currency=currency,
        items=list(items), total=sum(item.amount for item in items), card_token=token, loyalty=outcome,
    )
