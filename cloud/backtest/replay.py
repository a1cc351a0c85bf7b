"""The backtest's core: a period's card sales, in time order, priced again under a proposed bundle beside what
was recorded. No I/O: `cloud.backtest.store` reads, this adds up.

Each member met gets two accounts, both started at the period's start from the fold of their moves before
it (the moves recorded at the tills, `protocol.loyalty.sale_moves`): the baseline under the bundle that ran
then, the proposed under the proposed bundle (its expiry, tiers and bonuses may leave another balance). In
the period, the baseline account folds the recorded moves; the proposed one folds the moves of the proposed
decision (`protocol.pricing.price_sale`, then `earned_outcome` and `sale_moves`), so a bonus earned early in
the period can pay a redemption later in it, and a tier reached earlier earns its bonus. A recorded
redemption the proposed account could not pay (or that the proposed redemption rules refuse) is declined:
the sale is priced without it. The period is [start, end): the accounts end just before `end`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloud.backtest.figures import Figures, Scope, TimeRules
from protocol.account import Account, Move, advance, fold
from protocol.events import LoyaltyOutcome, RedemptionReversed, SaleRecorded
from protocol.loyalty import earned_outcome, reversal_move, sale_moves
from protocol.pricing import SaleDecision, price_sale
from protocol.programme import ProgrammeRules
from protocol.rules import RuleBundle

JUST_BEFORE = timedelta(microseconds=1)
CAMPAIGN = "campaign:"


@dataclass(frozen=True, slots=True)
class Member:
    """Who holds a card, as far as the rules care: the programme and the birthday (MM-DD)."""

    member_id: str
    programme: str = "default"
    birthday: str | None = None


@dataclass(frozen=True, slots=True)
class StoredSale:
    """A stored `sale.recorded` event, its payload parsed."""

    device_id: str
    seq: int
    occurred_at: datetime
    site_id: str
    sale: SaleRecorded


@dataclass(frozen=True, slots=True)
class StoredReversal:
    """A stored `redemption.reversed` event: points a late capture gave back."""

    device_id: str
    seq: int
    occurred_at: datetime
    reversal: RedemptionReversed


@dataclass(slots=True)
class _Books:
    member: Member
    baseline: Account
    proposed: Account
    sites: set[str] = field(default_factory=set)


class Replay:
    """Feed it members (`open`, with their moves before the period) and events in time order (`sale`,
    `reversal`, `settle` now and then); `result` closes the accounts at the period's end and gives the figures."""

    def __init__(self, *, baseline: RuleBundle, proposed: RuleBundle, start: datetime, end: datetime) -> None:
        self.baseline, self.proposed = baseline, proposed
        self.start, self.end = start, end
        self.chain = Scope()
        self.sites: dict[str, Scope] = {}
        self.time_rules = (TimeRules(), TimeRules())
        self._books: dict[str, _Books] = {}
        self._redeemed: dict[tuple[str, int], int] = {}
        """Per sale of the period recorded paying with points: the points it paid in the replay."""
        self.history_moves = 0
        self._pending: dict[str, list[Move]] = {}
        """Recorded moves not yet folded into the baseline accounts (`settle` folds them, a member at a time)."""

    def __contains__(self, member_id: str) -> bool:
        return member_id in self._books

    def open(self, member: Member, history: Iterable[Move]) -> None:
        """Start a member's two accounts at the period's start from their moves before it."""
        moves = list(history)
        self.history_moves += len(moves)
        before = self.start - JUST_BEFORE
        baseline, _ = fold(moves, self._rules(self.baseline, member), self.baseline.timezone, until=before)
        proposed, _ = fold(moves, self._rules(self.proposed, member), self.proposed.timezone, until=before)
        self._books[member.member_id] = _Books(member, baseline, proposed)

    def sale(self, stored: StoredSale, member_id: str) -> None:
        """Replay one card sale of the period (its member opened first)."""
        books = self._books[member_id]
        books.sites.add(stored.site_id)
        scopes = (self.chain, self.sites.setdefault(stored.site_id, Scope()))
        order = (stored.device_id, stored.seq)
        loyalty = stored.sale.loyalty
        self._pending.setdefault(member_id, []).extend(sale_moves(stored.sale, stored.occurred_at, order))
        decision, declined = self._propose(books, stored)
        if loyalty.points_redeemed:  # what a reversal of this sale may give back in the replay (0: declined)
            self._redeemed[order] = decision.redeemed_points
        for scope in scopes:
            scope.sales += 1
            _recorded(scope.baseline, loyalty)
            _decided(scope.proposed, decision, declined)

    def reversal(self, stored: StoredReversal, member_id: str) -> None:
        """Points a late capture gave back: as recorded in the baseline; in the replay, what the replayed
        sale paid (nothing when its redemption was declined), or as recorded for a sale before the period."""
        books = self._books[member_id]
        reversal = stored.reversal
        order = (stored.device_id, stored.seq)
        self._pending.setdefault(member_id, []).append(reversal_move(reversal, stored.occurred_at, order))
        paid = self._redeemed.get((stored.device_id, reversal.sale_seq), reversal.points)
        points = min(reversal.points, paid)
        if points:
            move = reversal_move(reversal.model_copy(update={"points": points}), stored.occurred_at, order)
            books.proposed, effects = fold([move], self._rules(self.proposed, books.member), self.proposed.timezone,
                                           start=books.proposed)
            self.time_rules[1].add(effects)

    def result(self) -> dict[str, Any]:
        """Close every account just before the period's end, compare tiers, and give the figures as JSON."""
        self.settle()
        last = self.end - JUST_BEFORE
        for books in self._books.values():
            baseline_rules, proposed_rules = self._rules(self.baseline, books.member), self._rules(
                self.proposed, books.member)
            books.baseline, effects = advance(books.baseline, baseline_rules, last, self.baseline.timezone)
            self.time_rules[0].add(effects)
            books.proposed, effects = advance(books.proposed, proposed_rules, last, self.proposed.timezone)
            self.time_rules[1].add(effects)
            if not books.sites:
                continue
            tiers = _position(baseline_rules, books.baseline.tier), _position(proposed_rules, books.proposed.tier)
            for scope in (self.chain, *(self.sites[site] for site in books.sites)):
                scope.tiers.count(*tiers)
        rates = self.baseline.redemption.points_per_unit, self.proposed.redemption.points_per_unit
        baseline_time, proposed_time = (side.as_json() for side in self.time_rules)
        return {
            "baseline_version": self.baseline.version,
            "members": len(self._books),
            "history_moves": self.history_moves,
            "chain": {**self.chain.as_json(*rates), "time_rules": {
                "baseline": baseline_time, "proposed": proposed_time,
                "difference": {name: proposed_time[name] - baseline_time[name] for name in baseline_time}}},
            "sites": {site: scope.as_json(*rates) for site, scope in sorted(self.sites.items())},
        }

    def settle(self) -> None:
        """Fold the recorded moves fed so far into the baseline accounts (the recorded figures need no
        account: once a page is enough)."""
        for member_id, moves in self._pending.items():
            books = self._books[member_id]
            books.baseline, effects = fold(moves, self._rules(self.baseline, books.member), self.baseline.timezone,
                                           start=books.baseline)
            self.time_rules[0].add(effects)
        self._pending.clear()

    def _propose(self, books: _Books, stored: StoredSale) -> tuple[SaleDecision, bool]:
        bundle, member, loyalty = self.proposed, books.member, stored.sale.loyalty
        rules = self._rules(bundle, member)
        account, effects = advance(books.proposed, rules, stored.occurred_at, bundle.timezone)
        self.time_rules[1].add(effects)
        # Money off wherever the till asked for it (it applies it); a sale recorded before tills said so shows
        # it by the benefits it recorded.
        asked = loyalty.benefits_asked
        benefits = asked if asked is not None else bool(loyalty.benefits) or loyalty.discount > 0

        def price(capture: tuple[int, int] | None) -> SaleDecision:
            return price_sale(bundle, member.programme, account, stored.sale.items, at=stored.occurred_at,
                              site_id=stored.site_id, birthday=member.birthday, benefits=benefits, capture=capture)

        wanted = (loyalty.points_redeemed, loyalty.amount_redeemed) if loyalty.points_redeemed else None
        redemption = bundle.redemption
        decision = price(wanted if redemption.enabled else None)
        paid = decision.redeemed_points
        declined = wanted is not None and (not paid or paid < redemption.min_points or paid > account.balance)
        if declined and paid:
            decision = price(None)
        outcome = earned_outcome(decision, rules_version=bundle.version, programme=member.programme,
                                 redeemed=decision.redeemed_points, amount_redeemed=decision.redeemed_amount)
        replayed = stored.sale.model_copy(update={"loyalty": outcome})
        books.proposed, _ = fold(sale_moves(replayed, stored.occurred_at, (stored.device_id, stored.seq)), rules,
                                 bundle.timezone, start=account)
        return decision, declined

    @staticmethod
    def _rules(bundle: RuleBundle, member: Member) -> ProgrammeRules:
        return bundle.rules_for(member.programme)


def _recorded(figures: Figures, loyalty: LoyaltyOutcome) -> None:
    figures.points_issued += loyalty.points_earned
    figures.discounts += loyalty.discount or sum(benefit.amount for benefit in loyalty.benefits)
    figures.points_redeemed += loyalty.points_redeemed
    figures.redemptions += loyalty.points_redeemed > 0
    for part in loyalty.earned_by:
        if part.sponsor is not None and part.rule.startswith(CAMPAIGN):
            figures.add_sponsor(part.sponsor, part.points)


def _decided(figures: Figures, decision: SaleDecision, declined: bool) -> None:
    figures.points_issued += decision.points
    figures.discounts += decision.discount
    figures.points_redeemed += decision.redeemed_points
    figures.redemptions += decision.redeemed_points > 0
    figures.redemptions_declined += declined
    for part in decision.earned_by:
        if part.sponsor is not None and part.rule.startswith(CAMPAIGN):
            figures.add_sponsor(part.sponsor, part.points)


def _position(rules: ProgrammeRules, tier_id: str | None) -> tuple[str | None, int]:
    """A tier's id and its place among the tiers (the lowest 0); (None, 0) without tiers."""
    level = rules.level(tier_id)
    if level is None or rules.tiers is None:
        return None, 0
    return level.tier_id, [each.tier_id for each in rules.tiers.levels].index(level.tier_id)
