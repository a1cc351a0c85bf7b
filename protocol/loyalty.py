"""Loyalty semantics the box applies and the hub re-checks. Pure and deterministic.

Points are money-like: one point is worth one minor unit of the sale's currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from protocol.events import LineItem, LoyaltyOutcome


class EarningRule(BaseModel):
    """Points earned = `ticket_basis_points` / 10,000 of the ticket lines' amount, rounded down."""

    model_config = ConfigDict(frozen=True)

    rule_id: Annotated[str, Field(min_length=1, max_length=64)] = "earn-tickets"
    ticket_basis_points: Annotated[int, Field(ge=0, le=10_000)] = 1_000

    def points_for(self, items: Sequence[LineItem]) -> int:
        """Points the ticket lines of a sale earn."""
        tickets = sum(item.amount for item in items if item.kind == "ticket")
        return tickets * self.ticket_basis_points // 10_000


def decide_loyalty(
    rule: EarningRule, items: Sequence[LineItem], *, has_card: bool, balance_before: int
) -> LoyaltyOutcome:
    """The loyalty outcome of a sale given the member's balance before it."""
    if not has_card:
        return LoyaltyOutcome(status="no_card", rule_id=rule.rule_id)
    points = rule.points_for(items)
    return LoyaltyOutcome(
        status="earned", points_earned=points, balance=balance_before + points, rule_id=rule.rule_id
    )
