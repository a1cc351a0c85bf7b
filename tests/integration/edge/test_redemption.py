"""Paying with points at the till, two-phase (docs/pos-protocol.md section 8), on a real journal: the
page's examples byte for byte, holds against the balance and the daily cap, lapse, cancel, late answers,
restarts, blocked cards; and a box that never takes a member below zero."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.agent import Agent
from protocol.events import Event
from tests.edge_support import fob
from tests.support.directory_pages import delta, entry, wire
from tests.support.pos_doc import example_json
from tests.support.redeeming import HUB, answer, payload, points_bundle, redeeming_agent, request

CARD = fob("67003B51C6")  # printed 0003887558: masked ******7558
NOW = 1_800_000_000.0


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    box = redeeming_agent(tmp_path)
    box.desk.wall = lambda: NOW
    yield box
    box.journal.close()
    box.directory.close()


def earn(agent: Agent, points: int, sale_id: str = "S-EARN", at: float = 1.0) -> None:
    """Give the card `points` by a sale earning 10 %."""
    agent.present_card("t1", CARD, now=at)
    body = answer(agent.handle_sale("t1", request("sale", sale_id, ticket=points * 10, popcorn=0), now=at + 0.1))
    assert body["loyalty"]["points"] == points


def events(agent: Agent, kind: str) -> list[Event]:
    return [event for event in agent.journal.read_events(from_seq=1, limit=1000) if event.type == kind]


def test_the_pages_examples_byte_for_byte(agent: Agent) -> None:
    earn(agent, 7500)
    agent.desk.hold_ids = lambda: "h0123456789abcdef"
    agent.present_card("t1", CARD, now=10.0)
    assert payload(agent.handle_sale("t1", example_json("redeem"), now=10.1)) == example_json("authorised")
    assert payload(agent.handle_sale("t1", example_json("sale-with-hold"), now=10.2)) == \
        example_json("answer-redeemed")
    assert payload(agent.handle_sale("t1", request("redeem", "S-000201", points=100), now=300.0)) == \
        example_json("declined")
    [held] = events(agent, "redemption.authorised")
    assert (held.payload["points"], held.payload["amount"], held.payload["hold_id"]) == (5000, 500, "h0123456789abcdef")
    [sale] = [event for event in events(agent, "sale.recorded") if event.payload["sale_id"] == "S-000200"]
    assert (sale.payload["loyalty"]["points_redeemed"], sale.payload["loyalty"]["amount_redeemed"]) == (5000, 500)


def test_a_cancelled_hold_frees_its_points_and_a_second_cancel_finds_nothing(agent: Agent) -> None:
    earn(agent, 1000)
    agent.present_card("t1", CARD, now=10.0)
    held = answer(agent.handle_sale("t1", request("redeem", "S-1", points=800), now=10.1))
    assert (held["status"], held["points"], held["balance"]) == ("authorised", 800, 200)
    # While it is held, those points cannot pay for another sale.
    agent.present_card("t1", CARD, now=11.0)
    other = answer(agent.handle_sale("t1", request("redeem", "S-2", points=800), now=11.1))
    assert (other["status"], other["points"]) == ("authorised", 200)
    assert answer(agent.handle_sale("t1", request("cancel", "S-1", hold_id=held["hold_id"]), now=12.0)) == {
        "type": "released", "sale_id": "S-1", "hold_id": held["hold_id"], "status": "released"}
    assert answer(agent.handle_sale("t1", request("cancel", "S-1", hold_id=held["hold_id"]), now=12.1))["status"] \
        == "unknown"
    agent.present_card("t1", CARD, now=13.0)
    again = answer(agent.handle_sale("t1", request("redeem", "S-3", points=800), now=13.1))
    assert (again["status"], again["points"]) == ("authorised", 800)
    assert [e.payload["reason"] for e in events(agent, "redemption.released")] == ["cancelled"]


def test_a_hold_never_confirmed_lapses_and_a_late_sale_pays_nothing(agent: Agent) -> None:
    earn(agent, 1000)
    agent.present_card("t1", CARD, now=10.0)
    held = answer(agent.handle_sale("t1", request("redeem", "S-1", points=500), now=10.1))
    assert held["expires_in_s"] == 300
    agent.desk.wall = lambda: NOW + 299
    assert agent.desk.expire_holds() == 0
    agent.desk.wall = lambda: NOW + 300
    assert agent.desk.expire_holds() == 1
    sold = answer(agent.handle_sale("t1", request("sale", "S-1", hold_id=held["hold_id"]), now=400.0))
    assert (sold["status"], sold["loyalty"]["redeemed"]) == ("ok", 0)
    assert "nothing redeemed" in sold["message"]
    assert [e.payload["reason"] for e in events(agent, "redemption.released")] == ["expired"]
    agent.present_card("t1", CARD, now=401.0)
    assert answer(agent.handle_sale("t1", request("redeem", "S-2", points=1000), now=401.1))["points"] == 1000


def test_the_offline_cap_bounds_what_one_member_redeems_in_a_day(tmp_path: Path) -> None:
    box = redeeming_agent(tmp_path, points_bundle(offline_daily_cap=3000))
    box.desk.wall = lambda: NOW
    earn(box, 9000)
    box.present_card("t1", CARD, now=10.0)
    first = answer(box.handle_sale("t1", request("redeem", "S-1", points=5000), now=10.1))
    assert (first["status"], first["points"]) == ("authorised", 3000)
    answer(box.handle_sale("t1", request("sale", "S-1", hold_id=first["hold_id"]), now=10.2))
    box.present_card("t1", CARD, now=11.0)
    second = answer(box.handle_sale("t1", request("redeem", "S-2", points=100), now=11.1))
    assert second["status"] == "declined" and "limit" in second["message"]
    box.journal.close()


def test_an_answer_too_late_for_the_till_never_costs_the_member_points(agent: Agent) -> None:
    earn(agent, 1000)
    agent.present_card("t1", CARD, now=10.0)
    late = answer(agent.handle_sale("t1", request("redeem", "S-1", points=500), now=10.1,
                                    received=time.perf_counter() - 0.6))
    assert (late["status"], late["hold_id"]) == ("error", None)
    assert len(agent.desk.holds) == 0 and events(agent, "redemption.released")[0].payload["reason"] == "late"

    agent.present_card("t1", CARD, now=11.0)
    held = answer(agent.handle_sale("t1", request("redeem", "S-2", points=500), now=11.1))
    captured_late = answer(agent.handle_sale("t1", request("sale", "S-2", hold_id=held["hold_id"]), now=11.2,
                                             received=time.perf_counter() - 0.6))
    assert (captured_late["status"], captured_late["loyalty"]["redeemed"]) == ("error", 0)
    # The till resends it: the same verdict, and the points are back.
    repeat = answer(agent.handle_sale("t1", request("sale", "S-2", hold_id=held["hold_id"]), now=11.3))
    assert (repeat["status"], repeat["loyalty"]["redeemed"]) == ("error", 0)
    [reversed_] = events(agent, "redemption.reversed")
    assert reversed_.payload["points"] == 500
    agent.present_card("t1", CARD, now=12.0)
    whole = answer(agent.handle_sale("t1", request("redeem", "S-3", points=100_000), now=12.1))
    # 1000 earned + the S-2 sale's 10 % of its money part (500 points paid 50 cents: 1200 + 650 -> 185)
    assert whole["points"] == 1180


def test_an_open_hold_survives_a_restart_and_is_captured_after_it(tmp_path: Path) -> None:
    box = redeeming_agent(tmp_path)
    earn(box, 2000)
    box.present_card("t1", CARD, now=10.0)
    held = answer(box.handle_sale("t1", request("redeem", "S-1", points=1500), now=10.1))
    box.journal.close()
    box.directory.close()
    again = redeeming_agent(tmp_path)
    assert again.desk.holds.held([held_token(again)]) == 1500
    sold = answer(again.handle_sale("t1", request("sale", "S-1", hold_id=held["hold_id"]), now=1.0))
    # 1500 points paid 150 cents of the ticket: 10 % of 1100 + 650 earned
    assert (sold["loyalty"]["redeemed"], sold["loyalty"]["balance"]) == (1500, 2000 - 1500 + 175)
    again.journal.close()


def held_token(agent: Agent) -> str:
    conn = sqlite3.connect(agent.journal.path)
    try:
        return str(conn.execute("SELECT card_token FROM holds").fetchone()[0])
    finally:
        conn.close()


def test_a_card_the_directory_says_is_blocked_earns_and_pays_nothing(agent: Agent) -> None:
    from protocol.cards import card_token
    from tests.edge_support import PEPPER

    token = card_token(PEPPER.encode(), CARD)
    page = delta(0, 1, [entry("x", balance=5000).model_copy(update={"token": token, "status": "blocked"})], key=HUB)
    assert agent.directory.offer(wire(page)) == "applied"
    agent.present_card("t1", CARD, now=10.0)
    declined = answer(agent.handle_sale("t1", request("redeem", "S-1", points=100), now=10.1))
    assert (declined["status"], declined["message"]) == ("declined", "this card is blocked")
    sold = answer(agent.handle_sale("t1", request("sale", "S-1"), now=10.2))
    assert (sold["loyalty"]["status"], sold["loyalty"]["points"]) == ("blocked", 0)


OPS = st.lists(st.tuples(st.sampled_from(["earn", "redeem", "capture", "cancel", "lapse"]),
                         st.integers(1, 3000)), min_size=1, max_size=14)


@given(OPS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
def test_one_box_never_takes_a_member_below_zero(tmp_path_factory: pytest.TempPathFactory,
                                                 ops: list[tuple[str, int]]) -> None:
    box = redeeming_agent(tmp_path_factory.mktemp("box"))
    clock = [NOW]
    box.desk.wall = lambda: clock[0]
    holds: list[tuple[str, str]] = []
    try:
        for n, (op, amount) in enumerate(ops):
            at = 10.0 + n
            if op == "earn":
                earn(box, amount, sale_id=f"E-{n}", at=at)
            elif op == "redeem":
                box.present_card("t1", CARD, now=at)
                held = answer(box.handle_sale("t1", request("redeem", f"S-{n}", points=amount), now=at + 0.1))
                if held["status"] == "authorised":
                    holds.append((f"S-{n}", held["hold_id"]))
            elif op in ("capture", "cancel") and holds:
                sale_id, hold_id = holds.pop(0)
                kind = "sale" if op == "capture" else "cancel"
                answer(box.handle_sale("t1", request(kind, sale_id, hold_id=hold_id), now=at))
            elif op == "lapse":
                clock[0] += 301
                box.desk.expire_holds()
            with box.journal.transaction() as tx:
                member = box.desk.member(tx, held_token_of(box))
            assert member.balance >= 0 and member.available >= 0, (op, member)
    finally:
        box.journal.close()
        box.directory.close()


def held_token_of(box: Agent) -> str:
    from protocol.cards import card_token
    from tests.edge_support import PEPPER

    return card_token(PEPPER.encode(), CARD)


def test_an_answer_resent_after_a_nak_too_late_for_the_till_gives_the_points_back(agent: Agent) -> None:
    from dataclasses import replace

    from edge.redeem import resend

    earn(agent, 1000)
    agent.present_card("t1", CARD, now=10.0)
    held = answer(agent.handle_sale("t1", request("redeem", "S-1", points=500), now=10.1))
    till = agent.desk.tills["t1"]
    till.last_answer = agent.handle_sale("t1", request("sale", "S-1", hold_id=held["hold_id"]), now=10.2)
    assert answer(till.last_answer)["loyalty"]["redeemed"] == 500
    assert resend(agent.desk, "t1") == till.last_answer  # a NAK in time: the same answer again
    # The till's NAK comes when a resend could no longer reach it within its 500 ms.
    assert till.redeeming is not None
    till.redeeming = replace(till.redeeming, started=time.perf_counter() - 0.6)
    again = answer(resend(agent.desk, "t1") or b"")
    assert (again["status"], again["loyalty"]["redeemed"]) == ("error", 0)
    assert [e.payload["points"] for e in events(agent, "redemption.reversed")] == [500]


def test_points_pay_only_in_the_programmes_currency(agent: Agent) -> None:
    earn(agent, 1000)
    agent.present_card("t1", CARD, now=10.0)
    declined = answer(agent.handle_sale("t1", request("redeem", "S-1", points=500, currency="USD"), now=10.1))
    assert (declined["status"], declined["message"]) == ("declined", "points pay in EUR, not USD")


def test_a_hold_the_final_sale_cannot_use_ends_unused_and_costs_nothing(agent: Agent) -> None:
    earn(agent, 1000)
    agent.present_card("t1", CARD, now=10.0)
    held = answer(agent.handle_sale("t1", request("redeem", "S-1", points=500), now=10.1))
    # The ticket turned out free (a voucher): only the popcorn costs money, and points may not pay for it.
    sold = answer(agent.handle_sale("t1", request("sale", "S-1", ticket=0, hold_id=held["hold_id"]), now=10.2))
    assert (sold["status"], sold["loyalty"]["redeemed"], sold["loyalty"]["balance"]) == ("ok", 0, 1065)
    assert [e.payload["reason"] for e in events(agent, "redemption.released")] == ["unused"]
    assert len(agent.desk.holds) == 0


def test_an_erased_members_card_is_forgotten_with_this_boxs_points_for_it(agent: Agent) -> None:
    from protocol.cards import card_token
    from tests.edge_support import PEPPER

    earn(agent, 700)
    token = card_token(PEPPER.encode(), CARD)
    assert agent.directory.offer(wire(delta(0, 1, removed=[token], key=HUB))) == "applied"
    agent.present_card("t1", CARD, now=10.0)
    declined = answer(agent.handle_sale("t1", request("redeem", "S-1", points=100), now=10.1))
    assert (declined["status"], declined["message"]) == ("declined", "the balance is too low")
