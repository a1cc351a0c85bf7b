"""What the chain's rules give at the till (docs/pos-protocol.md section 9), on a real journal and directory:
the page's example byte for byte, passes bought and used, the birthday ticket, the daily caps, and the time
rules a box applies while it cannot reach the hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from protocol.account import Account, PassState
from protocol.cards import card_token
from tests.edge_support import PEPPER, fob
from tests.support.directory_pages import delta, entry, wire
from tests.support.pos_doc import example_json
from tests.support.redeeming import HUB, answer, payload, redeeming_agent, request, rules_bundle

CARD = fob("67003B51C6")  # printed 0003887558: masked ******7558
MONDAY_EVENING = datetime(2026, 11, 23, 18, 0, tzinfo=UTC).timestamp()
GOLD_WITH_PASS = Account(
    as_of=datetime(2026, 11, 22, 12, tzinfo=UTC), lots={"2026-11": 3000}, tier="gold",
    activity={"2026-11": (12, 15000)}, lifetime_spend=15000, last_visit=datetime(2026, 11, 22).date(),
    first_seen=datetime(2026, 1, 2).date(),
    passes=(PassState(pass_id="cine-pass", valid_from=datetime(2026, 11, 11).date(),
                      valid_to=datetime(2026, 12, 10).date(), week="2026-W48", week_used=1),))


TOKEN = card_token(PEPPER.encode(), CARD)


def give(agent: Agent, version: int, **fields: Any) -> None:
    """The hub's directory entry for the card (this box's watermark 0)."""
    data = entry("card", member="m-gold", balance=fields.get("account", Account()).balance, **fields)
    assert agent.directory.offer(wire(delta(version - 1, version, [data.model_copy(update={"token": TOKEN})],
                                            key=HUB))) == "applied"


FAST_TILL = [{"till_id": "t1", "pos_port": "loop://", "pos_baudrate": 115200}]
"""Tills applying benefits need a line fast enough for the longer answer (docs/pos-protocol.md section 9)."""


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    box = redeeming_agent(tmp_path, rules_bundle(), tills=FAST_TILL)
    box.desk.wall = lambda: MONDAY_EVENING
    yield box
    box.journal.close()
    box.directory.close()


def sell(agent: Agent, body: bytes, at: float = 1.0) -> dict[str, Any]:
    agent.present_card("t1", CARD, now=at)
    result = answer(agent.handle_sale("t1", body, now=at + 0.1))
    assert result["status"] == "ok", result
    loyalty: dict[str, Any] = result["loyalty"]
    return loyalty


def test_the_pages_example_byte_for_byte_and_its_repeat_gets_the_same_money_off(agent: Agent) -> None:
    give(agent, 1, account=GOLD_WITH_PASS)
    agent.present_card("t1", CARD, now=1.0)
    assert payload(agent.handle_sale("t1", example_json("sale-benefits"), now=1.1)) == example_json("answer-benefits")
    again = answer(agent.handle_sale("t1", example_json("sale-benefits"), now=2.0))
    first = json.loads(example_json("answer-benefits"))["loyalty"]
    assert (again["loyalty"]["discount"], again["loyalty"]["benefits"]) == (first["discount"], first["benefits"])
    [sale] = [event for event in agent.journal.read_events(from_seq=1, limit=10) if event.type == "sale.recorded"]
    loyalty = sale.payload["loyalty"]
    assert (loyalty["discount"], loyalty["spend"], loyalty["tier"]) == (1315, 2500 + 650 - 1315, "gold")
    assert loyalty["pass_uses"] == [{"pass_id": "cine-pass", "uses": 1}]
    assert {"rule": "campaign:dune-double", "points": 125, "sponsor": "Legendary Pictures"} in loyalty["earned_by"]


def test_a_till_that_does_not_apply_benefits_gets_points_on_the_full_price_and_no_money_off(agent: Agent) -> None:
    give(agent, 1, account=GOLD_WITH_PASS)
    loyalty = sell(agent, request("sale", "S-1", benefits=False))
    # ticket 1250: 125 + gold 62 + campaign 125; popcorn 650: 32 + gold 16
    assert (loyalty["discount"], loyalty["benefits"], loyalty["points"]) == (0, [], 125 + 62 + 125 + 32 + 16)
    assert loyalty["passes"][0]["left_this_week"] == 1  # nothing used


def test_a_pass_bought_at_the_till_covers_one_film_a_day_and_two_a_week(agent: Agent) -> None:
    give(agent, 1, account=Account())
    bought = sell(agent, json.dumps({"type": "sale", "sale_id": "S-PASS", "till": "t1", "cashier": "c07",
                                     "currency": "EUR", "benefits": True, "items": [
                                         {"kind": "concession", "sku": "PASS-CINE", "description": "CinePass 30 days",
                                          "qty": 1, "price": 2990}]}).encode())
    assert bought["passes"] == [{"id": "cine-pass", "name": "CinePass", "left_this_week": 2, "left_today": 1,
                                 "valid_to": "2026-12-22"}]
    covered = sell(agent, request("sale", "S-2", benefits=True, popcorn=0), at=10.0)
    assert covered["benefits"] == [{"line": 0, "amount": 1250, "reason": "pass"}] and covered["points"] == 0
    assert covered["passes"][0]["left_today"] == 0
    paid = sell(agent, request("sale", "S-3", benefits=True, popcorn=0), at=20.0)
    assert paid["benefits"] == [] and paid["discount"] == 0 and paid["points"] > 0  # one a day: this one is paid
    agent.desk.wall = lambda: MONDAY_EVENING + 86_400  # Tuesday
    tuesday = sell(agent, request("sale", "S-4", benefits=True, popcorn=0), at=30.0)
    assert tuesday["benefits"][0]["reason"] == "pass" and tuesday["passes"][0]["left_this_week"] == 0
    agent.desk.wall = lambda: MONDAY_EVENING + 2 * 86_400
    assert sell(agent, request("sale", "S-5", benefits=True, popcorn=0), at=40.0)["benefits"] == []


def test_the_birthday_ticket_is_offered_in_the_birthday_week_and_given_once(agent: Agent) -> None:
    give(agent, 1, account=Account(), birthday="11-26")  # Thursday of this week
    told = sell(agent, request("sale", "S-1", benefits=False))
    assert told["birthday_reward"] == "available" and told["discount"] == 0
    used = sell(agent, request("sale", "S-2", benefits=True, ticket=1400), at=10.0)
    assert used["birthday_reward"] == "used"
    assert {"line": 0, "amount": 1400, "reason": "birthday"} in used["benefits"]
    later = sell(agent, request("sale", "S-3", benefits=True), at=20.0)
    assert later["birthday_reward"] is None and all(b["reason"] != "birthday" for b in later["benefits"])
    # What the rules count per sale (the birthday ticket's year, spend, passes) is sealed in the box's files.
    raw = b"".join(path.read_bytes() for path in agent.journal.path.parent.iterdir() if path.is_file())
    assert b"birthday_year" not in raw and b'"spend"' not in raw and b"passes_bought" not in raw


def test_a_birthday_next_week_is_not_offered_yet(agent: Agent) -> None:
    give(agent, 1, account=Account(), birthday="11-30")  # Monday of next week
    assert sell(agent, request("sale", "S-1", benefits=True))["birthday_reward"] is None


def test_the_daily_caps_stop_the_third_earning_sale_and_say_why(tmp_path: Path) -> None:
    box = redeeming_agent(tmp_path, rules_bundle(caps={"earning_sales_per_day": 2}), tills=FAST_TILL)
    box.desk.wall = lambda: MONDAY_EVENING
    try:
        give(box, 1, account=Account())
        first, second = (sell(box, request("sale", f"S-{n}", benefits=False), at=n * 10.0) for n in (1, 2))
        assert first["points"] > 0 and second["points"] > 0 and first["capped"] is None
        third = sell(box, request("sale", "S-3", benefits=False), at=30.0)
        assert (third["points"], third["capped"]) == (0, "earning is limited to 2 sales a day")
        box.desk.wall = lambda: MONDAY_EVENING + 86_400
        assert sell(box, request("sale", "S-4", benefits=False), at=40.0)["points"] > 0
    finally:
        box.journal.close()
        box.directory.close()


def test_a_box_cut_off_over_a_month_start_expires_the_old_lot_as_the_hub_will(agent: Agent) -> None:
    # The hub last folded the account on 30 October: October 2025's lot lasts through October 2026 (shelf 12)
    # and lapses on 1 November, local time, while the box cannot reach the hub.
    before = Account(as_of=datetime(2026, 10, 30, tzinfo=UTC), lots={"2025-10": 400, "2026-10": 1000},
                     first_seen=datetime(2025, 10, 3).date(), last_visit=datetime(2026, 10, 29).date())
    give(agent, 1, account=before)
    loyalty = sell(agent, request("sale", "S-1", benefits=False, popcorn=0))
    assert loyalty["balance"] == 1000 + loyalty["points"]
    with agent.journal.transaction() as tx:
        assert agent.desk.member(tx, TOKEN).account.lots == {"2026-10": 1000, "2026-11": loyalty["points"]}


def test_an_upgrade_at_the_box_counts_from_the_next_sale(agent: Agent) -> None:
    eleven = Account(as_of=datetime(2026, 11, 20, tzinfo=UTC), lots={"2026-11": 100},
                     activity={"2026-11": (11, 9000)}, tier="silver", last_visit=datetime(2026, 11, 20).date())
    give(agent, 1, account=eleven)
    assert sell(agent, request("sale", "S-1", benefits=True))["tier"]["id"] == "silver"  # the 12th visit
    assert sell(agent, request("sale", "S-2", benefits=True), at=10.0)["tier"]["id"] == "gold"


def test_a_sale_of_as_many_lines_as_a_frame_holds_gets_all_its_money_off_in_one_answer(agent: Agent) -> None:
    give(agent, 1, account=GOLD_WITH_PASS)
    lines = [{"kind": "concession", "sku": f"P{n}", "description": "P", "qty": 1, "price": 650} for n in range(55)]
    body = json.dumps({"type": "sale", "sale_id": "S-BIG", "till": "t1", "cashier": "c07", "currency": "EUR",
                       "benefits": True, "items": lines}, separators=(",", ":")).encode()
    assert len(body) <= 4096
    loyalty = sell(agent, body)
    assert loyalty["discount"] == 55 * 65 == sum(benefit["amount"] for benefit in loyalty["benefits"])


def test_at_9600_baud_an_answer_with_money_off_would_come_too_late_so_none_is_recorded(tmp_path: Path) -> None:
    box = redeeming_agent(tmp_path, rules_bundle())  # the till's line at the default 9600 baud
    box.desk.wall = lambda: MONDAY_EVENING
    try:
        give(box, 1, account=GOLD_WITH_PASS)
        box.present_card("t1", CARD, now=1.0)
        result = answer(box.handle_sale("t1", example_json("sale-benefits"), now=1.1))
        assert result["message"] == "the answer could not reach the till in time for the money off: none was given"
        loyalty = result["loyalty"]
        assert (loyalty["discount"], loyalty["benefits"], loyalty["to_pay"]) == (0, [], 2 * 1250 + 650)
        [sale] = [event for event in box.journal.read_events(from_seq=1, limit=10) if event.type == "sale.recorded"]
        assert (sale.payload["loyalty"]["discount"], sale.payload["loyalty"]["pass_uses"]) == (0, [])
    finally:
        box.journal.close()
        box.directory.close()


def test_points_held_before_a_pass_covered_a_ticket_pay_only_what_is_left_and_the_answer_says_so(
        agent: Agent) -> None:
    give(agent, 1, account=GOLD_WITH_PASS.model_copy(update={"lots": {"2026-11": 30000}}))
    agent.present_card("t1", CARD, now=1.0)
    two = request("redeem", "S-1", popcorn=0, points=25000)
    two = two.replace(b'"qty":1', b'"qty":2')
    held = answer(agent.handle_sale("t1", two, now=1.1))
    assert (held["status"], held["points"], held["amount"]) == ("authorised", 25000, 2500)
    sale = json.loads(two.replace(b'"type":"redeem"', b'"type":"sale"'))
    del sale["points"]
    sale.update(hold_id=held["hold_id"], benefits=True)
    loyalty = answer(agent.handle_sale("t1", json.dumps(sale).encode(), now=1.2))["loyalty"]
    # The pass took one ticket; the points pay the other: 12,500 points for 12.50, not the 25.00 authorised.
    assert (loyalty["discount"], loyalty["redeemed"], loyalty["redeemed_amount"], loyalty["to_pay"]) == \
        (1250, 12500, 1250, 0)
