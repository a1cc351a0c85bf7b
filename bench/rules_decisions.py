"""Loyalty decisions per second through the box's decision path (`edge.decide.decide_sale`, pure: no journal,
no I/O) under the skeleton's single rule and under a full bundle (3 tiers, 20 campaigns, a pass, the spend
discount, the birthday ticket, caps, day parts), for members with realistic accounts; p50 and p99 per
decision. Then `edge.decide.account_at_box` (the directory's account, the box's own later moves folded on top,
the time rules brought to now) with 0 and 20 local moves.

Run: .venv/bin/python bench/rules_decisions.py [--rounds 20000] [--members 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from edge.decide import MemberState, account_at_box, decide_sale
from protocol.account import Account, Move, PassState
from protocol.calendar import add_months
from protocol.events import LineItem
from protocol.rules import RuleBundle, default_bundle

NOW = datetime(2026, 11, 18, 18, 30, tzinfo=UTC)  # a Wednesday evening, mid-month
FILMS = [f"Invented Film {n:02d}" for n in range(20)]


def full_bundle() -> RuleBundle:
    """Every part of a programme, and 20 campaigns that never pay on the same line (one film each)."""
    return RuleBundle.model_validate({
        "version": 2, "published_at": "2026-11-01T00:00:00Z", "currency": "EUR", "timezone": "Europe/Paris",
        "earning": [
            {"rule_id": "tickets", "kind": "ticket", "basis_points": 1000, "day_parts": {"matinee": 50, "late": 25}},
            {"rule_id": "premium", "kind": "ticket", "formats": ["premium", "imax"], "basis_points": 2000,
             "day_parts": {"matinee": 50}},
            {"rule_id": "popcorn", "kind": "concession", "categories": ["popcorn"], "basis_points": 800},
            {"rule_id": "bar", "kind": "concession", "basis_points": 500},
            {"rule_id": "passes", "kind": "concession", "skus": ["PASS-CINE"], "basis_points": 0}],
        "tiers": {"levels": [
            {"tier_id": "regular", "name": "Regular"},
            {"tier_id": "silver", "name": "Silver", "min_visits": 6, "min_spend": 20000, "bonus_percent": 25,
             "discount_bp": 500},
            {"tier_id": "gold", "name": "Gold", "min_visits": 12, "min_spend": 50000, "bonus_percent": 50,
             "discount_bp": 1000, "free_upgrade": True, "early_booking": True}]},
        "discount": {"min_bp": 200, "max_bp": 1500, "steps": [{"lifetime_spend": 20000, "discount_bp": 500},
                                                              {"lifetime_spend": 100000, "discount_bp": 1000}]},
        "expiry": {"shelf_life_months": 12}, "burn": {"inactive_days": 365},
        "monthly_bonus": {"min_visits": 4, "points": 500}, "birthday": {"max_amount": 1600},
        "passes": [{"pass_id": "cine-pass", "name": "CinePass", "sku": "PASS-CINE", "validity_days": 30,
                    "films_per_week": 2, "per_day": 1}],
        "caps": {"earning_sales_per_day": 10, "points_per_day": 20000},
        "day_parts": [{"day_part_id": "matinee", "start": "10:00", "end": "17:00"},
                      {"day_part_id": "late", "start": "21:30", "end": "02:00", "days": ["fri", "sat"]}],
        "films": [{"title": title, "genres": ["drama"], "distributor": f"Distributor {n % 5}"}
                  for n, title in enumerate(FILMS)],
        "campaigns": [{"campaign_id": f"film-{n:02d}", "name": f"{title}: bonus", "sponsor": f"Distributor {n % 5}",
                       "starts_at": "2026-11-01T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z",
                       "match": {"films": [title], **({"day_parts": ["matinee"]} if n % 2 else {})},
                       "bonus_percent": 100, "points_per_unit": 20} for n, title in enumerate(FILMS)],
        "redemption": {"enabled": True, "points_per_unit": 10, "kinds": ["ticket"]},
    })


def account(rng: random.Random) -> Account:
    """A member of a year's standing: lots in each of the last 12 months, activity, a tier, often a pass."""
    months = [add_months("2026-11", -back) for back in range(12)]
    lots = {month: rng.randrange(50, 800) for month in months}
    activity = {month: (rng.randrange(0, 4), rng.randrange(0, 9000)) for month in months}
    held = (PassState(pass_id="cine-pass", valid_from=date(2026, 11, 2), valid_to=date(2026, 12, 1),
                      week="2026-W47", week_used=1),) if rng.random() < 0.5 else ()
    return Account(as_of=NOW - timedelta(hours=rng.randrange(1, 48)), lots=dict(sorted(lots.items())),
                   tier=rng.choice(("regular", "silver", "gold")), activity=dict(sorted(activity.items())),
                   lifetime_spend=sum(spend for _, spend in activity.values()), last_visit=date(2026, 11, 15),
                   first_seen=date(2025, 9, 3), passes=held)


def sale(rng: random.Random) -> list[LineItem]:
    """Two to three tickets for one of the catalogue's films (a campaign's), popcorn and a drink."""
    film, show = rng.choice(FILMS), NOW + timedelta(minutes=rng.choice((-240, 30, 90)))
    return [LineItem(kind="ticket", sku="TKT-STD", film=film, hall="h2", showtime=show, quantity=rng.randint(1, 2),
                     unit_price=1250, format="2d", category="adult"),
            LineItem(kind="ticket", sku="TKT-PRM", film=film, hall="h2", showtime=show, quantity=1, unit_price=1600,
                     format="premium", category="adult"),
            LineItem(kind="concession", sku="POP-L", description="Popcorn L", unit_price=650, category="popcorn"),
            LineItem(kind="concession", sku="DRK-L", description="Soft drink L", unit_price=450, category="drinks")]


def members(count: int) -> list[MemberState]:
    rng = random.Random(7)
    found = []
    for n in range(count):
        held = account(rng)
        found.append(MemberState(f"{n:064x}", f"m{n}", "active", balance=held.balance, account=held,
                                 birthday="11-19" if n % 20 == 0 else "03-14"))
    return found


def timed(rounds: int, step: Callable[[int], object]) -> tuple[float, list[float]]:
    """(calls per second, microseconds per call)."""
    each = []
    started = time.perf_counter()
    for n in range(rounds):
        t0 = time.perf_counter_ns()
        step(n)
        each.append((time.perf_counter_ns() - t0) / 1000)
    return rounds / (time.perf_counter() - started), each


def us(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49]:,.1f} us  p99 {q[98]:,.1f} us"


def decisions(rounds: int, count: int) -> None:
    people = members(count)
    rng = random.Random(11)
    sales = [sale(rng) for _ in range(256)]
    bundles = [("the skeleton's single rule (default_bundle)", default_bundle("EUR", NOW - timedelta(days=30))),
               ("full bundle: 3 tiers, 20 campaigns, a pass, discount, caps, day parts", full_bundle())]
    rates = []
    print(f"edge.decide.decide_sale, {rounds:,} member sales (2-3 tickets, popcorn, a drink; benefits applied), "
          f"{count:,} members with a year of lots and activity, half holding a pass:")
    for name, bundle in bundles:
        def step(n: int, bundle: RuleBundle = bundle) -> object:
            return decide_sale(rules=bundle, site_id="riverside", till_id="t1", cashier_id="c07", sale_id=f"S-{n}",
                               currency="EUR", items=sales[n % len(sales)], member=people[n % len(people)],
                               at=NOW, benefits=True)
        step(0)  # caches (time zones) warm
        rate, each = timed(rounds, step)
        rates.append(rate)
        print(f"  {name}: {rate:,.0f} decisions/s, {us(each)}")
    print(f"  ratio: the full bundle decides {rates[0] / rates[1]:.1f} times slower than the single rule")


def folds(rounds: int, count: int) -> None:
    bundle = full_bundle()
    people = members(count)
    print(f"edge.decide.account_at_box under the full bundle, {rounds:,} members' accounts brought to now:")
    for local in (0, 20):
        inputs = []
        for n, member in enumerate(people):
            assert member.account is not None and member.account.as_of is not None
            since = member.account.as_of
            inputs.append((member, [Move(at=since + timedelta(minutes=1 + k), kind="earn", points=150 + k, spend=3000,
                                         visit=True, earning_sale=True, order=("riverside-box1", n * 100 + k))
                                    for k in range(local)]))

        def step(n: int, inputs: list[tuple[MemberState, list[Move]]] = inputs) -> object:
            member, moves = inputs[n % len(inputs)]
            return account_at_box(bundle, None, member.account, member.balance, moves, NOW)
        step(0)
        rate, each = timed(rounds, step)
        print(f"  {local:>2} local moves: {rate:,.0f} accounts/s, {us(each)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    decisions(args.rounds, args.members)
    folds(max(args.rounds // 4, 1000), args.members)


if __name__ == "__main__":
    main()
