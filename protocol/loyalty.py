"""Between a sale's decision and the member's account: the outcome a sale records, and the move an event
makes on an account. Pure; the box and the hub derive moves with the same functions, so both fold the same.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from protocol.staff import HoldDecided, SaleRefunded


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
    and, apart, points redeemed. None for a sale without a card or with a blocked one; only the points
    redeemed for a sale whose earning part the fraud rules held or withheld."""
    loyalty = sale.loyalty
    if sale.card_token is None:
        return []
    if loyalty.status in ("held", "withheld"):
        # The fraud rules kept the earning part back; a pass bought is the member's (it was paid for), and
        # points the till already took (a hold captured) are spent.
        kept = [Move(at=at, kind="earn", points=0, passes_bought=tuple(loyalty.passes_bought), order=order)] \
            if loyalty.passes_bought else []
        if loyalty.points_redeemed:
            kept.append(Move(at=at, kind="redeem", points=-loyalty.points_redeemed, order=order))
        return kept
    if loyalty.status != "earned":
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


@dataclass(frozen=True, slots=True)
class RefundPoints:
    """What one refund does to the points of the sale it refunds."""

    points_reversed: int
    """Earned points taken back."""
    points_returned: int
    """Redeemed points given back."""
    spend_reversed: int


def refund_points(sale: SaleRecorded, amount: int, *, before: RefundPoints | None = None,
                  refunded_before: int = 0, approval: HoldDecided | None = None) -> RefundPoints:
    """The points a refund of `amount` (money) of `sale` takes back and gives back, pro rata of the sale's
    total, counted over every refund of the sale so far (`refunded_before` money, `before` points) so that
    refunding in many small parts takes back exactly what one refund of the sum would: earned points rounded
    up (a refund never leaves a point of what it paid for), redeemed points rounded down.

    A sale the fraud rules held earned nothing, unless a supervisor approved it (`approval`): then what the
    approval credited (points and spend) is what the refund takes back."""
    loyalty = sale.loyalty
    before = before or RefundPoints(0, 0, 0)
    if sale.total <= 0:
        return RefundPoints(0, 0, 0)
    done = min(sale.total, refunded_before + amount)
    # Earned points and spend go back pro rata of the money they were for: the whole sale, or for an approved held
    # sale the money it still had when the supervisor decided (refunds before that released nothing).
    base, counted = sale.total, done
    if loyalty.status == "earned":
        earned = loyalty.points_earned
        spend = loyalty.spend if loyalty.spend is not None else max(0, sale.total - loyalty.amount_redeemed)
    elif loyalty.status == "held" and approval is not None and approval.approved:
        earned, spend = approval.points, approval.spend
        base = approval.kept if approval.kept is not None else sale.total
        counted = max(0, done - (sale.total - base))
    else:
        earned = spend = 0
    reversed_total = -(-earned * counted // base) if base > 0 else 0
    returned_total = loyalty.points_redeemed * done // sale.total
    spend_total = spend * counted // base if base > 0 else 0
    return RefundPoints(max(0, reversed_total - before.points_reversed),
                        max(0, returned_total - before.points_returned),
                        max(0, spend_total - before.spend_reversed))


def refund_move(refund: SaleRefunded, at: datetime, order: tuple[str, int]) -> Move | None:
    """What a refund did to its card's account (None: nothing, or no card)."""
    if refund.card_token is None or not (refund.points_reversed or refund.points_returned or refund.spend_reversed):
        return None
    return Move(at=at, kind="refund", points=refund.points_returned - refund.points_reversed,
                spend=-refund.spend_reversed, order=order)


def approval_move(decision: HoldDecided, at: datetime, order: tuple[str, int]) -> Move | None:
    """The points a supervisor released, counted as the held sale would have been (None: they refused)."""
    if not decision.approved:
        return None
    return Move(at=at, kind="approval", points=decision.points, spend=decision.spend, visit=decision.visit,
                earning_sale=decision.points > 0, order=order)
