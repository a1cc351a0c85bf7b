"""Between a sale's decision and the member's account: the outcome a sale records, and the move an event
makes on an account. Pure; the box and the hub derive moves with the same functions, so both fold the same.
"""

from __future__ import annotations

from datetime import datetime

from protocol.account import Move
from protocol.events import (
    BenefitLine,
    EarnedPart,
    LoyaltyOutcome,
    PassUse,
    RedemptionReversed,
    SaleRecorded,
)
from protocol.pricing import SaleDecision


def earned_outcome(decision: SaleDecision, *, rules_version: int, programme: str | None, redeemed: int = 0,
                   amount_redeemed: int = 0, hold_id: str | None = None,
                   benefits_asked: bool | None = None) -> LoyaltyOutcome:
    """The outcome of a sale with a member card that earns and pays: the decision's figures, the points a
    captured hold paid, and the balance after."""
    return LoyaltyOutcome(
        status="earned", points_earned=decision.points, points_redeemed=redeemed, amount_redeemed=amount_redeemed,
        hold_id=hold_id, balance=decision.account.balance - redeemed + decision.points,
        rule_id=",".join(dict.fromkeys(part.rule for part in decision.earned_by))[:200] or None,
        rules_version=rules_version,
        earned_by=[EarnedPart(rule=part.rule, points=part.points, sponsor=part.sponsor) for part in decision.earned_by],
        benefits=[BenefitLine(line=benefit.line, amount=benefit.amount, reason=benefit.reason)
                  for benefit in decision.benefits],
        discount=decision.discount, spend=decision.spend, visit=decision.visit,
        pass_uses=[PassUse(pass_id=pass_id, uses=uses) for pass_id, uses in decision.pass_uses],
        passes_bought=list(decision.passes_bought), birthday_year=decision.birthday_year,
        tier=decision.tier.tier_id if decision.tier is not None else None, programme=programme,
        capped=decision.capped, benefits_asked=benefits_asked,
    )


def sale_moves(sale: SaleRecorded, at: datetime, order: tuple[str, int]) -> list[Move]:
    """What a recorded sale did to its card's account: points earned (with spend, visit, passes, birthday)
    and, apart, points redeemed. None for a sale without a card or with a blocked one."""
    loyalty = sale.loyalty
    if sale.card_token is None or loyalty.status != "earned":
        return []
    spend = loyalty.spend if loyalty.spend is not None else max(0, sale.total - loyalty.amount_redeemed)
    visit = loyalty.visit if loyalty.visit is not None else any(item.kind == "ticket" for item in sale.items)
    moves = [Move(at=at, kind="earn", points=loyalty.points_earned, spend=spend, visit=visit,
                  earning_sale=loyalty.points_earned > 0,
                  pass_uses=tuple((use.pass_id, use.uses) for use in loyalty.pass_uses),
                  passes_bought=tuple(loyalty.passes_bought), birthday_year=loyalty.birthday_year, order=order)]
    if loyalty.points_redeemed:
        moves.append(Move(at=at, kind="redeem", points=-loyalty.points_redeemed, order=order))
    return moves


def reversal_move(reversal: RedemptionReversed, at: datetime, order: tuple[str, int]) -> Move:
    """Points a late capture gave back."""
    return Move(at=at, kind="reversal", points=reversal.points, order=order)
