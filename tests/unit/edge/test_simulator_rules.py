"""The simulated tills speak POS v1.2 (benefits asked for, formats, categories, the pass sold now and then) and
count what the answers showed; the demo's CRM export gives some members a birthday this week."""

from __future__ import annotations

import csv
import importlib.util
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType

from edge.devices import pos
from edge.simulator.catalogue import PASS_SKU, TICKETS, programme, sale_request
from edge.simulator.stats import RulesTally, SimStats
from protocol.calendar import birthday_week

ROOT = Path(__file__).resolve().parents[3]


def test_sale_requests_ask_for_benefits_and_carry_formats_and_categories() -> None:
    rng = random.Random(3)
    showings = programme(rng)
    requests = [sale_request(rng, showings, sale_id=f"S-{n}", till_id="t1", currency="EUR") for n in range(200)]
    assert all(request.benefits is True for request in requests)
    tickets = [item for request in requests for item in request.items if item.kind == "ticket"]
    assert {item.sku: item.format for item in tickets} == {sku: ticket.format for sku, ticket in TICKETS.items()}
    assert {item.format for item in tickets if item.sku == "TKT-PRM"} == {"premium"}
    concessions = [item for request in requests for item in request.items if item.kind == "concession"]
    assert {item.category for item in concessions} == {"popcorn", "drinks", "snacks", "combo"}
    assert not any(item.sku == PASS_SKU for item in concessions)


def test_a_member_buying_the_pass_gets_it_as_a_concession_line() -> None:
    rng = random.Random(3)
    request = sale_request(rng, programme(rng), sale_id="S-1", till_id="t1", currency="EUR", buys_pass=True)
    line = request.items[-1]
    assert (line.kind, line.sku, line.description, line.price, line.qty) == (
        "concession", "PASS-CINE", "CinePass 30 days", 2990, 1)


def answer(**loyalty: object) -> pos.Loyalty:
    return pos.Loyalty.model_validate({"status": "earned", "points": 10, "earned_by": [], "benefits": [], **loyalty})


def test_the_tally_counts_money_off_campaigns_and_each_members_latest_tier_once() -> None:
    rng = random.Random(5)
    request = sale_request(rng, programme(rng), sale_id="S-1", till_id="t1", currency="EUR")
    price = request.items[0].price
    stats = SimStats()
    tally = RulesTally(stats)
    tally.count(request, answer(
        earned_by=[{"rule": "tickets", "points": 100}, {"rule": "campaign:launch", "points": 100},
                   {"rule": "tier:silver", "points": 25}, {"rule": "daypart:matinee", "points": 50}],
        benefits=[{"line": 0, "amount": price, "reason": "pass"}, {"line": None, "amount": 30, "reason": "member"}],
        tier={"id": "silver", "name": "Silver"}, birthday_reward="available", capped="limited"), "card-a")
    tally.count(request, answer(earned_by=[{"rule": "campaign:launch", "points": 20}],
                                tier={"id": "silver", "name": "Silver"}), "card-a")
    tally.count(request, answer(tier={"id": "gold", "name": "Gold"}, birthday_reward="used",
                                benefits=[{"line": 0, "amount": price, "reason": "birthday"}]), "card-a")
    tally.count(request, answer(tier={"id": "regular", "name": "Regular"}), "card-b")
    assert stats.campaign_points == {"launch": 120}
    assert (stats.tier_points, stats.daypart_points, stats.capped) == (25, 50, 1)
    assert stats.money_off == {"pass": price, "member": 30, "birthday": price}
    assert (stats.pass_tickets, stats.member_discounts, stats.birthday_tickets) == (1, 1, 1)  # "available": offered
    assert stats.tiers_seen == {"gold": 1, "regular": 1}  # card-a was silver, then gold: counted once, as gold
    snapshot = stats.snapshot()
    tally.count(request, answer(tier={"id": "silver", "name": "Silver"}), "card-b")
    assert snapshot.tiers_seen == {"gold": 1, "regular": 1} and stats.tiers_seen == {"gold": 1, "silver": 1}


def demo_members() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_members", ROOT / "deploy" / "demo_members.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demos_crm_export_gives_some_members_a_birthday_this_week(tmp_path: Path) -> None:
    today = date(2026, 12, 31)  # a Thursday: its ISO week runs into January
    export = tmp_path / "crm.csv"
    rows = demo_members().write_members_csv(export, [10, 11, 20], today=today)
    with export.open(encoding="utf-8") as file:
        born = [datetime.strptime(row["Date of birth"], "%d.%m.%Y").date() for row in csv.DictReader(file)]
    assert len(born) == rows > 50
    this_week = [day for day in born if birthday_week(today, f"{day.month:02d}-{day.day:02d}")]
    assert 0.05 * rows < len(this_week) < 0.3 * rows
    assert all(day < today - timedelta(days=365 * 18) for day in born)  # adults, none born in the future
