"""Staff at the till and the fraud rules (docs/pos-protocol.md section 10), on a real journal and directory: the
page's examples byte for byte, the cashier's own card held, a supervisor's approval with their badge, sign-in
and out, refunds and voids taking points back pro rata, overrides, alerts raised once, and a restarted box
that remembers what the rules counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from protocol.blocklist import Blocklist
from protocol.cards import card_token
from protocol.directory import DirectoryPage
from protocol.fraud import CountLimit, FraudRules, PointsLimit, RedeemAfterEarning
from protocol.rules import RuleBundle
from protocol.signing import sign_blocklist, sign_directory_page
from protocol.staff import StaffEntry
from tests.edge_support import PEPPER, fob
from tests.support.directory_pages import entry, wire
from tests.support.pos_doc import example_json
from tests.support.redeeming import HUB, answer, payload, points_bundle, redeeming_agent, request

CARD = fob("67003B51C6")  # a member's card, printed ******7558
OWN = fob("1A00000001")  # the cashier c07's own membership card
BADGE_C07 = fob("3C00000007")
BADGE_SUP = fob("3C00000099")
TOKEN, OWN_TOKEN = card_token(PEPPER.encode(), CARD), card_token(PEPPER.encode(), OWN)
BADGE_C07_TOKEN, BADGE_SUP_TOKEN = card_token(PEPPER.encode(), BADGE_C07), card_token(PEPPER.encode(), BADGE_SUP)
EVENING = datetime(2026, 11, 23, 18, 0, tzinfo=UTC).timestamp()
STAFF = [StaffEntry(staff_id="c07", role="cashier", badges=[BADGE_C07_TOKEN], member_id="m-staff"),
         StaffEntry(staff_id="c08", role="cashier"),
         StaffEntry(staff_id="sup1", role="supervisor", badges=[BADGE_SUP_TOKEN]),
         StaffEntry(staff_id="gone", role="cashier", status="left")]


def fraud_bundle(**rules: Any) -> RuleBundle:
    """10 % of everything earned (a ticket of 1250 and a popcorn of 650 earn 190); points pay tickets."""
    return points_bundle().model_copy(update={"fraud": FraudRules(**rules)})


def directory(agent: Agent, *, balance: int = 350) -> None:
    page = DirectoryPage(kind="delta", version_from=0, version=1, staff=STAFF, entries=[
        entry("m", member="m-1", balance=balance).model_copy(update={"token": TOKEN}),
        entry("s", member="m-staff", balance=0).model_copy(update={"token": OWN_TOKEN})])
    assert agent.directory.offer(wire(sign_directory_page(page, HUB))) == "applied"


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Agent] = []

    def build(bundle: RuleBundle | None = None) -> Agent:
        box = redeeming_agent(tmp_path, bundle or fraud_bundle())
        box.desk.wall = lambda: EVENING
        made.append(box)
        return box

    yield build
    for box in made:
        box.journal.close()
        box.directory.close()


def staff(kind: str, **fields: Any) -> bytes:
    return json.dumps({"type": kind, "till": "t1", **fields}, separators=(",", ":")).encode()


def act(agent: Agent, body: bytes, at: float) -> dict[str, Any]:
    """The till's request `at` seconds into the evening (the box's clock and the till's both)."""
    agent.desk.wall = lambda: EVENING + at
    return answer(agent.handle_sale("t1", body, now=at))


def sell(agent: Agent, sale_id: str, card: Any = CARD, at: float = 1.0, **extra: Any) -> dict[str, Any]:
    agent.desk.wall = lambda: EVENING + at
    if card is not None:
        agent.present_card("t1", card, now=at)
    result = answer(agent.handle_sale("t1", request("sale", sale_id, fraud=True, **extra), now=at + 0.1))
    assert result["status"] == "ok", result
    return result


def events(agent: Agent, kind: str) -> list[dict[str, Any]]:
    return [event.payload for event in agent.journal.read_events(from_seq=1, limit=10_000) if event.type == kind]


def test_the_pages_held_sale_byte_for_byte_and_a_till_without_fraud_reads_it_unavailable(make: Any) -> None:
    agent = make(fraud_bundle(card_points_day=PointsLimit(limit=100, action="hold")))
    directory(agent)
    agent.present_card("t1", CARD, now=1.0)
    body = request("sale", "S-000410", fraud=True)
    assert payload(agent.handle_sale("t1", body, now=1.1)) == example_json("sale-held")
    agent.present_card("t1", CARD, now=5.0)
    old_till = answer(agent.handle_sale("t1", request("sale", "S-000411"), now=5.1))
    assert old_till["loyalty"] == {"status": "unavailable", "points": 0, "balance": 350}
    assert "fraud" not in old_till and old_till["message"].startswith("loyalty held for a supervisor")
    [held, _] = events(agent, "sale.recorded")
    assert held["loyalty"]["points_held"] == 190 and held["fraud"] == {"action": "hold", "reasons": ["card_points_day"]}


def test_at_the_limit_the_card_earns_above_it_the_loyalty_part_is_held(make: Any) -> None:
    agent = make(fraud_bundle(card_points_day=PointsLimit(limit=380, action="hold")))
    directory(agent, balance=0)
    assert sell(agent, "S-1")["loyalty"]["points"] == 190
    assert sell(agent, "S-2", at=10.0)["loyalty"]["points"] == 190  # 380: at the limit
    third = sell(agent, "S-3", at=20.0)
    assert third["loyalty"]["status"] == "held" and third["fraud"]["reasons"] == ["card_points_day"]
    assert sell(agent, "S-4", at=30.0)["loyalty"]["status"] == "held"
    # One alert for the card today, however many sales the rule held.
    [alert] = events(agent, "alert.raised")
    assert (alert["code"], alert["card_token"], alert["member_id"], alert["severity"]) == (
        "card_points_day", TOKEN, "m-1", "warning")
    assert alert["figures"] == {"points": 570, "limit": 380}


def test_the_cashiers_own_card_is_held_on_the_sales_they_ring_up_and_not_on_anothers(make: Any) -> None:
    agent = make()
    directory(agent, balance=0)
    mine = sell(agent, "S-1", card=OWN)  # cashier c07 rings up a sale on their own membership
    assert mine["loyalty"]["status"] == "held" and mine["fraud"]["reasons"] == ["staff_own_card"]
    agent.present_card("t1", OWN, now=10.0)
    other = answer(agent.handle_sale("t1", request("sale", "S-2", fraud=True, cashier="c08"), now=10.1))
    assert other["loyalty"]["status"] == "earned" and "fraud" not in other
    [alert] = events(agent, "alert.raised")
    assert (alert["code"], alert["staff_id"], alert["cashier_id"]) == ("staff_own_card", "c07", "c07")


def test_a_supervisor_approves_a_held_sale_with_their_badge_and_only_once(make: Any) -> None:
    agent = make()
    directory(agent, balance=0)
    sell(agent, "S-1", card=OWN)
    refused = act(agent, staff("approve", cashier="sup1", sale_id="S-1"), 2.0)
    assert refused["status"] == "refused" and "badge" in refused["message"]
    agent.present_card("t1", BADGE_C07, now=3.0)  # a cashier's badge does not approve
    assert act(agent, staff("approve", cashier="c07", sale_id="S-1"), 3.1)[
        "status"] == "refused"
    agent.present_card("t1", BADGE_SUP, now=4.0)
    approved = act(agent, staff("approve", cashier="sup1", sale_id="S-1"), 4.1)
    assert approved == {"type": "staff", "request": "approve", "status": "ok", "sale_id": "S-1", "points": 190}
    again = act(agent, staff("approve", cashier="sup1", sale_id="S-1"), 5.1)  # a resend: the same answer, once
    assert again == approved
    agent.present_card("t1", BADGE_SUP, now=6.0)
    other = act(agent, staff("approve", cashier="sup1", sale_id="S-1", approve=False), 6.1)
    assert other["status"] == "refused" and "decided already" in other["message"]
    [decided] = events(agent, "fraud.decided")
    assert (decided["supervisor_id"], decided["approved"], decided["points"]) == ("sup1", True, 190)
    # The badge was never taken for a member card, and the credited points are the member's.
    later = sell(agent, "S-2", card=OWN, at=20.0, cashier="c08")
    assert later["loyalty"]["balance"] == 190 + 190 and later["card"] == "******0001"


def test_sign_in_with_a_badge_sign_out_and_unknown_codes(make: Any) -> None:
    agent = make()
    directory(agent)
    agent.present_card("t1", BADGE_C07, now=1.0)
    assert act(agent, staff("signin", cashier="c07"), 1.1) == {
        "type": "staff", "request": "signin", "status": "ok"}
    assert act(agent, staff("signin", cashier="c08"), 2.0)["status"] == "ok"
    for code in ("nobody", "gone"):
        assert act(agent, staff("signin", cashier=code), 3.0)["status"] == "refused"
    assert act(agent, staff("signout", cashier="c07"), 4.0)["status"] == "refused"
    assert act(agent, staff("drawer", cashier="c08", reason="change"), 5.0)["status"] == "ok"
    signed_in = events(agent, "staff.signed_in")
    assert [(e["staff_id"], e["badge"], e["known"]) for e in signed_in] == [
        ("c07", True, True), ("c08", False, True), ("nobody", False, False), ("gone", False, False)]
    assert [(e["staff_id"], e["reason"]) for e in events(agent, "staff.signed_out")] == [
        ("c07", "replaced"), ("c08", "replaced"), ("c07", "signed_out")]
    assert events(agent, "till.drawer_opened")[0]["reason"] == "change"


def test_the_shift_limit_counts_from_the_cashiers_sign_in(make: Any) -> None:
    agent = make(fraud_bundle(card_points_shift=PointsLimit(limit=200, action="decline")))
    directory(agent, balance=0)
    assert sell(agent, "S-1")["loyalty"]["points"] == 190  # no shift open: the rule does not apply
    assert sell(agent, "S-2", at=5.0)["loyalty"]["points"] == 190
    act(agent, staff("signin", cashier="c07"), 6.0)
    assert sell(agent, "S-3", at=10.0)["loyalty"]["points"] == 190
    withheld = sell(agent, "S-4", at=20.0)
    assert withheld["loyalty"]["status"] == "withheld" and withheld["fraud"]["action"] == "decline"


def test_refunds_take_points_back_pro_rata_and_the_pages_example(make: Any) -> None:
    agent = make()
    directory(agent, balance=0)
    sell(agent, "S-000300")  # 1250 + 650 earns 190
    refund = act(agent, example_json("refund"), 5.0)
    assert json.dumps(refund, separators=(",", ":")).encode() == example_json("refund-answer")
    assert payload(agent.handle_sale("t1", example_json("refund"), now=6.0)) == example_json("refund-answer")
    too_much = staff("refund", refund_id="R-2", cashier="c07", sale_id="S-000300", currency="EUR", amount=1000)
    assert act(agent, too_much, 7.0)["status"] == "refused"  # 650 left
    void = act(agent, staff("void", cashier="c07", sale_id="S-000300"), 8.0)
    assert (void["status"], void["points_reversed"]) == ("ok", 190 - 125)
    assert act(agent, staff("void", cashier="c07", sale_id="S-000300"), 9.0)[
        "status"] == "ok"  # the same void again: the same answer
    refunds = events(agent, "sale.refunded")
    assert [(r["kind"], r["amount"], r["points_reversed"]) for r in refunds] == [("refund", 1250, 125),
                                                                               ("void", 650, 65)]
    assert sell(agent, "S-2", at=20.0)["loyalty"]["balance"] == 190  # 190 earned - 190 taken back + 190 now
    elsewhere = staff("refund", refund_id="R-9", cashier="c07", sale_id="S-NOT-HERE", currency="EUR", amount=500)
    unknown = act(agent, elsewhere, 30.0)
    assert unknown["status"] == "ok" and unknown["points_reversed"] == 0 and "no such sale" in unknown["message"]


def test_a_cashiers_refunds_and_overrides_above_the_rate_are_flagged_once(make: Any) -> None:
    agent = make(fraud_bundle(refund_rate=CountLimit(limit=1, minutes=60, action="flag"),
                              override_rate=CountLimit(limit=2, minutes=60, action="flag")))
    directory(agent, balance=0)
    for n in range(3):
        sell(agent, f"S-{n}", at=n * 10.0)
        body = staff("refund", refund_id=f"R-{n}", cashier="c07", sale_id=f"S-{n}", currency="EUR", amount=650)
        flagged = answer(agent.handle_sale("t1", body, now=n * 10.0 + 5))
        assert ("fraud" in flagged) == (n >= 1), flagged
    for n in range(3):
        result = answer(agent.handle_sale("t1", staff("override", cashier="c08", sale_id=f"S-{n}", amount=100,
                                                      reason="damaged"), now=50.0 + n))
        assert (result.get("fraud") or {}).get("reasons") == (["override_rate"] if n == 2 else None)
    alerts = events(agent, "alert.raised")
    assert sorted((a["code"], a["cashier_id"]) for a in alerts) == [("override_rate", "c08"), ("refund_rate", "c07")]


def test_a_blocklisted_card_earns_nothing_and_cannot_redeem(make: Any) -> None:
    agent = make(fraud_bundle(redeem_after_earning=RedeemAfterEarning(points=100, minutes=60)))
    directory(agent, balance=5000)
    listed = sign_blocklist(Blocklist(version=1, issued_at=datetime(2026, 11, 23, tzinfo=UTC), members=["m-1"]), HUB)
    assert agent.blocklist.offer(listed.model_dump_json(by_alias=True).encode())
    declined = sell(agent, "S-1")
    assert declined["loyalty"]["status"] == "withheld" and declined["fraud"]["reasons"] == ["blocklist"]
    agent.present_card("t1", CARD, now=10.0)
    redeem = answer(agent.handle_sale("t1", request("redeem", "S-2", points=1000, fraud=True), now=10.1))
    assert redeem["status"] == "declined" and redeem["fraud"]["reasons"][0] == "blocklist"


def test_a_restarted_box_remembers_what_the_rules_counted_today(make: Any, tmp_path: Path) -> None:
    agent = make(fraud_bundle(card_points_day=PointsLimit(limit=380, action="hold")))
    directory(agent, balance=0)
    sell(agent, "S-1")
    sell(agent, "S-2", at=10.0)
    assert sell(agent, "S-3", at=20.0)["loyalty"]["status"] == "held"
    assert len(events(agent, "alert.raised")) == 1
    agent.journal.close()
    agent.directory.close()
    again = make()  # the same data folder: the journal, the directory, the bundle it kept
    assert again.rules.current.fraud.card_points_day is not None
    assert sell(again, "S-4", at=30.0)["loyalty"]["status"] == "held"  # today's 570 points, counted again
    assert len(events(again, "alert.raised")) == 1  # raised before the restart: not again


def test_a_supervisor_cannot_approve_a_sale_they_rang_up(make: Any) -> None:
    agent = make(fraud_bundle(card_points_day=PointsLimit(limit=100, action="hold")))
    directory(agent)
    assert sell(agent, "S-1", cashier="sup1")["loyalty"]["status"] == "held"
    agent.present_card("t1", BADGE_SUP, now=5.0)
    refused = act(agent, staff("approve", cashier="sup1", sale_id="S-1"), 5.1)
    assert refused["status"] == "refused" and "rang up" in refused["message"]
    assert events(agent, "fraud.decided") == []


def test_any_cashier_code_the_till_sends_gets_its_sale_and_its_alert(make: Any) -> None:
    agent = make(fraud_bundle(card_points_day=PointsLimit(limit=100, action="hold")))
    directory(agent)
    held = sell(agent, "S-1", cashier="Anne 7")  # not a staff code: the sale still stands, and its alert
    assert held["loyalty"]["status"] == "held"
    [alert] = events(agent, "alert.raised")
    assert alert["cashier_id"] == "Anne 7"


def test_a_refund_after_an_approval_takes_back_what_the_approval_credited_pro_rata(make: Any) -> None:
    agent = make(fraud_bundle(card_points_day=PointsLimit(limit=100, action="hold")))
    directory(agent, balance=0)
    sell(agent, "S-1")  # 1900 held: 190 points wait
    half = staff("refund", refund_id="R-1", cashier="c07", sale_id="S-1", currency="EUR", amount=950)
    assert act(agent, half, 2.0)["points_reversed"] == 0  # nothing was credited yet
    agent.present_card("t1", BADGE_SUP, now=3.0)
    assert act(agent, staff("approve", cashier="sup1", sale_id="S-1"), 3.1)["points"] == 95  # for the 950 kept
    quarter = staff("refund", refund_id="R-2", cashier="c07", sale_id="S-1", currency="EUR", amount=475)
    assert act(agent, quarter, 4.0)["points_reversed"] == 48  # half of what the approval was for: 95 / 2, up
    rest = staff("refund", refund_id="R-3", cashier="c07", sale_id="S-1", currency="EUR", amount=475)
    assert act(agent, rest, 5.0)["points_reversed"] == 47
    wrong = staff("refund", refund_id="R-4", cashier="c07", sale_id="S-1", currency="USD", amount=1)
    assert act(agent, wrong, 6.0)["status"] == "refused"


def test_a_refused_sign_in_opens_no_shift_before_or_after_a_restart(make: Any) -> None:
    agent = make(fraud_bundle(card_points_shift=PointsLimit(limit=200, action="decline")))
    directory(agent, balance=0)
    assert act(agent, staff("signin", cashier="nobody"), 1.0)["status"] == "refused"
    assert sell(agent, "S-1", at=2.0)["loyalty"]["status"] == "earned"
    assert sell(agent, "S-2", at=3.0)["loyalty"]["status"] == "earned"  # 380 in no shift: the rule is off
    agent.journal.close()
    agent.directory.close()
    again = make()
    assert sell(again, "S-3", at=4.0)["loyalty"]["status"] == "earned"
