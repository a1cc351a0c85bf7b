"""A member's account over time: tiers and their reviews, expiry by lot, inactivity burn, the monthly bonus; and
properties: expiry is first in, first out and blind to the order of same-time events; the balance never goes
negative when a box authorises every redemption against the balance it folded."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.account import Account, Move, fold
from protocol.calendar import add_months, local_day, month_key, month_starts, start_of_month
from protocol.programme import ProgrammeRules
from tests.unit.protocol.factories import PARIS, paris, rules_bundle, sell, ticket


def rules(**fields: Any) -> ProgrammeRules:
    return ProgrammeRules.model_validate(fields)


def visit(at: datetime, points: int = 100, spend: int = 1000, device: str = "box1", seq: int = 0) -> Move:
    return Move(at=at, kind="earn", points=points, spend=spend, visit=True, earning_sale=points > 0,
                order=(device, seq or int(at.timestamp())))


def redeem(at: datetime, points: int, seq: int = 0) -> Move:
    return Move(at=at, kind="redeem", points=-points, order=("box1", seq or int(at.timestamp())))


def account(moves: list[Move], programme: ProgrammeRules, until: datetime | None = None) -> Account:
    return fold(moves, programme, PARIS, until=until)[0]


LEVELS: list[dict[str, Any]] = [{"tier_id": "regular", "name": "Regular"},
                                {"tier_id": "silver", "name": "Silver", "min_visits": 6, "min_spend": 10_000}]


@pytest.mark.parametrize(
    ("moves", "tier"),
    [
        pytest.param([visit(paris(2026, 3, day, 20)) for day in range(1, 6)], "regular", id="5-visits-stays-regular"),
        pytest.param([visit(paris(2026, 3, day, 20)) for day in range(1, 7)], "silver",
                     id="silver-at-exactly-6-visits"),
        pytest.param([visit(paris(2026, 3, day, hour)) for day in range(1, 4) for hour in (14, 20)], "regular",
                     id="6-sales-on-3-days-are-3-visits-regular"),
        pytest.param([visit(paris(2026, 3, 1, 23, 30)), visit(paris(2026, 3, 2, 0, 10))]
                     + [visit(paris(2026, 3, day, 20)) for day in range(3, 7)], "silver",
                     id="23h30-and-00h10-paris-are-2-local-days-silver"),
        pytest.param([Move(at=paris(2026, 3, day, 20), kind="earn", points=10, spend=100, order=("b", day))
                      for day in range(1, 10)], "regular", id="9-popcorn-only-days-are-no-visits"),
        pytest.param([visit(paris(2026, 3, 1, 20), spend=9_999)], "regular", id="9999-spent-stays-regular"),
        pytest.param([visit(paris(2026, 3, 1, 20), spend=10_000)], "silver", id="silver-at-exactly-10000-spent"),
    ],
)
def test_a_member_moves_up_as_soon_as_the_window_reaches_a_threshold(moves: list[Move], tier: str) -> None:
    assert (account(moves, rules(tiers={"levels": LEVELS})).tier or "regular") == tier


THREE = [{"tier_id": "regular", "name": "Regular"}, {"tier_id": "silver", "name": "Silver", "min_visits": 3},
         {"tier_id": "gold", "name": "Gold", "min_visits": 6}]
GOLD_IN_JANUARY = [visit(paris(2026, 1, day, 20)) for day in range(1, 7)]


@pytest.mark.parametrize(
    ("tiers", "moves", "expected"),
    [
        pytest.param({"window_months": 1, "review": "monthly"}, GOLD_IN_JANUARY,
                     [("2026-02", "gold"), ("2026-03", "silver"), ("2026-04", "regular")],
                     id="monthly-one-level-gold-silver-regular"),
        pytest.param({"window_months": 1, "review": "monthly", "demotion": "to_qualified"}, GOLD_IN_JANUARY,
                     [("2026-02", "gold"), ("2026-03", "regular")], id="monthly-to-qualified-gold-to-regular"),
        pytest.param({"window_months": 1, "review": "monthly", "demotion": "to_qualified"},
                     GOLD_IN_JANUARY + [visit(paris(2026, 2, day, 20)) for day in (2, 3, 4)],
                     [("2026-03", "silver")], id="monthly-to-qualified-3-february-visits-silver"),
        pytest.param({"window_months": 1, "review": "quarterly"}, GOLD_IN_JANUARY,
                     [("2026-02", "gold"), ("2026-03", "gold"), ("2026-04", "silver"), ("2026-06", "silver"),
                      ("2026-07", "regular")], id="quarterly-reviews-on-1-apr-and-1-jul-only"),
        pytest.param({"window_months": 12}, GOLD_IN_JANUARY,
                     [("2026-12", "gold"), ("2027-01", "gold"), ("2027-12", "gold"), ("2028-01", "silver")],
                     id="yearly-on-1-jan-12-month-window-keeps-gold-a-year"),
        pytest.param({"window_months": 1, "review_day": "04-01"}, GOLD_IN_JANUARY,
                     [("2026-03", "gold"), ("2026-04", "silver"), ("2027-03", "silver"), ("2027-04", "regular")],
                     id="yearly-on-1-apr-only"),
        pytest.param({"window_months": 3, "review": "monthly", "demotion": "to_qualified"}, GOLD_IN_JANUARY,
                     [("2026-04", "gold"), ("2026-05", "regular")], id="window-3-january-counts-on-1-apr-not-1-may"),
        pytest.param({"window_months": 3, "review": "monthly", "demotion": "to_qualified"},
                     [visit(paris(2026, 1, day, 20)) for day in (5, 6, 7)]
                     + [visit(paris(2026, 3, day, 20)) for day in (5, 6, 7)],
                     [("2026-04", "gold"), ("2026-05", "silver"), ("2026-06", "silver"), ("2026-07", "regular")],
                     id="window-3-jan-and-mar-gold-then-mar-alone-silver-to-1-jun"),
    ],
)
def test_reviews_and_demotion(tiers: dict[str, Any], moves: list[Move], expected: list[tuple[str, str]]) -> None:
    programme = rules(tiers={"levels": THREE, **tiers})
    for month, tier in expected:
        assert account(moves, programme, start_of_month(month, PARIS)).tier == tier, f"at the start of {month}"


EXPIRY = rules(expiry={"shelf_life_months": 12})


@pytest.mark.parametrize(
    ("earned_at", "until", "balance"),
    [
        pytest.param(paris(2026, 1, 15), paris(2027, 1, 31, 23, 59, 59), 100, id="jan-lot-shelf-12-still-there-31-jan"),
        pytest.param(paris(2026, 1, 15), paris(2027, 2, 1), 0, id="jan-lot-shelf-12-lapses-at-local-1-feb-next-year"),
        pytest.param(paris(2026, 1, 31, 23, 30), paris(2027, 2, 1), 0, id="31-jan-23h30-paris-is-a-january-lot"),
        pytest.param(paris(2026, 2, 1, 0, 30), paris(2027, 2, 1), 100, id="1-feb-00h30-paris-is-a-february-lot"),
        pytest.param(paris(2026, 2, 1, 0, 30), paris(2027, 3, 1), 0, id="february-lot-lapses-1-mar-next-year"),
    ],
)
def test_a_lot_lapses_at_the_start_of_its_shelf_life_end(earned_at: datetime, until: datetime, balance: int) -> None:
    assert account([visit(earned_at)], EXPIRY, until).balance == balance


def test_an_expiry_is_one_effect_naming_the_lot_at_local_midnight() -> None:
    _, effects = fold([visit(paris(2026, 1, 15))], EXPIRY, PARIS, until=paris(2027, 6, 1))
    assert [(e.kind, e.at, e.points, e.detail) for e in effects] == [("expiry", paris(2027, 2, 1), -100, "2026-01")]


def test_a_redemption_takes_the_oldest_lot_first() -> None:
    moves = [visit(paris(2026, 1, 15)), visit(paris(2026, 2, 15)), redeem(paris(2026, 3, 15), 150)]
    assert account(moves, EXPIRY).lots == {"2026-02": 50}
    assert account(moves, EXPIRY, paris(2027, 2, 1)).balance == 50  # the January lot was already spent
    assert account(moves, EXPIRY, paris(2027, 3, 1)).balance == 0


def test_points_taken_beyond_the_lots_are_debt_the_next_points_pay_first() -> None:
    moves = [visit(paris(2026, 1, 15)), redeem(paris(2026, 1, 16), 130), visit(paris(2026, 2, 15))]
    after = account(moves, EXPIRY)
    assert (after.debt, after.lots, after.balance) == (0, {"2026-02": 70}, 70)
    assert account(moves[:2], EXPIRY).debt == 30


BURN = rules(burn={"inactive_days": 30})


@pytest.mark.parametrize(
    ("moves", "until", "balance"),
    [
        pytest.param([visit(paris(2026, 1, 1, 20))], paris(2026, 1, 31, 23, 59, 59), 100,
                     id="visit-1-jan-30-days-without-one-by-31-jan-kept"),
        pytest.param([visit(paris(2026, 1, 1, 20))], paris(2026, 2, 1), 0,
                     id="visit-1-jan-burnt-at-local-1-feb-after-30-whole-days"),
        pytest.param([visit(paris(2026, 1, 1, 20))], paris(2026, 3, 1), 0, id="visit-1-jan-gone-by-1-mar"),
        pytest.param([visit(paris(2026, 1, 1, 20)), visit(paris(2026, 1, 31, 20))], paris(2026, 3, 1), 200,
                     id="a-visit-on-31-jan-moves-the-burn-to-3-mar"),
        pytest.param([visit(paris(2026, 1, 1, 20)), visit(paris(2026, 1, 31, 20))], paris(2026, 3, 3), 0,
                     id="visit-31-jan-burnt-at-local-3-mar"),
        pytest.param([Move(at=paris(2026, 1, 1, 20), kind="earn", points=100, order=("b", 1))], paris(2026, 2, 1), 0,
                     id="no-visit-ever-counts-from-the-first-sale"),
    ],
)
def test_inactivity_burns_every_lot(moves: list[Move], until: datetime, balance: int) -> None:
    assert account(moves, BURN, until).balance == balance


BONUS = rules(monthly_bonus={"min_visits": 4, "points": 500})


@pytest.mark.parametrize(
    ("visits", "until", "balance"),
    [
        pytest.param(4, paris(2026, 1, 31, 23, 59, 59), 400, id="4-visits-nothing-before-the-month-ends"),
        pytest.param(4, paris(2026, 2, 1), 900, id="4-visits-min-4-pays-500-at-local-1-feb"),
        pytest.param(5, paris(2026, 2, 1), 1000, id="5-visits-pays-500"),
        pytest.param(3, paris(2026, 2, 1), 300, id="3-visits-pays-nothing"),
        pytest.param(4, paris(2026, 3, 1), 900, id="paid-once-not-again-on-1-mar"),
    ],
)
def test_the_monthly_bonus(visits: int, until: datetime, balance: int) -> None:
    moves = [visit(paris(2026, 1, 10 + day, 20)) for day in range(visits)]
    after = account(moves, BONUS, until)
    assert after.balance == balance
    if balance - 100 * visits:
        assert after.lots["2026-02"] == 500


# --- Properties -----------------------------------------------------------------------------------------------

INSTANTS = [paris(2026, 1, 31, 23, 30), paris(2026, 2, 1, 0, 0), paris(2026, 2, 14, 20), paris(2026, 3, 31, 23),
            paris(2026, 4, 1, 10), paris(2026, 5, 20, 20), paris(2026, 7, 1)]
MOVES = st.lists(st.tuples(st.sampled_from(INSTANTS), st.booleans(), st.integers(1, 400)), min_size=1, max_size=14)


def _moves(drawn: list[tuple[datetime, bool, int]]) -> list[Move]:
    return [visit(at, points, device=f"box{n % 3}", seq=n + 1) if earns
            else redeem(at, points, seq=n + 1) for n, (at, earns, points) in enumerate(drawn)]


@settings(max_examples=150, deadline=None)
@given(MOVES, st.integers(1, 3), st.randoms(use_true_random=False))
def test_fold_is_fifo_and_blind_to_the_order_of_same_time_events(drawn: list[tuple[datetime, bool, int]],
                                                                 shelf: int, rng: random.Random) -> None:
    programme = rules(expiry={"shelf_life_months": shelf}, tiers={"levels": LEVELS})
    moves = _moves(drawn)
    until = paris(2026, 7, 1, 12)
    reference, effects = fold(moves, programme, PARIS, until=until)
    shuffled = rng.sample(moves, len(moves))
    assert fold(shuffled, programme, PARIS, until=until)[0] == reference
    # Another tie-break between events at the same instant (other devices, other seqs) gives the same account.
    labels = rng.sample([move.order for move in moves], len(moves))
    relabelled = [Move(at=m.at, kind=m.kind, points=m.points, spend=m.spend, visit=m.visit,
                       earning_sale=m.earning_sale, order=label) for m, label in zip(moves, labels, strict=True)]
    assert fold(relabelled, programme, PARIS, until=until)[0] == reference
    # What expires is what is left of the oldest lots: a plain ledger of lots, spent oldest first, agrees.
    expired, left, debt = _ledger(moves, shelf, until)
    assert [-e.points for e in effects if e.kind == "expiry"] == expired
    assert (reference.lots, reference.debt) == (left, debt)
    for effect in effects:
        if effect.kind == "expiry":
            assert all(lot <= add_months(month_key(local_day(effect.at, PARIS)), -shelf - 1)
                       for lot in effect.detail.split(","))


def _ledger(moves: list[Move], shelf: int, until: datetime) -> tuple[list[int], dict[str, int], int]:
    """Expiries, lots and debt by hand: at each local month start the lots `shelf` + 1 months old lapse; at each
    instant points added go before points taken, which empty the oldest lots first."""
    lots: dict[str, int] = {}
    debt, expired = 0, []
    instants = sorted({move.at for move in moves})
    for previous, at in zip([None, *instants], [*instants, until], strict=True):
        for start in month_starts(previous, at, PARIS) if previous is not None else []:
            cutoff = add_months(month_key(local_day(start, PARIS)), -shelf - 1)
            if gone := sum(points for month, points in lots.items() if month <= cutoff):
                expired.append(gone)
            lots = {month: points for month, points in lots.items() if month > cutoff}
        for move in sorted((m for m in moves if m.at == at), key=lambda m: m.points < 0):
            if move.points > 0:
                paid = min(debt, move.points)
                debt -= paid
                month = month_key(local_day(move.at, PARIS))
                lots[month] = lots.get(month, 0) + move.points - paid
                continue
            want = -move.points
            for month in sorted(lots):
                take = min(want, lots[month])
                lots[month] -= take
                want -= take
            debt += want
    return expired, {month: points for month, points in sorted(lots.items()) if points}, debt


STEPS = st.lists(st.tuples(st.integers(1, 60 * 24 * 20), st.booleans(), st.integers(200, 3000),
                           st.floats(0.0, 1.0)), min_size=1, max_size=18)


@settings(max_examples=80, deadline=None)
@given(STEPS)
def test_the_balance_never_goes_negative_when_every_redemption_is_authorised(
        steps: list[tuple[int, bool, int, float]]) -> None:
    bundle = rules_bundle(expiry={"shelf_life_months": 1}, burn={"inactive_days": 10},
                          monthly_bonus={"min_visits": 2, "points": 50},
                          tiers={"levels": [*LEVELS[:1], {**LEVELS[1], "bonus_percent": 50}]})
    moves: list[Move] = []
    at = paris(2026, 1, 20, 12)
    for minutes, earns, price, share in steps:
        at += timedelta(minutes=minutes)
        balance = fold(moves, bundle, PARIS, until=at)[0].balance
        wanted = int(balance * share)
        sell(bundle, moves, [ticket(price)], at, capture=(wanted, wanted) if not earns and wanted else None)
        now = fold(moves, bundle, PARIS, until=at)[0]
        assert now.balance >= 0 and now.debt == 0
    final = fold(moves, bundle, PARIS, until=at + timedelta(days=400))[0]
    assert final.balance == 0 and final.debt == 0  # burnt or expired, never below zero
