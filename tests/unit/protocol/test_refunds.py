"""Refunds and supervisors' approvals on a member's account: a refund takes back the points a sale earned and
gives back the points it was paid with, pro rata of the money refunded (which closes the earn-then-refund
exploit); an approval credits a held sale's points as the sale would have; the fold counts both."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.account import Move, fold
from protocol.events import LoyaltyOutcome, SaleRecorded
from protocol.loyalty import RefundPoints, approval_move, refund_move, refund_points, sale_moves
from protocol.programme import ProgrammeRules
from protocol.staff import HoldDecided, SaleRefunded
from tests.unit.protocol.factories import PARIS, TOKEN, concession, paris, ticket

AT = paris(2026, 3, 9, 20)
SILVER = ProgrammeRules.model_validate({"tiers": {"levels": [
    {"tier_id": "regular", "name": "Regular"},
    {"tier_id": "silver", "name": "Silver", "min_visits": 6, "min_spend": 3000}]}})


def a_sale(*, total: int = 2500, status: str = "earned", earned: int = 250, redeemed: int = 0,
           amount_redeemed: int = 0, spend: int | None = None, held: int = 0) -> SaleRecorded:
    """Two tickets at 12.50 (or one line of `total`), with the loyalty outcome given."""
    items = [ticket(1250, qty=2)] if total == 2500 else [ticket(total)]
    return SaleRecorded(site_id="riverside", till_id="t1", cashier_id="c07", sale_id="S-1", currency="EUR",
                        items=items, total=total, card_token=TOKEN,
                        loyalty=LoyaltyOutcome(status=status, points_earned=earned, points_redeemed=redeemed,
                                               amount_redeemed=amount_redeemed, spend=spend, points_held=held))


@pytest.mark.parametrize(("sale", "amount", "expected"), [
    pytest.param(a_sale(), 1250, RefundPoints(125, 0, 1250), id="half-of-25.00-earning-250-takes-back-125"),
    pytest.param(a_sale(), 2500, RefundPoints(250, 0, 2500), id="the-whole-sale-takes-back-all-250"),
    pytest.param(a_sale(), 9999, RefundPoints(250, 0, 2500), id="more-than-the-sale-takes-back-no-more-than-250"),
    pytest.param(a_sale(), 1, RefundPoints(1, 0, 1), id="1-cent-of-2500-takes-back-0.1-rounded-up-to-1"),
    pytest.param(a_sale(), 0, RefundPoints(0, 0, 0), id="nothing-refunded-nothing-taken"),
    pytest.param(a_sale(total=1000, earned=101, redeemed=333, amount_redeemed=33), 500, RefundPoints(51, 166, 483),
                 id="half-of-101-earned-is-51-rounded-up-half-of-333-redeemed-is-166-rounded-down"),
    pytest.param(a_sale(total=1000, earned=100, spend=800), 250, RefundPoints(25, 0, 200),
                 id="a-quarter-of-800-spend-is-200"),
    pytest.param(a_sale(status="held", earned=0, held=250), 2500, RefundPoints(0, 0, 0),
                 id="a-held-sale-reverses-nothing"),
    pytest.param(a_sale(status="withheld", earned=0, redeemed=400, amount_redeemed=40), 1250, RefundPoints(0, 200, 0),
                 id="a-withheld-sale-reverses-nothing-but-gives-back-half-of-400-redeemed"),
    pytest.param(a_sale(status="blocked", earned=0), 2500, RefundPoints(0, 0, 0), id="a-blocked-card-nothing"),
    pytest.param(a_sale(redeemed=1000, amount_redeemed=100), 2500, RefundPoints(250, 1000, 2400),
                 id="a-void-reverses-all-earned-and-gives-back-all-redeemed"),
])
def test_a_refund_takes_back_and_gives_back_points_pro_rata(sale: SaleRecorded, amount: int,
                                                           expected: RefundPoints) -> None:
    assert refund_points(sale, amount) == expected


def test_a_held_sale_a_supervisor_approved_is_refunded_as_the_approval_credited() -> None:
    sale = a_sale(status="held", earned=0, held=250)
    approved = HoldDecided(site_id="riverside", till_id="t1", sale_id="S-1", sale_seq=4, supervisor_id="s1",
                           approved=True, card_token=TOKEN, points=250, spend=2500, visit=True)
    assert refund_points(sale, 1250, approval=approved) == RefundPoints(125, 0, 1250)
    refused = approved.model_copy(update={"approved": False})
    assert refund_points(sale, 1250, approval=refused) == RefundPoints(0, 0, 0)


def _in_parts(sale: SaleRecorded, parts: list[int]) -> list[RefundPoints]:
    """Refund `parts` one after another, as the box does: each knowing what the ones before took."""
    done, before, results = 0, RefundPoints(0, 0, 0), []
    for amount in parts:
        result = refund_points(sale, amount, before=before, refunded_before=done)
        results.append(result)
        done += amount
        before = RefundPoints(before.points_reversed + result.points_reversed,
                              before.points_returned + result.points_returned,
                              before.spend_reversed + result.spend_reversed)
    return results


@pytest.mark.parametrize(("parts", "reversed_each"), [
    # 1 cent of 10.00 earning 101 is 0.101 points: the first cent takes 1; the tenth brings the total to 1.01: 2.
    pytest.param([1] * 10, [1, 0, 0, 0, 0, 0, 0, 0, 0, 1], id="ten-refunds-of-1-cent-of-a-101-point-sale"),
    pytest.param([333, 333, 334], [34, 34, 33], id="thirds-of-1000-earning-101"),
    pytest.param([500, 500, 500], [51, 50, 0], id="a-third-refund-past-the-total-takes-nothing-more"),
])
def test_several_partial_refunds_take_back_what_one_refund_of_the_sum_does(parts: list[int],
                                                                           reversed_each: list[int]) -> None:
    sale = a_sale(total=1000, earned=101)
    results = _in_parts(sale, parts)
    assert [result.points_reversed for result in results] == reversed_each
    assert sum(reversed_each) == refund_points(sale, sum(parts)).points_reversed


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 50_000), earned=st.integers(0, 100_000), redeemed=st.integers(0, 100_000),
       cuts=st.lists(st.integers(0, 60_000), max_size=8))
def test_any_split_of_a_refund_sums_to_one_refund_and_never_exceeds_the_sale(total: int, earned: int,
                                                                             redeemed: int, cuts: list[int]) -> None:
    sale = a_sale(total=total, earned=earned, redeemed=redeemed, amount_redeemed=min(total, redeemed // 10))
    results = _in_parts(sale, cuts)
    once = refund_points(sale, sum(cuts))
    assert sum(result.points_reversed for result in results) == once.points_reversed <= earned
    assert sum(result.points_returned for result in results) == once.points_returned <= redeemed
    assert sum(result.spend_reversed for result in results) == once.spend_reversed
    assert all(min(result.points_reversed, result.points_returned, result.spend_reversed) >= 0 for result in results)


def refund(**fields: Any) -> SaleRefunded:
    base: dict[str, Any] = {"site_id": "riverside", "till_id": "t1", "cashier_id": "c07", "kind": "refund",
                            "refund_id": "R-1", "sale_id": "S-1", "original_till_id": "t1", "original_seq": 3,
                            "amount": 1250, "card_token": TOKEN}
    return SaleRefunded.model_validate({**base, **fields})


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({"points_reversed": 125, "spend_reversed": 1250}, (-125, -1250), id="125-taken-back-1250-spend"),
    pytest.param({"points_reversed": 125, "points_returned": 500}, (375, 0), id="500-given-back-less-125-taken"),
    pytest.param({"points_reversed": 0, "points_returned": 0, "spend_reversed": 0}, None, id="nothing-no-move"),
    pytest.param({"card_token": None, "points_reversed": 125}, None, id="no-card-no-move"),
])
def test_a_refund_event_makes_one_refund_move(fields: dict[str, Any], expected: tuple[int, int] | None) -> None:
    move = refund_move(refund(**fields), AT, ("box1", 9))
    if expected is None:
        assert move is None
    else:
        assert move is not None and (move.kind, move.points, move.spend, move.order) == ("refund", *expected,
                                                                                          ("box1", 9))
        assert (move.visit, move.earning_sale) == (False, False)


def decided(approved: bool, **fields: Any) -> HoldDecided:
    base: dict[str, Any] = {"site_id": "riverside", "till_id": "t1", "sale_id": "S-1", "sale_seq": 3,
                            "supervisor_id": "s1", "approved": approved, "card_token": TOKEN, "points": 250,
                            "spend": 2500, "visit": True}
    return HoldDecided.model_validate({**base, **fields})


def test_an_approval_credits_the_held_points_as_the_sale_would_have_and_a_refusal_nothing() -> None:
    assert approval_move(decided(True), AT, ("box1", 5)) == Move(
        at=AT, kind="approval", points=250, spend=2500, visit=True, earning_sale=True, order=("box1", 5))
    assert approval_move(decided(False), AT, ("box1", 5)) is None
    no_points = approval_move(decided(True, points=0), AT, ("box1", 5))
    assert no_points is not None and no_points.earning_sale is False


# --- the fold

def earn(at: datetime, points: int = 250, spend: int = 2500, seq: int = 1) -> Move:
    return Move(at=at, kind="earn", points=points, spend=spend, visit=True, earning_sale=True, order=("b", seq))


@pytest.mark.parametrize(("refund_spend", "balance", "spend"), [
    pytest.param(-1250, 125, 1250, id="half-refunded-125-points-1250-spend-left"),
    pytest.param(-2500, 0, 0, id="all-refunded-nothing-left"),
    pytest.param(-9000, 0, 0, id="spend-never-below-zero"),
])
def test_a_refund_takes_points_and_spend_back(refund_spend: int, balance: int, spend: int) -> None:
    points = -125 if refund_spend == -1250 else -250
    moves = [earn(AT), Move(at=AT + timedelta(hours=1), kind="refund", points=points, spend=refund_spend,
                            order=("b", 2))]
    account, _ = fold(moves, SILVER, PARIS)
    assert (account.balance, account.lifetime_spend, account.activity["2026-03"][1]) == (balance, spend, spend)
    assert account.activity["2026-03"][0] == 1  # the visit stays: the member came


def test_a_refund_giving_back_redeemed_points_adds_them_and_counts_no_visit_or_earning_sale() -> None:
    moves = [Move(at=AT, kind="earn", points=1000, order=("b", 1)),
             Move(at=AT, kind="redeem", points=-600, order=("b", 2)),
             Move(at=AT + timedelta(hours=1), kind="refund", points=300, spend=0, order=("b", 3))]
    account, _ = fold(moves, SILVER, PARIS)
    assert (account.balance, account.last_visit, account.day_sales) == (700, None, 0)


def test_an_approval_counts_a_visit_and_qualifies_for_a_tier_like_an_earn() -> None:
    start = paris(2026, 3, 2, 20)
    visits = [earn(start + timedelta(days=day), points=10, spend=100, seq=day) for day in range(5)]
    held = SaleRecorded(site_id="riverside", till_id="t1", cashier_id="c07", sale_id="S-9", currency="EUR",
                        items=[ticket(1250, qty=2), concession(650)], total=3150, card_token=TOKEN,
                        loyalty=LoyaltyOutcome(status="held", points_held=282))
    held_at = start + timedelta(days=6)
    assert sale_moves(held, held_at, ("b", 9)) == []  # held: nothing counted yet
    waiting, _ = fold(visits, SILVER, PARIS)
    assert (waiting.tier, waiting.balance) == (None, 50)
    approval = approval_move(decided(True, points=282, spend=3150), held_at + timedelta(minutes=2), ("b", 10))
    assert approval is not None
    account, effects = fold([*visits, approval], SILVER, PARIS)
    # The 6th visit, and 3,650 spent against the 3,000 silver needs: promoted at the approval.
    assert (account.tier, account.balance, account.last_visit) == ("silver", 332, date(2026, 3, 8))
    assert (account.day_sales, account.day_points) == (1, 282)
    assert [effect.kind for effect in effects] == ["tier"]
