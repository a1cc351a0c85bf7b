"""From a recorded sale to the moves on an account, and the box's and the hub's figures for one member.

What is guaranteed (checked by `test_box_and_hub_agree_on_random_histories_over_several_sites`):

- The hub's figures are the fold of every move it ingested, in event time, advanced to now. They do not depend on
  the order moves arrive in, so the hub's refold once everything is ingested is the reference.
- A box's view is its last directory account (the hub's fold at the directory's `as_of`, with the box's moves up
  to its watermark) with the box's moves above the watermark folded on top, advanced to now. It equals the hub's
  fold of the same moves (those the directory held and the box's own) advanced to now, whenever every one of the
  box's moves older than the directory's `as_of` falls on the local day of that `as_of`: then no time rule (month
  start: bonus, review, expiry; day start: burn) and no visit day lies between the late move and the directory.
- When moves of other boxes are all in that directory too, the box's view equals the hub's reference.
- Otherwise (a move older than the directory by a local day or more: it may have missed an expiry, a burn, a
  review, or been a visit the box no longer counts) the two may differ; the box is right again after its next
  directory: the hub's fold at any time, advanced to now, equals the hub's fold up to now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocol.account import Account, Move, advance, fold
from protocol.calendar import local_day
from protocol.events import LoyaltyOutcome, RedemptionReversed, SaleRecorded
from protocol.loyalty import reversal_move, sale_moves
from protocol.rules import RuleBundle
from tests.unit.protocol.factories import PARIS, TOKEN, concession, paris, rules_bundle, sell, ticket

AT = paris(2026, 3, 9, 20)
PASS = {"pass_id": "cine", "name": "Cine", "sku": "PASS-M", "validity_days": 30, "films_per_week": 2}


def test_a_sale_makes_an_earn_move_and_a_redeem_move_the_hub_derives_alike_from_its_json() -> None:
    bundle = rules_bundle(passes=[PASS], birthday={})
    moves: list[Move] = []
    sell(bundle, moves, [concession(3000, sku="PASS-M")], AT - timedelta(days=1))
    decision, made = sell(bundle, moves, [ticket(1000), ticket(1200), ticket(1400)], AT, birthday="03-11",
                          capture=(500, 500), device="riverside-box1", seq=7)
    # The pass pays 1000, the birthday the dearest 1400, points 500 of the 1200 ticket: 700 earns 70.
    assert made == [
        Move(at=AT, kind="earn", points=70, spend=700, visit=True, earning_sale=True, pass_uses=(("cine", 1),),
             birthday_year=2026, order=("riverside-box1", 7)),
        Move(at=AT, kind="redeem", points=-500, order=("riverside-box1", 7)),
    ]
    assert decision.account.balance == 150  # the pass sale's 5 % of 3000
    sale = SaleRecorded(site_id="riverside", till_id="t1", cashier_id="c07", sale_id="S-7", currency="EUR",
                        items=[ticket(1000)], total=1000, card_token=TOKEN,
                        loyalty=LoyaltyOutcome(status="earned", points_earned=100, points_redeemed=20,
                                               amount_redeemed=20, balance=80, spend=980, visit=True))
    again = SaleRecorded.model_validate_json(sale.model_dump_json())
    assert sale_moves(again, AT, ("b", 1)) == sale_moves(sale, AT, ("b", 1))


def test_an_old_outcome_without_spend_counts_the_total_less_the_money_points_paid() -> None:
    sale = SaleRecorded(site_id="riverside", till_id="t1", cashier_id="c07", sale_id="S-1", currency="EUR",
                        items=[ticket(1000), concession(500)], total=1500, card_token=TOKEN,
                        loyalty=LoyaltyOutcome(status="earned", points_earned=0, points_redeemed=300,
                                               amount_redeemed=300))
    earn, taken = sale_moves(sale, AT, ("b", 1))
    assert (earn.spend, earn.visit, earn.earning_sale, taken.points) == (1200, True, False, -300)


def test_sales_without_a_card_or_with_a_blocked_one_move_nothing() -> None:
    for token, status in ((None, "no_card"), (TOKEN, "blocked"), (TOKEN, "unavailable")):
        sale = SaleRecorded(site_id="riverside", till_id="t1", cashier_id="c07", sale_id="S-1", currency="EUR",
                            items=[ticket(1000)], total=1000, card_token=token,
                            loyalty=LoyaltyOutcome(status=status))
        assert sale_moves(sale, AT, ("b", 1)) == []


def test_a_reversal_gives_the_points_back() -> None:
    reversal = RedemptionReversed(site_id="riverside", till_id="t1", sale_id="S-1", hold_id="h" + "0" * 16,
                                  card_token=TOKEN, points=300, sale_seq=4, reason="late")
    move = reversal_move(reversal, AT, ("b", 5))
    assert (move.kind, move.points) == ("reversal", 300)
    assert fold([Move(at=AT, kind="redeem", points=-300, order=("b", 4)), move], rules_bundle(), PARIS)[0].debt == 0


# --- Box and hub -------------------------------------------------------------------------------------------------

SITES = ("riverside", "uptown", "harbour")


def simulation_bundle() -> RuleBundle:
    return rules_bundle(
        expiry={"shelf_life_months": 1}, burn={"inactive_days": 14}, monthly_bonus={"min_visits": 3, "points": 40},
        tiers={"levels": [{"tier_id": "regular", "name": "Regular"},
                          {"tier_id": "silver", "name": "Silver", "min_visits": 3, "bonus_percent": 50},
                          {"tier_id": "gold", "name": "Gold", "min_visits": 6, "bonus_percent": 100}],
               "window_months": 1, "review": "monthly"},
        caps={"earning_sales_per_day": 3}, passes=[PASS], birthday={}, redemption={"enabled": True})


@dataclass
class Box:
    """One site's box: every sale it made (a sale's moves), what the hub ingested of them, its directory."""

    device: str
    site: str
    sales: list[list[Move]] = field(default_factory=list)
    uploaded: int = 0
    directory: Account | None = None
    watermark: int = 0
    directory_has: list[Move] = field(default_factory=list)
    """Every move the directory's fold held (the reference for this box's view)."""

    def unsynced(self) -> list[Move]:
        return [move for sale in self.sales[self.watermark:] for move in sale]

    def view(self, bundle: RuleBundle, at: datetime) -> Account:
        return fold(self.unsynced(), bundle, PARIS, start=self.directory, until=at)[0]


@dataclass
class Hub:
    ingested: list[Move] = field(default_factory=list)

    def upload(self, box: Box, upto: int | None = None) -> None:
        upto = len(box.sales) if upto is None else upto
        for sale in box.sales[box.uploaded:upto]:
            self.ingested.extend(sale)
        box.uploaded = max(box.uploaded, upto)

    def directory(self, box: Box, bundle: RuleBundle, at: datetime) -> None:
        box.directory = fold(self.ingested, bundle, PARIS, until=at)[0]
        box.watermark, box.directory_has = box.uploaded, list(self.ingested)


STEP = st.tuples(
    st.one_of(st.integers(0, 180), st.integers(60 * 20, 60 * 24 * 20)),  # minutes: the same evening, or days later
    st.integers(0, 2),  # which box
    st.sampled_from(["sale", "sale", "redeem", "reverse", "pass", "upload", "directory"]),
    st.integers(500, 2500),  # ticket price
    st.floats(0.0, 1.0),  # share of the box's view of the balance to redeem
)


@settings(max_examples=150, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=24), st.integers(2, 3), st.integers(0, 2), st.integers(0, 3),
       st.integers(1, 600))
def test_box_and_hub_agree_on_random_histories_over_several_sites(
        steps: list[tuple[int, int, str, int, float]], devices: int, last: int, in_flight: int, lag: int) -> None:
    bundle = simulation_bundle()
    boxes = [Box(f"{site}-box1", site) for site in SITES[:devices]]
    hub = Hub()
    at = paris(2026, 1, 20, 12)
    for minutes, which, action, price, share in steps:
        at += timedelta(minutes=minutes)
        box = boxes[which % devices]
        if action == "upload":
            hub.upload(box)
        elif action == "directory":
            hub.directory(box, bundle, at)
        elif action == "reverse":  # the last redemption of this box reached its till too late: given back
            taken = [move for sale in box.sales for move in sale if move.kind == "redeem"]
            if taken:
                seq = len(box.sales) + 1
                reversal = RedemptionReversed(site_id=box.site, till_id="t1", sale_id=f"S-{seq}", card_token=TOKEN,
                                              hold_id="h" + "0" * 16, points=-taken[-1].points, sale_seq=seq - 1,
                                              reason="late")
                box.sales.append([reversal_move(reversal, at, (box.device, seq))])
        else:
            view = box.view(bundle, at)
            wanted = int(max(0, view.balance) * share) if action == "redeem" else 0
            items = [concession(3000, sku="PASS-M")] if action == "pass" else [ticket(price)]
            made: list[Move] = []
            sell(bundle, made, items, at, device=box.device, site_id=box.site, start=view, birthday="01-29",
                 capture=(wanted, wanted) if wanted else None, seq=len(box.sales) + 1)
            box.sales.append(made)

    # The end: every other box uploads everything; the last box gets a directory while its latest sales are
    # still in flight, then they reach the hub too.
    final = boxes[last % devices]
    for box in boxes:
        hub.upload(box, max(0, len(box.sales) - in_flight) if box is final else None)
    directory_at = at + timedelta(seconds=lag)
    hub.directory(final, bundle, directory_at)
    for box in boxes:
        hub.upload(box)
    end = directory_at + timedelta(days=3)
    everything = [move for box in boxes for sale in box.sales for move in sale]
    reference = fold(everything, bundle, PARIS, until=end)[0]
    assert fold(reversed(hub.ingested), bundle, PARIS, until=end)[0] == reference  # arrival order does not matter

    for box in boxes:
        view = box.view(bundle, end)
        directory_at_box = box.directory.as_of if box.directory is not None else None
        late = [m for m in box.unsynced() if directory_at_box is not None and m.at < directory_at_box]
        same_day = all(local_day(m.at, PARIS) == local_day(directory_at_box, PARIS) for m in late
                       if directory_at_box is not None)
        event("late moves on the directory's day" if late and same_day else
              "late moves across a day" if late else "no late moves")
        if same_day:
            assert view == fold([*box.directory_has, *box.unsynced()], bundle, PARIS, until=end)[0]
            if box is final:
                assert view == reference
                assert (view.balance, view.tier) == (reference.balance, reference.tier)
        # Converges: one more directory (the hub's fold of everything at any moment) advanced to now is the
        # reference, whatever time rules fell in between.
        synced_at = max(m.at for m in everything) if everything else end
        again = fold(everything, bundle, PARIS, until=synced_at)[0]
        assert advance(again, bundle, end, PARIS)[0] == reference
        assert fold([], bundle, PARIS, start=again, until=end)[0] == reference


def test_a_late_move_across_an_expiry_differs_at_the_box_until_its_next_directory() -> None:
    bundle = rules_bundle(expiry={"shelf_life_months": 1})  # a January lot lapses on 1 March
    riverside, uptown, hub = Box("riverside-box1", "riverside"), Box("uptown-box1", "uptown"), Hub()
    for box, at in ((riverside, paris(2026, 1, 31, 20)), (uptown, paris(2026, 2, 2, 20))):
        made: list[Move] = []
        sell(bundle, made, [ticket(1000)], at, device=box.device, site_id=box.site, seq=1)
        box.sales.append(made)
    hub.upload(uptown)
    hub.directory(riverside, bundle, paris(2026, 3, 1, 12))  # riverside's January sale is still in flight
    hub.upload(riverside)
    end = paris(2026, 3, 2)
    reference = fold(hub.ingested, bundle, PARIS, until=end)[0]
    assert reference.lots == {"2026-02": 100}  # the hub refolds: January's 100 lapsed on 1 March
    assert riverside.view(bundle, end).lots == {"2026-01": 100, "2026-02": 100}  # folded after the expiry ran
    hub.directory(riverside, bundle, end)
    assert riverside.view(bundle, end) == reference
