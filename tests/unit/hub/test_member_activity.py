"""Member analytics kept on ingest, against a brute-force count of the sales; the RFM, churn and tier rules at
their thresholds; a campaign's effect on a constructed example with known numbers."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.analytics import campaign_effect
from cloud.analytics.dayparts import day_part
from cloud.analytics.member_activity import merge_activity
from cloud.analytics.members_churn import ALPHA, churn_day, usual_interval
from cloud.analytics.members_rebuild import rebuild_members
from cloud.analytics.members_rfm import SEGMENTS, frequency_score, money_score, recency_score, segment
from cloud.analytics.members_tiers import progress
from cloud.bundles import publish_draft
from cloud.db.member_analytics_tables import member_activity, member_campaigns, member_visits
from cloud.db.schema import member_cards, sites
from cloud.ingest.store import ingest_batch
from protocol.account import Account
from protocol.programme import Campaign, ProgrammeRules
from tests.unit.hub.factories import Chain, sale_payload

PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")
TOKENS = [f"{n:02x}" * 16 for n in range(1, 5)]
FILMS = {"Dune": None, "Up": None, "Heat": "crime"}  # title -> the genre the till sends (None: the catalogue's)
CATALOGUE = {"Dune": ("scifi", "drama"), "Up": ("animation",)}
DAY0 = datetime(2025, 1, 6, 12, tzinfo=UTC)


def publish(engine: sa.Engine, **parts: Any) -> None:
    draft = {"currency": "EUR", "timezone": "America/New_York",
             "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
             "films": [{"title": title, "genres": list(genres)} for title, genres in CATALOGUE.items()], **parts}
    with engine.begin() as conn:
        publish_draft(conn, draft, Ed25519PrivateKey.generate(), at=datetime(2024, 1, 1, tzinfo=UTC))


def a_sale(site: str, n: int, rng: random.Random, when: datetime) -> dict[str, Any]:
    film = rng.choice(sorted(FILMS))
    tickets = rng.randint(1, 3)
    payload = sale_payload(site, sale_id=f"s-{n}", film=film, tickets=tickets, ticket_price=1000 + 100 * n,
                           concession=rng.choice([0, 450]))
    if FILMS[film]:
        payload["items"][0]["genre"] = FILMS[film]
    if rng.random() < 0.5:  # a show starting in the evening, bought at midday
        payload["items"][0]["showtime"] = (when + timedelta(hours=rng.choice([2, 7, 10]))).isoformat()
    campaign = rng.random() < 0.3
    points = rng.randint(1, 40)
    payload["card_token"] = rng.choice(TOKENS)
    payload["loyalty"] = {"status": "earned", "points_earned": points + (5 if campaign else 0),
                          "earned_by": [{"rule": "tickets", "points": points}]
                          + ([{"rule": "campaign:spring", "points": 5}] if campaign else [])}
    return payload


def expected(sales: list[tuple[str, datetime, dict[str, Any]]], holders: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each member's activity, counted the slow way from every counted sale."""
    found: dict[str, dict[str, Any]] = {}
    for site, when, payload in sales:
        if payload["card_token"] is None or payload["loyalty"]["status"] == "blocked":
            continue
        tz = PARIS if site == "site-a" else NEW_YORK
        m = found.setdefault(holders[payload["card_token"]], {
            "days": {}, "sales": 0, "tickets": 0, "ticket_spend": 0, "concession_spend": 0, "points_earned": 0,
            "genres": Counter(), "day_parts": Counter(), "campaign": 0})
        m["days"][when.astimezone(tz).date()] = site
        m["sales"] += 1
        for item in payload["items"]:
            if item["kind"] == "ticket":
                m["tickets"] += item["quantity"]
                m["ticket_spend"] += item["quantity"] * item["unit_price"]
                for genre in [item["genre"]] if item.get("genre") else CATALOGUE.get(item["film"], ()):
                    m["genres"][genre] += item["quantity"]
            else:
                m["concession_spend"] += item["quantity"] * item["unit_price"]
        shown = payload["items"][0].get("showtime")
        m["day_parts"][day_part((datetime.fromisoformat(shown) if shown else when).astimezone(tz).hour)] += 1
        m["points_earned"] += payload["loyalty"]["points_earned"]
        m["campaign"] += sum(part["points"] for part in payload["loyalty"]["earned_by"]
                             if part["rule"].startswith("campaign:"))
    return found


def test_activity_equals_a_brute_force_count_whatever_the_arrival_order(engine: sa.Engine) -> None:
    publish(engine)
    rng = random.Random(10)
    a, b = Chain("site-a", "box-a"), Chain("site-b", "box-b")
    for chain in (a, b):
        chain.register(engine)
    with engine.begin() as conn:
        conn.execute(sites.update().where(sites.c.site_id == "site-a").values(timezone="Europe/Paris"))
    sales = []
    # Sales in random time order (offline boxes' backlogs): site-a on even days, site-b on odd ones, at midday.
    for n in range(60):
        chain = a if n % 2 == 0 else b
        when = DAY0 + timedelta(days=2 * rng.randint(0, 60) + n % 2, minutes=rng.randint(0, 90))
        payload = a_sale(chain.site_id, n, rng, when)
        if n in (7, 8):  # a lost card, a sale without a card: neither counts
            payload["loyalty"]["status"] = "blocked" if n == 7 else "no_card"
            payload["card_token"] = payload["card_token"] if n == 7 else None
        chain.add(payload, occurred_at=when)
        sales.append((chain.site_id, when, payload))
    now = DAY0 + timedelta(days=200)
    with engine.begin() as conn:
        for first in range(1, 31, 6):
            for chain in (a, b):
                ingest_batch(conn, batch=chain.batch(first, min(first + 5, 30)), site_id=chain.site_id, received_at=now)
        ingest_batch(conn, batch=a.batch(1, 12), site_id="site-a", received_at=now)  # redelivered: counts once
        holders = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)).all())
        rows = {row.member_id: row for row in conn.execute(sa.select(member_activity))}
        visit_rows = conn.execute(sa.select(sa.func.count()).select_from(member_visits)).scalar()
        reached = dict(conn.execute(sa.select(member_campaigns.c.member_id, member_campaigns.c.points)
                                    .where(member_campaigns.c.campaign_id == "spring")).all())
    want = expected(sales, holders)
    assert set(rows) == set(want) and len(want) == 4
    assert visit_rows == sum(len(m["days"]) for m in want.values())
    for member_id, m in want.items():
        row = rows[member_id]
        days = sorted(m["days"])
        interval = None
        for gap in [(later - earlier).days for earlier, later in zip(days, days[1:], strict=False)]:
            interval = gap if interval is None else ALPHA * gap + (1 - ALPHA) * interval
        per_site = Counter(m["days"].values())
        assert (row.visits, row.first_visit, row.last_visit, row.sales) == (len(days), days[0], days[-1], m["sales"])
        assert (row.tickets, row.ticket_spend, row.concession_spend, row.points_earned) == (
            m["tickets"], m["ticket_spend"], m["concession_spend"], m["points_earned"])
        assert row.spend == m["ticket_spend"] + m["concession_spend"]
        assert row.interval_days == pytest.approx(interval)
        assert row.churn_at == days[-1] + timedelta(days=max(math.floor(2.5 * interval) + 1, 22))
        assert row.site_visits == dict(per_site)
        assert row.home_site == min(per_site, key=lambda site: (-per_site[site], site))
        assert row.genres == dict(m["genres"]) and row.day_parts == dict(m["day_parts"])
        assert row.favourite_genre == min(m["genres"], key=lambda g: (-m["genres"][g], g))
        assert reached.get(member_id, 0) == m["campaign"]
    # Recomputed from the stored events (as after an upgrade), the activity is the same.
    assert rebuild_members(engine) == 60
    with engine.connect() as conn:
        again = {row.member_id: row for row in conn.execute(sa.select(member_activity))}
    assert {key: row._asdict() | {"updated_at": None} for key, row in again.items()} == {
        key: row._asdict() | {"updated_at": None} for key, row in rows.items()}


def test_merging_an_anonymous_account_moves_its_activity(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-a")
    chain.register(engine)
    for n, (token, day) in enumerate([(TOKENS[0], 0), (TOKENS[0], 10), (TOKENS[1], 3), (TOKENS[1], 10),
                                      (TOKENS[1], 20)]):
        chain.add(sale_payload("site-a", sale_id=f"s-{n}") | {"card_token": token},
                  occurred_at=DAY0 + timedelta(days=day))
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(1, 5), site_id="site-a", received_at=DAY0 + timedelta(days=30))
        holders = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)).all())
        merge_activity(conn, source=holders[TOKENS[0]], into=holders[TOKENS[1]], at=DAY0 + timedelta(days=30))
        rows = conn.execute(sa.select(member_activity)).all()
        days = conn.execute(sa.select(member_visits.c.day, member_visits.c.sales)
                            .order_by(member_visits.c.day)).all()
    assert [row.member_id for row in rows] == [holders[TOKENS[1]]]
    start = DAY0.date()
    assert [(day - start).days for day, _ in days] == [0, 3, 10, 20] and [sales for _, sales in days] == [1, 1, 2, 1]
    assert (rows[0].visits, rows[0].sales, rows[0].first_visit) == (4, 5, start)
    assert rows[0].interval_days == pytest.approx(usual_interval(day for day, _ in days))


def test_rfm_scores_at_their_thresholds() -> None:
    assert [recency_score(days) for days in (0, 14, 15, 30, 31, 60, 61, 120, 121)] == [5, 5, 4, 4, 3, 3, 2, 2, 1]
    assert [frequency_score(visits) for visits in (1, 2, 4, 5, 9, 10, 19, 20)] == [1, 2, 2, 3, 3, 4, 4, 5]
    assert [money_score(spend) for spend in (0, 2999, 3000, 7999, 8000, 19_999, 20_000, 50_000)] == [
        1, 1, 2, 2, 3, 3, 4, 5]
    assert {segment(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)} == set(SEGMENTS)
    cases = {(5, 5, 5): "champions", (5, 1, 5): "new", (4, 3, 3): "loyal", (3, 4, 4): "loyal",
             (5, 2, 2): "promising", (2, 5, 4): "cant_lose", (1, 3, 3): "at_risk", (3, 2, 1): "hibernating",
             (2, 1, 1): "hibernating", (1, 2, 2): "lost"}
    assert {scores: segment(*scores) for scores in cases} == cases


def test_the_churn_rule_at_its_thresholds() -> None:
    last = date(2025, 5, 1)
    assert churn_day(last_visit=last, interval=7.0, visits=2) is None  # too few visits to know a habit
    assert churn_day(last_visit=last, interval=7.0, visits=3) == last + timedelta(days=22)  # more than 21 days
    assert churn_day(last_visit=last, interval=10.0, visits=3) == last + timedelta(days=26)  # more than 25 days
    assert churn_day(last_visit=last, interval=30.0, visits=9) == last + timedelta(days=76)
    days = [date(2025, 1, 1) + timedelta(days=n) for n in (0, 7, 14, 30)]
    assert usual_interval(reversed(days)) == usual_interval(days) == pytest.approx(0.3 * 16 + 0.7 * 7)


def test_tier_progress_upgrade_within_reach_and_downgrade_at_review() -> None:
    rules = ProgrammeRules.model_validate({"tiers": {
        "levels": [{"tier_id": "blue", "name": "Blue"}, {"tier_id": "silver", "name": "Silver", "min_visits": 10},
                   {"tier_id": "gold", "name": "Gold", "min_visits": 20, "min_spend": 100_000}],
        "window_months": 12, "review": "yearly", "review_day": "01-01"}})
    near = Account(activity={"2025-05": (4, 1000), "2025-06": (4, 1000)}, tier=None)
    assert progress(near, rules, month="2025-06") == progress(near, rules, month="2025-06")
    found = progress(near, rules, month="2025-06")
    assert found is not None and (found.change, found.target, found.gap, found.visits_short) == ("up", "silver", 200, 2)
    far = Account(activity={"2025-06": (7, 1000)}, tier=None)
    assert progress(far, rules, month="2025-06").change is None  # type: ignore[union-attr]
    # Gold in 2025, with 12 visits in this window: the review of 1 January 2026 moves them one level down.
    slipping = Account(activity={"2025-03": (6, 40_000), "2025-06": (6, 40_000)}, tier="gold")
    down = progress(slipping, rules, month="2025-06")
    assert down is not None and (down.change, down.target, down.review_month) == ("down", "silver", "2026-01")
    assert (down.visits_short, down.spend_short, down.gap) == (8, 20_000, 200)
    assert progress(Account(), ProgrammeRules(), month="2025-06") is None


@pytest.fixture
def effect_data(engine: sa.Engine) -> sa.Engine:
    """A campaign starting on day S: reached and other members with known visits in the 10 days before and after."""
    start = date(2025, 3, 10)

    def member(member_id: str, before: int, after: int, *, reached: bool, first: date | None = None) -> None:
        days = [start - timedelta(days=1 + n) for n in range(before)]
        days += [start + timedelta(days=n) for n in range(after)]
        with engine.begin() as conn:
            conn.execute(member_activity.insert().values(member_id=member_id, home_site="site-a", visits=len(days),
                                                         first_visit=first or start - timedelta(days=100)))
            if days:
                conn.execute(member_visits.insert(), [{"member_id": member_id, "day": day, "site_id": "site-a",
                                                       "sales": 1, "spend": 1000} for day in days])
            if reached:
                conn.execute(member_campaigns.insert().values(campaign_id="spring", member_id=member_id,
                                                              first_at=datetime(2025, 3, 11, tzinfo=UTC), points=5))

    # One visit before: reached members come 3 and 2 times after, comparable ones once each (+1.5 against 0).
    member("t1", 1, 3, reached=True)
    member("t2", 1, 2, reached=True)
    member("c1", 1, 1, reached=False)
    member("c2", 1, 1, reached=False)
    # None before: the reached member comes once after, comparable ones 0 and 1 times (+1 against +0.5).
    member("t3", 0, 1, reached=True)
    member("c3", 0, 0, reached=False)
    member("c4", 0, 1, reached=False)
    member("t4", 5, 5, reached=True)  # no comparable member with 4 or more visits before: unmatched
    member("t5", 0, 2, reached=True, first=start)  # new during the campaign: no before
    return engine


def test_campaign_effect_on_a_constructed_example(effect_data: sa.Engine) -> None:
    campaign = Campaign.model_validate({"campaign_id": "spring", "name": "Spring", "bonus_percent": 50,
                                        "starts_at": "2025-03-10T00:00:00Z", "ends_at": "2025-04-10T00:00:00Z"})
    with effect_data.connect() as conn:
        body = campaign_effect.compute(conn, campaign=campaign, tz="UTC", days=10, sites=None,
                                       now=datetime(2025, 5, 1, tzinfo=UTC))
    assert (body["reached"], body["reached_new"], body["unmatched"], body["complete"]) == (5, 1, 1, True)
    assert body["reached_group"] == {"members": 3, "visits_before": pytest.approx(2 / 3, abs=1e-4),
                                     "visits_after": 2.0, "spend_before": pytest.approx(2000 / 3, abs=1e-4),
                                     "spend_after": 2000.0}
    # The comparable members weighted as the reached are: 2/3 in the stratum of one visit, 1/3 in the one of none.
    assert body["comparable"]["members"] == 4
    assert body["comparable"]["visits_after"] == pytest.approx(2 / 3 * 1 + 1 / 3 * 0.5, abs=1e-4)
    assert body["effect"]["visits"] == pytest.approx((2 * 1.5 + 1 * 0.5) / 3, abs=1e-3)
    assert body["effect"]["spend"] == pytest.approx(1000 * (2 * 1.5 + 1 * 0.5) / 3, abs=0.1)
    assert [(s["pre_visits"], s["reached"], s["comparable"]) for s in body["strata"]] == [
        ("0", 1, 2), ("1", 2, 2), ("2", 0, 0), ("3", 0, 0), ("4+", 1, 0)]
