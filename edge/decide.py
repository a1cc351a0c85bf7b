"""Every loyalty decision of the box, from the state it is given; no I/O, no clock.

The agent hands it protocol types (the running bundle, the member as the directory and the journal
see them, the sale, a hold) and records what it returns. This module never imports devices, store or
sync (an import-linter contract). The fraud rules' verdict (`protocol.fraud_window`) is applied here to the
sale's loyalty part (`withhold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from protocol.account import Account, Move, fold
from protocol.calendar import local_day, month_key
from protocol.events import LineItem, LoyaltyOutcome, SaleRecorded
from protocol.fraud import FraudOutcome
from protocol.loyalty import earned_outcome
from protocol.pricing import SaleDecision, price_sale
from protocol.redemption import RedemptionPlan, plan_redemption
from protocol.rules import RuleBundle

MemberStatus = Literal["active", "anonymous", "blocked", "unknown"]


@dataclass(frozen=True, slots=True)
class MemberState:
    """A card's holder as this box sees them now.

    `balance`: the directory's balance plus this box's events above its watermark, time rules applied
    (holds not deducted); `account`: the same as the whole account (tier, lots, passes...); `held`: points
    in this member's open holds; `unconfirmed_today`: points redeemed today at this box that the directory
    does not include yet, holds included (what the offline cap counts).
    """

    token: str
    member_id: str | None
    status: MemberStatus
    balance: int
    held: int = 0
    unconfirmed_today: int = 0
    account: Account | None = None
    programme: str | None = None
    birthday: str | None = None

    @property
    def available(self) -> int:
        return self.balance - self.held


def seed_account(balance: int, at: datetime, tz: str) -> Account:
    """The account of a directory entry that carries a balance only: one lot of this month (or a debt)."""
    lots = {month_key(local_day(at, tz)): balance} if balance > 0 else {}
    return Account(lots=lots, debt=max(0, -balance))


def account_at_box(rules: RuleBundle, programme: str | None, start: Account | None, balance: int,
                   moves: Sequence[Move], now: datetime) -> Account:
    """The member's account at this box now: the directory's, this box's later moves folded on top, and
    every time rule due until `now` applied (as the hub will, so both agree once they meet)."""
    base = start if start is not None else seed_account(balance, now, rules.timezone)
    account, _ = fold(moves, rules.rules_for(programme), rules.timezone, start=base, until=now)
    return account


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


def price(rules: RuleBundle, items: Sequence[LineItem], member: MemberState, *, at: datetime, site_id: str,
          benefits: bool, capture: Capture | None) -> SaleDecision:
    """The sale's figures for a member who earns and pays (not blocked)."""
    account = member.account if member.account is not None else seed_account(member.balance, at, rules.timezone)
    return price_sale(rules, member.programme, account, items, at=at, site_id=site_id, birthday=member.birthday,
                      benefits=benefits, capture=(capture.points, capture.amount) if capture is not None else None)


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
    at: datetime,
    capture: Capture | None = None,
    benefits: bool = False,
) -> tuple[SaleRecorded, SaleDecision | None]:
    """The sale as it will be recorded, with its loyalty outcome: benefits the till applies (`benefits`),
    points earned on what was paid with money, points redeemed (a captured hold), and the balance after;
    and the decision behind it (None without a member who earns)."""
    token = member.token if member is not None else None
    decision = None
    if member is None:
        outcome = LoyaltyOutcome(status="no_card", rules_version=rules.version)
    elif member.status == "blocked":
        outcome = LoyaltyOutcome(status="blocked", rules_version=rules.version)
    else:
        decision = price(rules, items, member, at=at, site_id=site_id, benefits=benefits, capture=capture)
        redeemed = decision.redeemed_points
        outcome = earned_outcome(
            decision, rules_version=rules.version, programme=member.programme, redeemed=redeemed,
            amount_redeemed=decision.redeemed_amount,
            hold_id=capture.hold_id if capture is not None and redeemed else None, benefits_asked=benefits)
    sale = SaleRecorded(
        site_id=site_id, till_id=till_id, cashier_id=cashier_id, sale_id=sale_id, currency=currency,
        items=list(items), total=sum(item.amount for item in items), card_token=token, loyalty=outcome,
    )
    return sale, decision


def withhold(sale: SaleRecorded, outcome: FraudOutcome) -> SaleRecorded:
    """The sale with its loyalty part held for a supervisor (`hold`: the points wait, with the spend and visit
    they count) or declined (`decline`): nothing earned, no money off; points a captured hold paid stay paid.
    `points_held` keeps what the sale would have earned either way (what the fraud rules count)."""
    loyalty = sale.loyalty
    if loyalty.status != "earned":
        return sale.model_copy(update={"fraud": outcome})
    held = outcome.action == "hold"
    balance = loyalty.balance - loyalty.points_earned if loyalty.balance is not None else None
    kept = loyalty.model_copy(update={
        "status": "held" if held else "withheld", "points_earned": 0,
        "points_held": loyalty.points_earned, "balance": balance, "rule_id": None, "earned_by": [],
        "benefits": [], "discount": 0, "pass_uses": [], "birthday_year": None, "capped": None})
    return sale.model_copy(update={"loyalty": kept, "fraud": outcome})
