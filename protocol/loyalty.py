"""Loyalty semantics the box applies and the hub re-checks. Pure and deterministic.

Points are money-like: one point is worth one minor unit of the sale's currency unless the bundle's
redemption says otherwise. The rules come from the signed bundle (protocol/rules.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.events import LineItem, LoyaltyOutcome
from protocol.rules import RuleBundle, points_earned


def decide_loyalty(
    bundle: RuleBundle, items: Sequence[LineItem], *, has_card: bool, balance_before: int
) -> LoyaltyOutcome:
    """The loyalty outcome of a sale under `bundle`, given the member's balance before it."""
    if not has_card:
        return LoyaltyOutcome(status="no_card", rules_version=bundle.version)
    points, rule_ids = points_earned(bundle, items)
    return LoyaltyOutcome(
        status="earned", points_earned=points, balance=balance_before + points,
        rule_id=",".join(rule_ids)[:200] or None, rules_version=bundle.version,
    )
