"""The backtest's replay on stored sales (SQLite and PostgreSQL): worked examples of what a proposed bundle
would have changed, per site and chain-wide, and the sponsors' bill of recorded sales."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.backtest.jobs import BacktestJobs
from cloud.backtest.run import Progress, run_backtest
from cloud.backtest.sponsors import sponsors_bill
from cloud.bundles import publish_draft
from cloud.ingest.store import ingest_batch
from protocol.rules import RuleBundle
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain, sale_payload

JAN, MAR, APR = (datetime(2025, month, 1, tzinfo=UTC) for month in (1, 3, 4))
BASE: dict[str, Any] = {"currency": "EUR", "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
                        "redemption": {"enabled": True, "points_per_unit": 10}}
DUNE_DOUBLE = {"campaign_id": "dune-double", "name": "Dune double points", "starts_at": "2025-03-01T00:00:00Z",
               "ends_at": "2025-04-01T00:00:00Z", "match": {"films": ["Dune"]}, "bonus_percent": 100,
               "sponsor": "Legendary"}


def card(n: int) -> str:
    return f"{n:02x}" * 16


def sale(site: str, n: int, token: str, *, film: str = "Dune", tickets: int = 2, redeemed: int = 0,
         parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A card sale of `tickets` tickets at 12.00 and a popcorn, as the baseline (10 % of the tickets) decided it."""
    amount = redeemed // 10
    earned = (tickets * 1200 - amount) // 10
    return sale_payload(site, sale_id=f"s-{n}", film=film, tickets=tickets) | {"card_token": token, "loyalty": {
        "status": "earned", "points_earned": earned, "points_redeemed": redeemed, "amount_redeemed": amount,
        "hold_id": "h" + "0" * 16 if redeemed else None, "rules_version": 1,
        "earned_by": parts if parts is not None else [{"rule": "tickets", "points": earned}]}}


def store(engine: sa.Engine, sales: list[tuple[str, datetime, dict[str, Any]]], *,
          reversals: tuple[datetime, ...] = ()) -> None:
    """Store each site's sales through ingest, one device per site; `reversals` give back what the sale just
    before each paid with points."""
    chains: dict[str, Chain] = {}
    for site, at, payload in sorted(sales, key=lambda each: each[1]):
        if site not in chains:
            chains[site] = Chain(site, f"{site}-box1")
            chains[site].register(engine)
        chains[site].add(payload, occurred_at=at)
        late = [when for when in reversals if when > at and when - at < timedelta(hours=1)]
        if late:
            sold = chains[site].events[-1]
            chains[site].add({key: payload[key] for key in ("site_id", "till_id", "sale_id", "card_token")} | {
                "hold_id": payload["loyalty"]["hold_id"], "points": payload["loyalty"]["points_redeemed"],
                "sale_seq": sold.seq, "reason": "late"}, type="redemption.reversed", occurred_at=late[0])
    with engine.begin() as conn:
        for chain in chains.values():
            ingest_batch(conn, batch=chain.batch(1, len(chain.events)), site_id=chain.site_id, received_at=APR)


def publish(engine: sa.Engine, draft: dict[str, Any]) -> None:
    with engine.begin() as conn:
        publish_draft(conn, draft, Ed25519PrivateKey.generate(), at=JAN)


def proposed(draft: dict[str, Any]) -> RuleBundle:
    return RuleBundle.model_validate({**draft, "version": 2, "published_at": MAR})


def march(day: int, hour: int = 19) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def test_a_100_percent_campaign_on_dune_adds_720_points_over_3_dune_sales_billed_to_its_sponsor_at_72_cents(
        engine: sa.Engine) -> None:
    publish(engine, BASE)
    store(engine, [("riverside", march(3), sale("riverside", 1, card(1))),
                   ("riverside", march(4), sale("riverside", 2, card(2))),
                   ("harbour", march(4), sale("harbour", 3, card(3))),  # the same instant: keyset ties
                   ("harbour", march(5), sale("harbour", 4, card(1), film="Alien")),
                   ("harbour", APR + timedelta(hours=1), sale("harbour", 5, card(1)))])  # after the period
    seen: list[tuple[int, int]] = []
    result = run_backtest(engine, proposed({**BASE, "campaigns": [DUNE_DOUBLE]}), start=MAR, end=APR, page_size=2,
                          progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 4), (2, 4), (4, 4)]
    chain = result["chain"]
    assert (chain["sales"], chain["baseline"]["points_issued"], chain["proposed"]["points_issued"]) == (4, 960, 1680)
    assert chain["difference"]["points_issued"] == 720
    assert chain["baseline"]["sponsors"] == {}
    assert chain["proposed"]["sponsors"] == {"Legendary": {"points": 720, "money": 72}}
    assert chain["difference"]["sponsors"] == {"Legendary": {"points": 720, "money": 72}}
    sites = result["sites"]
    assert (sites["riverside"]["difference"]["points_issued"], sites["harbour"]["difference"]["points_issued"]) == (
        480, 240)
    assert sites["harbour"]["proposed"]["sponsors"] == {"Legendary": {"points": 240, "money": 24}}
    assert (result["members"], result["baseline_version"], result["sales_read"]) == (3, 1, 4)


def test_earning_5_percent_instead_of_10_issues_120_points_fewer_a_sale(engine: sa.Engine) -> None:
    publish(engine, BASE)
    store(engine, [("riverside", march(day), sale("riverside", day, card(day % 2))) for day in range(2, 6)])
    lower = {**BASE, "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 500}]}
    chain = run_backtest(engine, proposed(lower), start=MAR, end=APR)["chain"]
    assert (chain["baseline"]["points_issued"], chain["proposed"]["points_issued"]) == (960, 480)
    assert chain["difference"] == {"points_issued": -480, "discounts": 0, "points_redeemed": 0, "redemptions": 0,
                                   "redemptions_declined": 0, "sponsors": {}}


def test_a_500_point_redemption_whose_december_points_expired_on_1_february_under_the_proposal_is_declined(
        engine: sa.Engine) -> None:
    publish(engine, BASE)
    store(engine, [("riverside", datetime(2024, 12, 10, 19, tzinfo=UTC), sale("riverside", 1, card(7), tickets=50)),
                   ("riverside", march(8), sale("riverside", 2, card(7), redeemed=500))])
    expiring = {**BASE, "expiry": {"shelf_life_months": 1}}
    result = run_backtest(engine, proposed(expiring), start=MAR, end=APR)
    chain = result["chain"]
    # Baseline: 6,000 points from December pay 500 (50 cents at 10 points a cent); 235 earned on the rest.
    assert {name: chain["baseline"][name] for name in ("points_issued", "points_redeemed", "redemptions",
                                                      "redemptions_declined")} == {
        "points_issued": 235, "points_redeemed": 500, "redemptions": 1, "redemptions_declined": 0}
    # Proposed: December's lot lapsed on 1 February (a month's shelf life after December), before the period;
    # the sale pays money and earns 240.
    assert {name: chain["proposed"][name] for name in ("points_issued", "points_redeemed", "redemptions",
                                                      "redemptions_declined")} == {
        "points_issued": 240, "points_redeemed": 0, "redemptions": 0, "redemptions_declined": 1}
    assert chain["difference"]["redemptions_declined"] == 1 and chain["difference"]["points_redeemed"] == -500
    assert chain["time_rules"]["proposed"] == {"monthly_bonus": 0, "expired": 0, "burnt": 0}  # before the period


def test_an_expiry_inside_the_period_counts_as_time_rules_and_a_covered_redemption_is_not_declined(
        engine: sa.Engine) -> None:
    publish(engine, BASE)
    store(engine, [("riverside", datetime(2025, 1, 10, 19, tzinfo=UTC), sale("riverside", 1, card(8), tickets=50)),
                   ("riverside", datetime(2025, 1, 20, 19, tzinfo=UTC), sale("riverside", 2, card(8), redeemed=500)),
                   ("riverside", march(20), sale("riverside", 3, card(8), redeemed=100))])
    # January's 6,000 - 500 + 235 = 5,735 points expire on 1 March under a one-month shelf life (the period's
    # first instant); the March redemption of 100 is then declined too. With two months they last to 1 April.
    result = run_backtest(engine, proposed({**BASE, "expiry": {"shelf_life_months": 1}}), start=MAR, end=APR)
    assert result["chain"]["time_rules"]["proposed"]["expired"] == 5735
    assert result["chain"]["proposed"]["redemptions_declined"] == 1
    kept = run_backtest(engine, proposed({**BASE, "expiry": {"shelf_life_months": 2}}), start=MAR, end=APR)
    assert kept["chain"]["proposed"]["redemptions_declined"] == 0
    assert kept["chain"]["proposed"]["points_redeemed"] == 100
    assert kept["chain"]["time_rules"]["proposed"]["expired"] == 0


def test_a_10_percent_member_discount_takes_45_cents_off_the_popcorn_of_the_one_sale_whose_till_asked_for_it(
        engine: sa.Engine) -> None:
    publish(engine, BASE)
    asked, refused, legacy = (sale("riverside", n, card(n)) for n in (1, 2, 3))
    asked["loyalty"]["benefits_asked"] = True  # no money off recorded: the baseline had none to give
    refused["loyalty"]["benefits_asked"] = False
    store(engine, [("riverside", march(3), asked), ("riverside", march(4), refused),
                   ("riverside", march(5), legacy)])  # recorded before tills said: no benefits, so none asked
    discount = {**BASE, "discount": {"min_bp": 1000, "max_bp": 1000}}
    chain = run_backtest(engine, proposed(discount), start=MAR, end=APR)["chain"]
    assert (chain["baseline"]["discounts"], chain["proposed"]["discounts"]) == (0, 45)  # 10 % of a 4.50 popcorn


def test_a_reversed_redemption_gives_its_points_back_in_the_replay_only_when_the_replay_paid_with_them(
        engine: sa.Engine) -> None:
    publish(engine, BASE)
    history = datetime(2025, 2, 10, 19, tzinfo=UTC)
    store(engine, [("riverside", history, sale("riverside", 1, card(5), tickets=5)),  # 600 points each
                   ("harbour", history, sale("harbour", 1, card(6), tickets=5)),
                   ("riverside", march(3), sale("riverside", 2, card(5), redeemed=500)),
                   ("harbour", march(3, 20), sale("harbour", 2, card(6), redeemed=500)),
                   ("riverside", march(9), sale("riverside", 3, card(5), redeemed=800)),
                   ("harbour", march(9), sale("harbour", 3, card(6), redeemed=1000))],
          reversals=(march(3) + timedelta(minutes=5), march(3, 20) + timedelta(minutes=5)))
    # Same rules: 600 - 500 + 235 and the 500 given back = 835, which pays 800 but not 1,000 (the sale then
    # earns on 24.00 rather than 23.00: 10 points more).
    same = run_backtest(engine, proposed(BASE), start=MAR, end=APR)["chain"]
    assert same["proposed"]["redemptions_declined"] == 1 and same["difference"]["points_issued"] == 10
    # At least 600 points a redemption: both 500s are declined, the reversals give nothing back (600 + 240 =
    # 840 each: the 800 is paid, the 1,000 declined; 1,340 would have paid it).
    larger = {**BASE, "redemption": {**BASE["redemption"], "min_points": 600}}
    declined = run_backtest(engine, proposed(larger), start=MAR, end=APR)["chain"]["proposed"]
    assert declined["redemptions_declined"] == 3 and declined["points_redeemed"] == 800


def test_silver_at_2_visits_instead_of_3_visits_or_100_euros_moves_one_member_up_and_one_down(
        engine: sa.Engine) -> None:
    def tiers(silver: dict[str, Any]) -> dict[str, Any]:
        return {**BASE, "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                                             {"tier_id": "silver", "name": "Silver", **silver}]}}
    publish(engine, tiers({"min_visits": 3, "min_spend": 10_000}))
    store(engine, [
        ("riverside", march(2), sale("riverside", 1, card(1))),  # two visits, 57.00 EUR: up under the proposal
        ("harbour", march(3), sale("harbour", 2, card(1))),
        ("riverside", march(3), sale("riverside", 3, card(2), tickets=10)),  # one visit, 124.50 EUR: down
        ("riverside", march(4), sale("riverside", 4, card(3))),  # one visit, 28.50 EUR: regular either way
    ])
    result = run_backtest(engine, proposed(tiers({"min_visits": 2})), start=MAR, end=APR)
    assert result["chain"]["tiers"] == {"members": 3, "changed": 2, "up": 1, "down": 1}
    assert result["sites"]["riverside"]["tiers"] == {"members": 3, "changed": 2, "up": 1, "down": 1}
    assert result["sites"]["harbour"]["tiers"] == {"members": 1, "changed": 1, "up": 1, "down": 0}


def test_the_site_filter_replays_only_the_listed_sites(engine: sa.Engine) -> None:
    publish(engine, BASE)
    store(engine, [("riverside", march(3), sale("riverside", 1, card(1))),
                   ("harbour", march(4), sale("harbour", 2, card(2)))])
    result = run_backtest(engine, proposed({**BASE, "campaigns": [DUNE_DOUBLE]}), start=MAR, end=APR,
                          sites=["harbour"])
    assert list(result["sites"]) == ["harbour"] and result["chain"]["difference"]["points_issued"] == 240


def test_the_sponsors_bill_of_recorded_sales_by_campaign_and_site(engine: sa.Engine) -> None:
    publish(engine, {**BASE, "campaigns": [DUNE_DOUBLE]})
    paid = [{"rule": "tickets", "points": 240}, {"rule": "campaign:dune-double", "points": 245, "sponsor": "Legendary"}]
    store(engine, [("riverside", march(3), sale("riverside", 1, card(1), parts=paid)),
                   ("riverside", march(4), sale("riverside", 2, card(2), parts=paid)),
                   ("harbour", march(4), sale("harbour", 3, card(3), parts=paid)),
                   ("harbour", datetime(2025, 2, 4, tzinfo=UTC), sale("harbour", 4, card(3), parts=paid))])
    bill = sponsors_bill(engine, MAR, APR)
    assert bill["sponsors"] == [{"sponsor": "Legendary", "points": 735, "money": 73}]  # 49 + 24, rounded per row
    assert bill["rows"] == [
        {"sponsor": "Legendary", "campaign": "dune-double", "site_id": "harbour", "points": 245, "money": 24},
        {"sponsor": "Legendary", "campaign": "dune-double", "site_id": "riverside", "points": 490, "money": 49}]


def test_the_job_registry_runs_two_at_once_keeps_the_last_finished_and_reports_failures() -> None:
    jobs = BacktestJobs(max_running=2, keep_finished=3)
    gate = threading.Event()

    def held(progress: Progress) -> dict[str, Any]:
        progress(1, 2)
        assert gate.wait(10)
        return {"ok": True}

    def broken(progress: Progress) -> dict[str, Any]:
        raise RuntimeError("the database went away")

    first, second = jobs.start(held), jobs.start(held)
    assert first is not None and second is not None and jobs.start(held) is None
    wait_for(lambda: all(jobs.get(job["job_id"])["progress"]["sales_done"] == 1  # type: ignore[index]
                         for job in (first, second)), what="progress reported")
    gate.set()
    assert wait_for(lambda: jobs.get(first["job_id"])["status"] == "done")  # type: ignore[index]
    assert wait_for(lambda: jobs.get(second["job_id"])["result"] == {"ok": True})  # type: ignore[index]
    failed = jobs.start(broken)
    assert failed is not None
    assert wait_for(lambda: jobs.get(failed["job_id"])["status"] == "failed")  # type: ignore[index]
    assert "the database went away" not in (jobs.get(failed["job_id"]) or {})["error"]
    later = [jobs.start(held) for _ in range(2)]
    assert wait_for(lambda: all(jobs.get(job["job_id"])["status"] == "done" for job in later))  # type: ignore[index]
    assert jobs.get(first["job_id"]) is None and jobs.get(second["job_id"]) is None  # the oldest forgotten
    assert jobs.get(failed["job_id"]) is not None
