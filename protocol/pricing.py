"""What one sale gives a member: benefits (pass, birthday ticket, member discount), points by rule, and what
the account counts. Pure: the box decides with it, the hub's backtest replays sales with it.

Order: a pass covers ticket units first (cheapest first: the dearer ones pay), then the birthday ticket
(the dearest ticket unit left), then the member discount on what is left of the lines of its kinds; points
pay next (a captured hold); points are earned on the money left. Each line earns under one earning rule:
base = net x basis_points / 10,000; the tier, the line's best day part and its campaign each add their
percent of the base; a campaign also pays `points_per_unit` per unit bought with money; each part is
rounded down per line. The daily caps then cut what is over, campaign bonuses first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from protocol.account import Account, PassState, advance
from protocol.calendar import birthday_week, birthday_year, local, local_day
from protocol.campaigns import day_parts_at, matches
from protocol.events import LineItem
from protocol.programme import Earning, ProgrammeRules, TierLevel
from protocol.rules import RuleBundle


@dataclass(frozen=True, slots=True)
class Benefit:
    """Money off one line, and why: "pass", "birthday" or "member" (the member discount)."""

    line: int
    amount: int
    reason: str


@dataclass(frozen=True, slots=True)
class EarnedBy:
    """Points one rule gave: an earning rule's id, `tier:<id>`, `daypart:<id>` or `campaign:<id>`."""

    rule: str
    points: int
    sponsor: str | None = None


@dataclass(frozen=True, slots=True)
class SaleDecision:
    points: int
    earned_by: tuple[EarnedBy, ...]
    benefits: tuple[Benefit, ...]
    paid_with_money: tuple[int, ...]
    """Per line, the money left to pay after benefits and points."""
    redeemed_points: int
    redeemed_amount: int
    """What a captured hold pays of this sale: at most its points and money, at most what the lines points
    may pay for still cost after the benefits (0 and 0: the hold ends unused)."""
    spend: int
    visit: bool
    pass_uses: tuple[tuple[str, int], ...]
    passes_bought: tuple[str, ...]
    birthday_year: int | None
    """Set when this sale used the birthday ticket: the year it was for."""
    birthday_available: bool
    """The birthday ticket is there for the taking (this week, not used this year, not used now)."""
    capped: str | None
    tier: TierLevel | None
    account: Account
    """The member's account brought to the sale's time (before the sale)."""

    @property
    def discount(self) -> int:
        return sum(benefit.amount for benefit in self.benefits)


def rule_for(rules: ProgrammeRules, item: LineItem) -> Earning | None:
    """The earning rule of a line: the first naming its SKU, else its category or format, else its kind's."""
    kind_rules = [rule for rule in rules.earning if rule.kind == item.kind]
    for rule in kind_rules:
        if item.sku in rule.skus:
            return rule
    for rule in kind_rules:
        if (item.category is not None and item.category in rule.categories) or (
                item.format is not None and item.format in rule.formats):
            return rule
    return next((rule for rule in kind_rules if not rule.named), None)


def spend_discount_bp(rules: ProgrammeRules, lifetime_spend: int) -> int:
    """The spend-based discount rate (basis points) at this lifetime spend."""
    if rules.discount is None:
        return 0
    rate = rules.discount.min_bp
    for step in rules.discount.steps:
        if lifetime_spend >= step.lifetime_spend:
            rate = max(rate, step.discount_bp)
    return min(rate, rules.discount.max_bp)


def _pass_cover(rules: ProgrammeRules, passes: Sequence[PassState], items: Sequence[LineItem], day: date,
                cover: list[int]) -> list[tuple[str, int]]:
    products = {product.pass_id: product for product in rules.passes}
    uses: list[tuple[str, int]] = []
    skus = {product.sku for product in rules.passes}  # a pass never pays for a pass
    units = sorted((item.unit_price, index) for index, item in enumerate(items)
                   if item.kind == "ticket" and item.sku not in skus for _ in range(item.quantity))
    for held in passes:
        product = products.get(held.pass_id)
        if product is None:
            continue
        left = held.left(day, product.films_per_week, product.per_day)
        used = 0
        for price, index in units:
            item = items[index]
            if used >= left:
                break
            if product.formats and (item.format or "").casefold() not in {fmt.casefold() for fmt in product.formats}:
                continue
            if product.max_ticket_price and price > product.max_ticket_price:
                continue
            if cover[index] + price > item.amount:
                continue
            cover[index] += price
            used += 1
        units = [(price, index) for price, index in units if cover[index] + price <= items[index].amount]
        if used:
            uses.append((held.pass_id, used))
    return uses


def price_sale(bundle: RuleBundle, programme: str | None, account: Account | None, items: Sequence[LineItem], *,
               at: datetime, site_id: str, birthday: str | None = None, benefits: bool = False,
               capture: tuple[int, int] | None = None) -> SaleDecision:
    """The sale's loyalty figures for a member of `programme` whose account is `account` (None: new).

    `benefits`: the till applies money off (a till that cannot gets points only); `capture`: the points and
    money of a hold this sale captures.
    """
    rules = bundle.rules_for(programme)
    tz = bundle.timezone
    day = local_day(at, tz)
    current, _ = advance(account or Account(), rules, at, tz)
    tier = rules.level(current.tier)
    cover = [0] * len(items)
    off: list[Benefit] = []
    uses: list[tuple[str, int]] = []
    used_birthday: int | None = None
    birthday_due = (rules.birthday is not None and birthday is not None and birthday_week(day, birthday)
                    and current.birthday_year != birthday_year(day, birthday))
    passes = {product.sku for product in rules.passes}  # a pass has its own price: no money off it, no visit
    if benefits:
        uses = _pass_cover(rules, current.passes, items, day, cover)
        off += [Benefit(index, cover[index], "pass") for index in range(len(items)) if cover[index]]
        if birthday_due and rules.birthday is not None and birthday is not None:
            units = [(item.unit_price, index) for index, item in enumerate(items) if item.kind == "ticket"
                     and item.sku not in passes and item.amount - cover[index] >= item.unit_price > 0]
            if units:
                price, index = max(units)
                amount = min(price, rules.birthday.max_amount or price)
                cover[index] += amount
                off.append(Benefit(index, amount, "birthday"))
                used_birthday = birthday_year(day, birthday)
        rate = max(tier.discount_bp if tier is not None else 0, spend_discount_bp(rules, current.lifetime_spend))
        if rules.discount is not None:
            rate = min(rate, rules.discount.max_bp)  # the most a member discount may be, whatever gives it
        kinds = rules.discount.kinds if rules.discount is not None else ("concession",)
        for index, item in enumerate(items):
            amount = (item.amount - cover[index]) * rate // 10_000 if item.kind in kinds and item.sku not in passes \
                else 0
            if amount:
                cover[index] += amount
                off.append(Benefit(index, amount, "member"))
    redeemed_points, redeemed_amount, paid = _capture(bundle, items, cover, capture)
    net = [item.amount - cover[index] - paid[index] for index, item in enumerate(items)]
    parts = _earn(bundle, rules, tier, items, net, at=at, site_id=site_id, programme=programme or "default")
    parts, capped = _capped(rules, current, day, parts)
    sold = {product.sku: product.pass_id for product in rules.passes}
    return SaleDecision(
        points=sum(part.points for part in parts), earned_by=tuple(parts), benefits=tuple(off),
        paid_with_money=tuple(net), redeemed_points=redeemed_points, redeemed_amount=redeemed_amount,
        spend=sum(net), visit=any(item.kind == "ticket" and item.sku not in passes for item in items),
        pass_uses=tuple(uses), passes_bought=tuple(sold[item.sku] for item in items if item.sku in sold
                                                    for _ in range(item.quantity)),
        birthday_year=used_birthday, birthday_available=birthday_due and used_birthday is None,
        capped=capped, tier=tier, account=current)


def _capture(bundle: RuleBundle, items: Sequence[LineItem], cover: Sequence[int],
             capture: tuple[int, int] | None) -> tuple[int, int, list[int]]:
    """(points, money, money per line) a hold pays: eligible lines first to last, after the benefits."""
    paid = [0] * len(items)
    if capture is None:
        return 0, 0, paid
    rate = bundle.redemption.points_per_unit
    left = [item.amount - cover[index] if item.kind in bundle.redemption.kinds else 0
            for index, item in enumerate(items)]
    amount = min(capture[1], sum(left), capture[0] // rate)
    points = min(capture[0], amount * rate)
    if not points:
        return 0, 0, paid
    rest = amount
    for index, room in enumerate(left):
        paid[index] = min(rest, room)
        rest -= paid[index]
    return points, amount, paid


def _earn(bundle: RuleBundle, rules: ProgrammeRules, tier: TierLevel | None, items: Sequence[LineItem],
          net: Sequence[int], *, at: datetime, site_id: str, programme: str) -> list[EarnedBy]:
    totals: dict[tuple[str, str | None], int] = {}
    local_at = local(at, bundle.timezone)
    running = [campaign for campaign in bundle.campaigns if campaign.starts_at <= at < campaign.ends_at]
    parts_named = any(campaign.match.day_parts for campaign in running)
    for index, item in enumerate(items):
        money = net[index]
        if not money:
            continue
        rule = rule_for(rules, item)
        scaled = money * rule.basis_points if rule is not None else 0
        parts: list[tuple[str, str | None, int]] = []
        if rule is not None:
            parts.append((rule.rule_id, None, scaled // 10_000))
        if tier is not None and tier.bonus_percent:
            parts.append((f"tier:{tier.tier_id}", None, scaled * tier.bonus_percent // 1_000_000))
        in_parts: frozenset[str] = frozenset()
        if parts_named or (rule is not None and rule.day_parts):
            shown = local(item.showtime, bundle.timezone) if item.showtime is not None else local_at
            in_parts = day_parts_at(bundle.day_parts, shown)
        if rule is not None and rule.day_parts:
            best = max(((rule.day_parts[part], part) for part in in_parts if part in rule.day_parts), default=None)
            if best is not None:
                parts.append((f"daypart:{best[1]}", None, scaled * best[0] // 1_000_000))
        genres = (item.genre,) if item.genre else bundle.genres_of(item.film)
        for campaign in running:
            if matches(campaign, at=at, kind=item.kind, film=item.film, genres=genres, hall=item.hall,
                       site_id=site_id, day_parts=in_parts, fmt=item.format, programme=programme):
                paid_units = min(item.quantity, -(-money // item.unit_price))  # units bought with money
                bonus = scaled * campaign.bonus_percent // 1_000_000 + campaign.points_per_unit * paid_units
                parts.append((f"campaign:{campaign.campaign_id}", campaign.sponsor, bonus))
                break
        for key, sponsor, points in parts:
            if points:
                totals[(key, sponsor)] = totals.get((key, sponsor), 0) + points
    return [EarnedBy(key, points, sponsor) for (key, sponsor), points in totals.items()]


def _capped(rules: ProgrammeRules, account: Account, day: date,
            parts: list[EarnedBy]) -> tuple[list[EarnedBy], str | None]:
    caps = rules.caps
    total = sum(part.points for part in parts)
    if not total:
        return parts, None
    sales = account.day_sales if account.day == day else 0
    earned = account.day_points if account.day == day else 0
    if caps.earning_sales_per_day and sales >= caps.earning_sales_per_day:
        return [], f"earning is limited to {caps.earning_sales_per_day} sales a day"
    if not caps.points_per_day or earned + total <= caps.points_per_day:
        return parts, None
    cut = earned + total - caps.points_per_day
    kept: list[EarnedBy] = []
    for part in reversed(sorted(parts, key=lambda part: part.rule.startswith("campaign:"))):
        taken = min(cut, part.points)
        cut -= taken
        if part.points - taken:
            kept.append(EarnedBy(part.rule, part.points - taken, part.sponsor))
    order = {part.rule: n for n, part in enumerate(parts)}
    return sorted(kept, key=lambda part: order[part.rule]), f"earning is limited to {caps.points_per_day} points a day"
