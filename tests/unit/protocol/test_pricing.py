"""What one sale earns and gives: earning rules and bonuses, daily caps, member discount, birthday ticket, passes.

Worked examples in the ids; every bundle is in Paris time (tests.unit.protocol.factories.rules_bundle).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from protocol.account import Account, Move, fold
from protocol.events import LineItem
from protocol.pricing import price_sale
from tests.unit.protocol.factories import concession, paris, rules_bundle, sell, ticket

AT = paris(2026, 3, 10, 20)  # a Tuesday evening
EARNING = [
    {"rule_id": "tickets", "kind": "ticket", "basis_points": 1000},
    {"rule_id": "premium", "kind": "ticket", "skus": ["TKT-PRM"], "basis_points": 2000},
    {"rule_id": "imax", "kind": "ticket", "formats": ["imax"], "basis_points": 1500},
    {"rule_id": "kids", "kind": "ticket", "categories": ["child"], "basis_points": 500},
    {"rule_id": "bar", "kind": "concession", "basis_points": 500},
    {"rule_id": "popcorn", "kind": "concession", "categories": ["popcorn"], "basis_points": 800},
]
TIERS = {"levels": [{"tier_id": "regular", "name": "Regular"},
                    {"tier_id": "silver", "name": "Silver", "min_visits": 6, "bonus_percent": 25, "discount_bp": 800},
                    {"tier_id": "gold", "name": "Gold", "min_visits": 12, "bonus_percent": 50}]}


def earned(decision: Any) -> list[tuple[str, int]]:
    return [(part.rule, part.points) for part in decision.earned_by]


@pytest.mark.parametrize(
    ("items", "parts"),
    [
        pytest.param([ticket(1250)], [("tickets", 125)], id="1250-cents-at-1000bp-earns-125"),
        pytest.param([ticket(999)], [("tickets", 99)], id="999-cents-at-1000bp-rounds-99.9-down-to-99"),
        pytest.param([ticket(9)], [], id="9-cents-at-1000bp-earns-0"),
        pytest.param([ticket(1599, sku="TKT-PRM")], [("premium", 319)], id="1599-cents-premium-sku-2000bp-earns-319"),
        pytest.param([ticket(2000, sku="TKT-PRM", fmt="imax")], [("premium", 400)], id="sku-rule-beats-format-rule"),
        pytest.param([ticket(2000, fmt="imax")], [("imax", 300)], id="imax-format-at-1500bp-earns-300"),
        pytest.param([ticket(800, category="child")], [("kids", 40)], id="child-category-at-500bp-earns-40"),
        pytest.param([ticket(2000, fmt="3d")], [("tickets", 200)], id="unnamed-format-falls-to-the-kind-rule"),
        pytest.param([concession(650)], [("bar", 32)], id="650-cents-at-500bp-rounds-32.5-down-to-32"),
        pytest.param([concession(650, category="popcorn")], [("popcorn", 52)], id="popcorn-category-800bp-earns-52"),
        pytest.param([ticket(1255), ticket(1255)], [("tickets", 250)], id="two-1255-lines-round-each-250-not-251"),
        pytest.param([ticket(1255, qty=2)], [("tickets", 251)], id="one-line-of-2x1255-earns-251"),
    ],
)
def test_each_line_earns_under_one_rule_rounded_down(items: list[LineItem], parts: list[tuple[str, int]]) -> None:
    decision, _ = sell(rules_bundle(earning=EARNING), [], items, AT)
    assert earned(decision) == parts
    assert decision.points == sum(points for _, points in parts)


def test_a_kind_without_a_rule_earns_nothing() -> None:
    decision, _ = sell(rules_bundle(earning=EARNING[:1]), [], [concession(650)], AT)
    assert decision.points == 0 and decision.earned_by == ()


@pytest.mark.parametrize(
    ("tier", "parts"),
    [
        pytest.param(None, [("tickets", 125)], id="new-member-regular-1250-earns-125"),
        pytest.param("silver", [("tickets", 125), ("tier:silver", 31)], id="silver-25pct-of-125-adds-31"),
        pytest.param("gold", [("tickets", 125), ("tier:gold", 62)], id="gold-50pct-of-125-adds-62"),
    ],
)
def test_the_tier_bonus_is_a_percent_of_the_base(tier: str | None, parts: list[tuple[str, int]]) -> None:
    bundle = rules_bundle(tiers=TIERS)
    decision = price_sale(bundle, None, Account(tier=tier), [ticket(1250)], at=AT, site_id="riverside")
    assert earned(decision) == parts


DAY_PARTS = [{"day_part_id": "matinee", "start": "10:00", "end": "13:00"},
             {"day_part_id": "lunch", "start": "12:00", "end": "14:00"}]
DAY_PART_EARNING = [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000,
                     "day_parts": {"matinee": 20, "lunch": 30}}]


@pytest.mark.parametrize(
    ("showtime", "sold_at", "parts"),
    [
        pytest.param(paris(2026, 3, 28, 9, 59), AT, [("tickets", 100)], id="show-9h59-before-matinee-no-bonus"),
        pytest.param(paris(2026, 3, 28, 10), AT, [("tickets", 100), ("daypart:matinee", 20)],
                     id="show-10h00-matinee-20pct-adds-20"),
        pytest.param(paris(2026, 3, 29, 10), AT, [("tickets", 100), ("daypart:matinee", 20)],
                     id="show-10h00-on-dst-sunday-is-08h00-utc-matinee"),
        pytest.param(paris(2026, 3, 28, 12, 30), AT, [("tickets", 100), ("daypart:lunch", 30)],
                     id="show-12h30-in-matinee-and-lunch-the-best-30pct-adds-30"),
        pytest.param(None, paris(2026, 3, 10, 11), [("tickets", 100), ("daypart:matinee", 20)],
                     id="no-showtime-sale-at-11h00-counts-as-matinee"),
    ],
)
def test_the_day_part_bonus_reads_the_local_showtime(showtime: datetime | None, sold_at: datetime,
                                                     parts: list[tuple[str, int]]) -> None:
    bundle = rules_bundle(day_parts=DAY_PARTS, earning=DAY_PART_EARNING)
    decision, _ = sell(bundle, [], [ticket(1000, showtime=showtime)], sold_at)
    assert earned(decision) == parts


def test_a_campaign_adds_its_percent_and_its_points_per_unit_with_its_sponsor() -> None:
    bundle = rules_bundle(campaigns=[{"campaign_id": "glass", "name": "Glass", "starts_at": "2026-03-01T00:00:00Z",
                                      "ends_at": "2026-04-01T00:00:00Z", "match": {"films": ["Harbour of Glass"]},
                                      "bonus_percent": 50, "points_per_unit": 20, "sponsor": "Northlight"}])
    decision, _ = sell(bundle, [], [ticket(1000, qty=2, film="Harbour of Glass"), ticket(1000, film="Other")], AT)
    # 2 x 1000: base 200, campaign 50 % = 100 + 2 units x 20 = 140; the other film: base 100 only.
    assert [(p.rule, p.points, p.sponsor) for p in decision.earned_by] == [
        ("tickets", 300, None), ("campaign:glass", 140, "Northlight")]


PASS = {"pass_id": "cine", "name": "Cine", "sku": "PASS-M", "validity_days": 30, "films_per_week": 2}
GLASS = {"campaign_id": "glass", "name": "Glass", "starts_at": "2026-03-01T00:00:00Z",
         "ends_at": "2026-04-01T00:00:00Z", "points_per_unit": 20, "sponsor": "Northlight"}


def test_earning_is_on_the_money_left_after_benefits_and_points() -> None:
    bundle = rules_bundle(tiers=TIERS, passes=[PASS], campaigns=[GLASS], redemption={"enabled": True})
    moves: list[Move] = []
    sell(bundle, moves, [concession(3000, sku="PASS-M")], AT - timedelta(days=1))
    silver = Account.model_validate({**fold(moves, bundle, bundle.timezone)[0].model_dump(), "tier": "silver"})
    items = [ticket(1000, qty=3), concession(1000)]
    decision = price_sale(bundle, None, silver, items, at=AT, site_id="riverside", benefits=True, capture=(700, 700))
    # The pass covers one ticket, points pay 700 of the rest; the silver 8 % comes off the popcorn.
    assert [(b.line, b.amount, b.reason) for b in decision.benefits] == [(0, 1000, "pass"), (1, 80, "member")]
    assert decision.paid_with_money == (1300, 920)
    assert (decision.redeemed_points, decision.redeemed_amount, decision.spend) == (700, 700, 2220)
    # Tickets: base 130 + silver 25 % = 32; 2 units bought with money x 20 (not the one the pass paid);
    # popcorn: 920 x 5 % = 46 + silver 11.
    assert earned(decision) == [("tickets", 130), ("tier:silver", 43), ("campaign:glass", 40), ("bar", 46)]


@pytest.mark.parametrize(
    ("earlier", "parts", "capped"),
    [
        pytest.param(1, [("tickets", 100)], None, id="sales-cap-2-the-2nd-sale-earns"),
        pytest.param(2, [], "earning is limited to 2 sales a day", id="sales-cap-2-the-3rd-sale-earns-nothing"),
    ],
)
def test_earning_sales_per_day(earlier: int, parts: list[tuple[str, int]], capped: str | None) -> None:
    bundle = rules_bundle(caps={"earning_sales_per_day": 2})
    moves: list[Move] = []
    for n in range(earlier):
        sell(bundle, moves, [ticket(1000)], AT + timedelta(minutes=n))
    decision, _ = sell(bundle, moves, [ticket(1000)], AT + timedelta(hours=1))
    assert (earned(decision), decision.capped) == (parts, capped)


@pytest.mark.parametrize(
    ("first", "parts", "capped"),
    [
        pytest.param(100, [("tickets", 100), ("campaign:glass", 20)], None, id="100-then-120-is-220-below-cap-300"),
        pytest.param(180, [("tickets", 100), ("campaign:glass", 20)], None, id="180-then-120-is-exactly-cap-300"),
        pytest.param(190, [("tickets", 100), ("campaign:glass", 10)], "earning is limited to 300 points a day",
                     id="190-then-120-over-by-10-cuts-the-campaign-first"),
        pytest.param(250, [("tickets", 50)], "earning is limited to 300 points a day",
                     id="250-then-120-over-by-70-cuts-campaign-20-then-base-50"),
        pytest.param(300, [], "earning is limited to 300 points a day", id="300-then-nothing-left"),
    ],
)
def test_points_per_day_clip_campaign_parts_first(first: int, parts: list[tuple[str, int]],
                                                  capped: str | None) -> None:
    bundle = rules_bundle(caps={"points_per_day": 300}, campaigns=[{**GLASS, "match": {"kinds": ["ticket"]}}],
                          earning=[EARNING[0], {"rule_id": "bar", "kind": "concession", "basis_points": 10_000}])
    moves: list[Move] = []
    sell(bundle, moves, [concession(first)], AT)
    decision, _ = sell(bundle, moves, [ticket(1000)], AT + timedelta(hours=1))
    assert (earned(decision), decision.capped) == (parts, capped)


@pytest.mark.parametrize(
    ("second_sale", "points"),
    [
        pytest.param(paris(2026, 3, 10, 23, 59, 59), 0, id="23h59m59-paris-same-day-capped"),
        pytest.param(paris(2026, 3, 11, 0, 0), 100, id="00h00-paris-next-day-earns-again"),
    ],
)
def test_the_daily_caps_reset_at_local_midnight(second_sale: datetime, points: int) -> None:
    bundle = rules_bundle(caps={"earning_sales_per_day": 1, "points_per_day": 100})
    moves: list[Move] = []
    sell(bundle, moves, [ticket(1000)], paris(2026, 3, 10, 9))
    decision, _ = sell(bundle, moves, [ticket(1000)], second_sale)
    assert decision.points == points


DISCOUNT = {"min_bp": 200, "max_bp": 1000, "steps": [{"lifetime_spend": 10_000, "discount_bp": 500},
                                                     {"lifetime_spend": 50_000, "discount_bp": 1000}]}


@pytest.mark.parametrize(
    ("lifetime", "tier", "off"),
    [
        pytest.param(0, None, 20, id="first-sale-gets-min-2pct-of-1000-is-20"),
        pytest.param(9_999, None, 20, id="9999-spent-below-first-step-2pct"),
        pytest.param(10_000, None, 50, id="10000-spent-at-first-step-5pct"),
        pytest.param(49_999, None, 50, id="49999-spent-below-second-step-5pct"),
        pytest.param(50_000, None, 100, id="50000-spent-at-top-step-10pct"),
        pytest.param(10**9, None, 100, id="10-million-spent-stays-at-max-10pct"),
        pytest.param(0, "silver", 80, id="silver-8pct-beats-spend-2pct"),
        pytest.param(50_000, "silver", 100, id="spend-10pct-beats-silver-8pct"),
    ],
)
def test_the_member_discount_is_the_larger_of_tier_and_spend(lifetime: int, tier: str | None, off: int) -> None:
    bundle = rules_bundle(discount=DISCOUNT, tiers=TIERS)
    account = Account(lifetime_spend=lifetime, tier=tier)
    decision = price_sale(bundle, None, account, [ticket(1000), concession(1000)], at=AT, site_id="riverside",
                          benefits=True)
    assert [(b.line, b.amount, b.reason) for b in decision.benefits] == [(1, off, "member")]
    assert decision.discount == off


def test_a_till_that_cannot_take_money_off_gets_points_only() -> None:
    bundle = rules_bundle(discount=DISCOUNT, birthday={}, passes=[PASS])
    decision, _ = sell(bundle, [], [ticket(1000), concession(1000)], AT, birthday="03-11", benefits=False)
    assert decision.benefits == () and decision.birthday_available and decision.points == 150


BIRTHDAY_AT = paris(2026, 3, 9, 20)  # Monday of the week of Wednesday 11 March 2026


@pytest.mark.parametrize(
    ("max_amount", "benefit", "points"),
    [
        pytest.param(0, 1400, 90, id="no-limit-the-dearest-1400-ticket-is-free-900-earns-90"),
        pytest.param(1000, 1000, 130, id="max-1000-takes-1000-off-the-1400-ticket-1300-earns-130"),
        pytest.param(2000, 1400, 90, id="max-2000-above-the-price-takes-the-price"),
    ],
)
def test_the_birthday_ticket_is_the_dearest_up_to_max_amount(max_amount: int, benefit: int, points: int) -> None:
    bundle = rules_bundle(birthday={"max_amount": max_amount})
    decision, moves = sell(bundle, [], [ticket(900), ticket(1400)], BIRTHDAY_AT, birthday="03-11")
    assert [(b.line, b.amount, b.reason) for b in decision.benefits] == [(1, benefit, "birthday")]
    assert (decision.points, decision.birthday_year, decision.birthday_available) == (points, 2026, False)
    assert moves[0].birthday_year == 2026


@pytest.mark.parametrize(
    ("birthday", "at", "given"),
    [
        pytest.param("03-11", paris(2026, 3, 8, 23, 59), False, id="sunday-before-the-week-23h59-no"),
        pytest.param("03-11", paris(2026, 3, 9, 0, 0), True, id="monday-of-the-week-00h00-yes"),
        pytest.param("03-11", paris(2026, 3, 15, 23, 59), True, id="sunday-of-the-week-23h59-yes"),
        pytest.param("03-11", paris(2026, 3, 16, 0, 0), False, id="monday-after-00h00-no"),
        pytest.param("02-29", paris(2027, 2, 22, 12), True, id="29-feb-in-2027-week-of-sunday-28-feb-yes"),
        pytest.param("12-31", paris(2027, 1, 3, 12), True, id="31-dec-week-reaches-sunday-3-jan-yes"),
    ],
)
def test_the_birthday_week_in_local_time(birthday: str, at: datetime, given: bool) -> None:
    decision, _ = sell(rules_bundle(birthday={}), [], [ticket(1000)], at, birthday=birthday)
    assert bool(decision.benefits) is given


def test_the_birthday_ticket_is_once_a_year_even_across_new_year() -> None:
    bundle = rules_bundle(birthday={})
    moves: list[Move] = []
    first, _ = sell(bundle, moves, [ticket(1000)], paris(2026, 12, 29, 20), birthday="12-31")
    again, _ = sell(bundle, moves, [ticket(1000)], paris(2027, 1, 2, 20), birthday="12-31")
    next_year, _ = sell(bundle, moves, [ticket(1000)], paris(2027, 12, 28, 20), birthday="12-31")
    assert (first.birthday_year, again.birthday_year, next_year.birthday_year) == (2026, None, 2027)
    assert not again.benefits and not again.birthday_available


def pass_sale(bundle: Any, moves: list[Move], at: datetime, *tickets: LineItem) -> list[tuple[int, int, str]]:
    decision, _ = sell(bundle, moves, list(tickets), at)
    return [(b.line, b.amount, b.reason) for b in decision.benefits]


BOUGHT = paris(2026, 3, 9, 12)  # Monday 9 March: valid to Tuesday 7 April with 30 days


def test_a_pass_bought_by_sku_is_valid_for_its_days_and_a_renewal_extends_it() -> None:
    bundle = rules_bundle(passes=[PASS])
    moves: list[Move] = []
    decision, made = sell(bundle, moves, [concession(3000, sku="PASS-M")], BOUGHT)
    assert decision.passes_bought == ("cine",) and made[0].passes_bought == ("cine",)
    held = fold(moves, bundle, bundle.timezone)[0].passes
    assert [(p.pass_id, p.valid_from.isoformat(), p.valid_to.isoformat()) for p in held] == [
        ("cine", "2026-03-09", "2026-04-07")]
    sell(bundle, moves, [concession(3000, sku="PASS-M")], paris(2026, 4, 7, 23))
    assert fold(moves, bundle, bundle.timezone)[0].passes[0].valid_to.isoformat() == "2026-05-07"
    sell(bundle, moves, [concession(3000, sku="PASS-M")], paris(2026, 5, 9, 12))
    renewed = fold(moves, bundle, bundle.timezone)[0].passes[0]
    assert (renewed.valid_from.isoformat(), renewed.valid_to.isoformat()) == ("2026-05-09", "2026-06-07")


@pytest.mark.parametrize(
    ("at", "covered"),
    [
        pytest.param(paris(2026, 3, 9, 12, 1), True, id="a-minute-after-the-purchase-covered"),
        pytest.param(paris(2026, 4, 7, 23, 59), True, id="last-valid-day-7-apr-23h59-covered"),
        pytest.param(paris(2026, 4, 8, 0, 0), False, id="expired-8-apr-00h00-covers-nothing"),
    ],
)
def test_a_pass_covers_only_in_its_validity(at: datetime, covered: bool) -> None:
    bundle = rules_bundle(passes=[PASS])
    moves: list[Move] = []
    sell(bundle, moves, [concession(3000, sku="PASS-M")], BOUGHT)
    assert bool(pass_sale(bundle, moves, at, ticket(1000))) is covered


def test_a_pass_covers_films_per_week_in_iso_weeks() -> None:
    bundle = rules_bundle(passes=[PASS])  # 2 a week, 1 a day
    moves: list[Move] = []
    sell(bundle, moves, [concession(3000, sku="PASS-M")], BOUGHT)
    week = [pass_sale(bundle, moves, paris(2026, 3, day, 20), ticket(1000)) for day in (9, 10, 11, 15)]
    assert week == [[(0, 1000, "pass")], [(0, 1000, "pass")], [], []]
    assert pass_sale(bundle, moves, paris(2026, 3, 16, 20), ticket(1000)) == [(0, 1000, "pass")]


@pytest.mark.parametrize(
    ("product", "items", "benefits"),
    [
        pytest.param({}, [ticket(1000, qty=2)], [(0, 1000, "pass")], id="per-day-1-two-tickets-one-covered"),
        pytest.param({"per_day": 2}, [ticket(1000, qty=2)], [(0, 2000, "pass")], id="per-day-2-both-covered"),
        pytest.param({"per_day": 2}, [ticket(1000, qty=3)], [(0, 2000, "pass")], id="per-day-2-of-3-but-week-2"),
        pytest.param({}, [ticket(1200), ticket(1000)], [(1, 1000, "pass")], id="the-cheapest-ticket-first"),
        pytest.param({"formats": ["2d"]}, [ticket(1000, fmt="3d")], [], id="2d-pass-not-a-3d-ticket"),
        pytest.param({"formats": ["2d"]}, [ticket(1000, fmt="3d"), ticket(1500, fmt="2d")],
                     [(1, 1500, "pass")], id="2d-pass-takes-the-2d-one"),
        pytest.param({"max_ticket_price": 1200}, [ticket(1200)], [(0, 1200, "pass")], id="max-1200-covers-1200"),
        pytest.param({"max_ticket_price": 1200}, [ticket(1201)], [], id="max-1200-not-1201"),
        pytest.param({}, [concession(500)], [], id="a-pass-never-pays-popcorn"),
    ],
)
def test_what_a_pass_covers(product: dict[str, Any], items: list[LineItem],
                            benefits: list[tuple[int, int, str]]) -> None:
    bundle = rules_bundle(passes=[{**PASS, **product}])
    moves: list[Move] = []
    sell(bundle, moves, [concession(3000, sku="PASS-M")], BOUGHT)
    decision, made = sell(bundle, moves, items, BOUGHT + timedelta(hours=8))
    assert [(b.line, b.amount, b.reason) for b in decision.benefits] == benefits
    uses = sum(b[1] // items[b[0]].unit_price for b in benefits)
    assert made[0].pass_uses == ((("cine", uses),) if uses else ())
