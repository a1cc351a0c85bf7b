"""The rule bundle: what HQ signs is what a box runs, and the points are the same on both sides."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.events import LineItem
from protocol.pricing import price_sale
from protocol.rules import Earning, Redemption, RuleBundle, default_bundle
from protocol.signing import sign_bundle, verify_bundle

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HUB = Ed25519PrivateKey.generate()


def bundle(**fields: object) -> RuleBundle:
    base: dict[str, object] = {
        "version": 3, "published_at": T0, "currency": "EUR",
        "earning": [
            {"rule_id": "tickets", "kind": "ticket", "basis_points": 1000},
            {"rule_id": "premium", "kind": "ticket", "skus": ["TKT-PRM"], "basis_points": 2000},
            {"rule_id": "bar", "kind": "concession", "basis_points": 500},
        ],
        "redemption": {"enabled": True, "kinds": ["ticket"], "points_per_unit": 10, "offline_daily_cap": 5000},
    }
    base.update(fields)
    return RuleBundle.model_validate(base)


def points_earned(rules: RuleBundle, items: list[LineItem]) -> tuple[int, tuple[str, ...]]:
    """Points a member of the default programme earns for `items`, and the rules that gave them."""
    decision = price_sale(rules, None, None, items, at=T0, site_id="riverside")
    return decision.points, tuple(part.rule for part in decision.earned_by)


def ticket(sku: str, price: int, qty: int = 1) -> LineItem:
    return LineItem(kind="ticket", sku=sku, film="Harbour of Glass", hall="h1", showtime=T0, quantity=qty,
                    unit_price=price)


def test_a_sku_rule_wins_over_its_kinds_rule_and_lines_round_down_each() -> None:
    items = [ticket("TKT-STD", 1250, 2), ticket("TKT-PRM", 1599),
             LineItem(kind="concession", sku="POP-L", description="Popcorn L", unit_price=650)]
    # 2500 * 10 % = 250; 1599 * 20 % = 319.8 -> 319; 650 * 5 % = 32.5 -> 32
    assert points_earned(bundle(), items) == (250 + 319 + 32, ("tickets", "premium", "bar"))


def test_items_no_rule_covers_earn_nothing() -> None:
    only_tickets = bundle(earning=[{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}])
    popcorn = LineItem(kind="concession", sku="POP-L", description="Popcorn L", unit_price=650)
    assert points_earned(only_tickets, [popcorn]) == (0, ())


def test_the_default_only_earns_and_never_lets_points_be_spent() -> None:
    default = default_bundle("EUR", T0)
    assert default.version == 0 and not default.redemption.enabled
    assert points_earned(default, [ticket("TKT-STD", 1250)]) == (125, ("default-tickets",))


@pytest.mark.parametrize(
    ("earning", "complaint"),
    [
        ([{"rule_id": "a", "kind": "ticket", "basis_points": 1}, {"rule_id": "a", "kind": "concession",
                                                                  "basis_points": 1}], "ids must be unique"),
        ([{"rule_id": "a", "kind": "ticket", "basis_points": 1}, {"rule_id": "b", "kind": "ticket",
                                                                  "basis_points": 2}], "keep one"),
        ([{"rule_id": "a", "kind": "ticket", "skus": ["X"], "basis_points": 1},
          {"rule_id": "b", "kind": "ticket", "skus": ["X"], "basis_points": 2}], "named by two"),
        ([{"rule_id": "a", "kind": "ticket", "basis_points": -1}], "greater than or equal"),
    ],
)
def test_conflicting_or_impossible_rules_are_refused(earning: list[dict[str, object]], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        bundle(earning=earning)


def test_a_field_this_box_does_not_know_is_refused_not_ignored() -> None:
    # A newer hub's rule the box cannot apply must not be half-run: the box keeps its last good bundle.
    with pytest.raises(ValidationError, match="Extra inputs"):
        bundle(lotteries=[{"name": "gold"}])
    with pytest.raises(ValidationError):
        Redemption.model_validate({"enabled": True, "cashback": 3})


def test_what_the_hub_signs_verifies_and_any_change_does_not() -> None:
    signed = sign_bundle(bundle(), HUB)
    verify_bundle(signed, HUB.public_key())
    wire = signed.model_dump_json(by_alias=True)
    verify_bundle(RuleBundle.model_validate_json(wire), HUB.public_key())  # survives the trip
    cheaper = signed.model_copy(update={"redemption": signed.redemption.model_copy(update={"points_per_unit": 1})})
    for forged in (cheaper, signed.model_copy(update={"version": 4}),
                   signed.model_copy(update={"earning": (Earning(rule_id="x", kind="ticket", basis_points=10000),)})):
        with pytest.raises(SignatureError, match="the hub's key"):
            verify_bundle(forged, HUB.public_key())
    with pytest.raises(SignatureError, match="the hub's key"):
        verify_bundle(signed, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SignatureError, match="not signed"):
        verify_bundle(bundle(), HUB.public_key())


@settings(max_examples=200, deadline=None)
@given(
    prices=st.lists(st.tuples(st.sampled_from(["TKT-STD", "TKT-PRM", "TKT-CHD"]), st.integers(0, 100_000),
                              st.integers(1, 20)), min_size=1, max_size=10),
    basis=st.integers(0, 100_000),
)
def test_points_are_the_sum_of_each_lines_own_rounding(prices: list[tuple[str, int, int]], basis: int) -> None:
    rules = bundle(earning=[{"rule_id": "tickets", "kind": "ticket", "basis_points": basis}])
    items = [ticket(sku, price, qty) for sku, price, qty in prices]
    points, _ = points_earned(rules, items)
    assert points == sum(price * qty * basis // 10_000 for _, price, qty in prices)
    assert points >= 0
