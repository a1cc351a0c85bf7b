"""Paying with points: how much of a sale points may pay, and how the payment splits over its lines.

Pure: the box authorises with it, the hub re-checks with it. Points pay for the lines whose kind the
bundle's redemption allows, first line first; the part of a line paid with points earns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.events import LineItem
from protocol.rules import RuleBundle


@dataclass(frozen=True, slots=True)
class RedemptionPlan:
    """An authorisation's figures, or why there is none (`points` 0 and `reason`)."""

    points: int
    amount: int
    """Money (minor units) the points pay."""
    reason: str | None = None
    partial: bool = False
    """Less than asked (the balance, the cap or whole items allowed only this much)."""

    @property
    def approved(self) -> bool:
        return self.points > 0


def eligible_amount(bundle: RuleBundle, items: Sequence[LineItem]) -> int:
    """The part of the sale points may pay for."""
    return sum(item.amount for item in items if item.kind in bundle.redemption.kinds)


def _whole_units(bundle: RuleBundle, items: Sequence[LineItem], amount: int) -> int:
    """The most, up to `amount`, that whole units of eligible items add up to (dearest first)."""
    prices = sorted((item.unit_price for item in items if item.kind in bundle.redemption.kinds
                     for _ in range(item.quantity)), reverse=True)
    total = 0
    for price in prices:
        if total + price <= amount:
            total += price
    return total


def plan_redemption(
    bundle: RuleBundle,
    items: Sequence[LineItem],
    *,
    points: int | None = None,
    amount: int | None = None,
    available: int,
    cap_left: int | None,
) -> RedemptionPlan:
    """What may be redeemed for `items` when the till asks for `points` or for `amount` (money).

    `available`: the member's balance less points already held; `cap_left`: what the box may still redeem
    for this member today beyond what the hub confirmed (None: no cap).
    """
    rules = bundle.redemption
    if not rules.enabled:
        return RedemptionPlan(0, 0, "points cannot pay for anything under the running rules")
    rate = rules.points_per_unit
    eligible = eligible_amount(bundle, items)
    if eligible == 0:
        return RedemptionPlan(0, 0, "nothing in this sale can be paid with points")
    wanted = amount if amount is not None else (points or 0) // rate
    if wanted <= 0:
        return RedemptionPlan(0, 0, "ask for at least one unit of money's worth of points")
    limit = min(wanted, eligible, max(0, available) // rate)
    if cap_left is not None:
        limit = min(limit, max(0, cap_left) // rate)
    if not rules.partial:
        limit = _whole_units(bundle, items, limit)
    if limit <= 0:
        why = ("the balance is too low" if available < rate else
               "today's offline redemption limit for this member is reached" if cap_left is not None
               and cap_left < rate else "points pay only for whole items here, and none fits")
        return RedemptionPlan(0, 0, why)
    if limit * rate < rules.min_points:
        return RedemptionPlan(0, 0, f"the smallest redemption is {rules.min_points} points")
    return RedemptionPlan(limit * rate, limit, partial=limit < min(wanted, eligible) or limit < wanted)


def split_over_lines(bundle: RuleBundle, items: Sequence[LineItem], amount: int) -> list[int]:
    """The part of each line `amount` of points-money pays: eligible lines first to last."""
    paid = []
    left = amount
    for item in items:
        share = min(left, item.amount) if item.kind in bundle.redemption.kinds else 0
        paid.append(share)
        left -= share
    return paid
