"""The demo chain's rule bundle (HQ's loyalty programme: tiers, a film's campaign, the CinePass), and the
demo's lines about it: the bundle at start, what the tills showed of it and what HQ bills at the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# HQ's loyalty programme (docs/rules.md explains every field). The tiers' thresholds are low so that the
# demo's members reach silver and gold within minutes: a visit is a local day with a ticket, so in a demo
# it is the spend in the window that promotes them.
DEMO_RULES: dict[str, Any] = {
    "currency": "EUR",
    "timezone": "Europe/Paris",
    "earning": [
        {"rule_id": "tickets", "kind": "ticket", "basis_points": 1000, "day_parts": {"matinee": 50, "late": 25}},
        {"rule_id": "premium", "kind": "ticket", "formats": ["premium", "imax"], "basis_points": 2000,
         "day_parts": {"matinee": 50, "late": 25}},
        {"rule_id": "bar", "kind": "concession", "basis_points": 500},
        {"rule_id": "passes", "kind": "concession", "skus": ["PASS-CINE"], "basis_points": 0},
    ],
    "tiers": {"window_months": 12, "review": "yearly", "review_day": "01-01", "demotion": "one_level", "levels": [
        {"tier_id": "regular", "name": "Regular"},
        {"tier_id": "silver", "name": "Silver", "min_visits": 3, "min_spend": 5000, "bonus_percent": 25,
         "discount_bp": 500},
        {"tier_id": "gold", "name": "Gold", "min_visits": 6, "min_spend": 15000, "bonus_percent": 50,
         "discount_bp": 1000, "free_upgrade": True, "early_booking": True}]},
    "discount": {"min_bp": 200, "max_bp": 1500, "kinds": ["concession"],
                 "steps": [{"lifetime_spend": 20000, "discount_bp": 500},
                           {"lifetime_spend": 100000, "discount_bp": 1000},
                           {"lifetime_spend": 250000, "discount_bp": 1500}]},
    "expiry": {"shelf_life_months": 12},
    "burn": {"inactive_days": 365},
    "monthly_bonus": {"min_visits": 4, "points": 500},
    "birthday": {"max_amount": 1600},
    "passes": [{"pass_id": "cine-pass", "name": "CinePass", "sku": "PASS-CINE", "validity_days": 30,
                "films_per_week": 2, "per_day": 1, "formats": ["2d"]}],
    "caps": {"earning_sales_per_day": 10, "points_per_day": 20000},
    "day_parts": [{"day_part_id": "matinee", "start": "10:00", "end": "17:00"},
                  {"day_part_id": "late", "start": "21:30", "end": "02:00", "days": ["fri", "sat"]}],
    # Two of the simulated tills' (invented) films, with an invented distributor for each.
    "films": [{"title": "Paper Astronauts", "genres": ["sci-fi", "family"], "distributor": "Northlight Pictures"},
              {"title": "Marigold Street", "genres": ["drama"], "distributor": "Bellweather Films"}],
    "campaigns": [{"campaign_id": "paper-astronauts-launch", "name": "Paper Astronauts: double points",
                   "sponsor": "Northlight Pictures", "match": {"films": ["Paper Astronauts"]},
                   "bonus_percent": 100, "points_per_unit": 20}],  # dates: this month (demo_rules)
    "redemption": {"enabled": True, "kinds": ["ticket"], "points_per_unit": 10, "offline_daily_cap": 2000},
    # The fraud rules (docs/rules.md, "Choosing the limits"): above what an honest member earns in a visit or a
    # day, well below what a cashier's own card on every sale of a busy till earns in an hour.
    "fraud": {
        "card_points_day": {"limit": 8000, "action": "hold"},
        "card_points_till_day": {"limit": 6000, "action": "hold"},
        "card_points_shift": {"limit": 5000, "action": "hold"},
        "same_card_till": {"limit": 4, "minutes": 60, "action": "hold"},
        "velocity": {"limit": 6, "minutes": 60, "action": "flag"},
        "two_tills": {"seconds": 120, "action": "flag"},
        "redeem_after_earning": {"points": 2500, "minutes": 60, "action": "hold"},
        "refund_rate": {"limit": 5, "minutes": 480, "action": "flag"},
        "override_rate": {"limit": 8, "minutes": 480, "action": "flag"},
        "staff_own_card": "hold",
        "blocklist": "decline",
        "travel": {"kmh": 200, "min_km": 50},
    },
}


def demo_rules(now: datetime) -> dict[str, Any]:
    """DEMO_RULES with the campaign running this month: from the first (UTC) to the first of next month."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    campaigns = [{**campaign, "starts_at": start.isoformat().replace("+00:00", "Z"),
                  "ends_at": end.isoformat().replace("+00:00", "Z")} for campaign in DEMO_RULES["campaigns"]]
    return {**DEMO_RULES, "campaigns": campaigns}


def rules_line() -> str:
    """The bundle in a line: what the tills will show."""
    tiers = ", ".join(level["name"] for level in DEMO_RULES["tiers"]["levels"])
    passes = ", ".join(f"{product['name']} ({product['films_per_week']} films a week)"
                       for product in DEMO_RULES["passes"])
    campaigns = ", ".join(f"campaign '{campaign['name']}' (sponsor {campaign['sponsor']})"
                          for campaign in DEMO_RULES["campaigns"])
    return (f"  Bundle:    {len(DEMO_RULES['tiers']['levels'])} tiers ({tiers}), {passes}, birthday ticket, "
            f"member discount, {campaigns}")


def closing_lines(tills: list[dict[str, Any]], bill: list[dict[str, Any]]) -> list[str]:
    """What the tills showed of the rules (the simulators' counters), and what HQ bills the sponsors."""
    def total(name: str) -> int:
        return sum(int(till.get(name, 0)) for till in tills)

    def summed(name: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for till in tills:
            for key, value in (till.get(name) or {}).items():
                counts[key] = counts.get(key, 0) + int(value)
        return counts

    members = summed("tiers_seen")
    order = [level["tier_id"] for level in DEMO_RULES["tiers"]["levels"]]
    tiers = ", ".join(f"{tier} {members.get(tier, 0)}" for tier in order)
    paid = summed("campaign_points")
    campaigns = ", ".join(f"campaign '{campaign['name']}' paid {paid.get(campaign['campaign_id'], 0):,} bonus "
                          f"points (sponsor {campaign['sponsor']})" for campaign in DEMO_RULES["campaigns"])
    off = summed("money_off")
    lines = [f"  Rules:     {len(order)} tiers (members seen: {tiers}), {campaigns}, {total('pass_tickets')} pass "
             f"tickets ({total('passes_bought')} passes bought), {total('member_discounts')} member discounts, "
             f"{total('birthday_tickets')} birthday tickets; {sum(off.values()) / 100:,.2f} "
             f"{DEMO_RULES['currency']} off in all"]
    if bill:
        owed = ", ".join(f"{row['sponsor']} {row['points']:,} points ({row['money'] / 100:,.2f} "
                         f"{DEMO_RULES['currency']})" for row in bill)
        lines.append(f"  HQ bills:  {owed}, from the sales the hub holds")
    return lines


def fraud_line(cases: list[dict[str, Any]]) -> str:
    """What HQ's alert cases say at the end of the demo."""
    if not cases:
        return "  Fraud:     no alert case at HQ yet"
    codes: dict[str, int] = {}
    for case in cases:
        codes[case["code"]] = codes.get(case["code"], 0) + 1
    first = min(cases, key=lambda case: case["raised_at"])
    kinds = ", ".join(f"{code} {count}" for code, count in sorted(codes.items()))
    return (f"  Fraud:     {len(cases)} alert cases at HQ ({kinds}); the first: {first['summary']} "
            f"(site {first['site_id']}, cashier {first.get('cashier_id') or '-'}, card {first.get('card') or '-'})")
