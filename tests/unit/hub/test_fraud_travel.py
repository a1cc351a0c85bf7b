"""Impossible travel: the same card at two located sites too far apart for the time between raises one case at
the hub, whichever order the sales arrive in; near sites, slow trips and sites without a location raise none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundles import publish_draft
from cloud.db.fraud_tables import card_sightings
from cloud.db.sites import set_place
from cloud.fraud.cases import list_alerts
from cloud.fraud.travel import Place, Sighting, distance_km, impossible
from cloud.ingest.store import ingest_batch
from protocol.fraud import Travel
from tests.unit.hub.factories import T0, Chain, sale_payload

TOKEN = "ef" * 16
PLACES = {
    "paris": ("Paris Opéra", 48.8566, 2.3522),
    "lyon": ("Lyon Part-Dieu", 45.7640, 4.8357),
    "boulogne": ("Boulogne", 48.8397, 2.2399),  # 8.4 km from Paris Opéra
    "nowhere": None,  # HQ never said where it is
}


def sale(site: str, sale_id: str, token: str = TOKEN) -> dict[str, Any]:
    return sale_payload(site, sale_id=sale_id) | {"card_token": token}


@pytest.fixture
def chains(engine: sa.Engine) -> dict[str, Chain]:
    made = {}
    for site, place in PLACES.items():
        made[site] = Chain(site, f"{site}-box1")
        made[site].register(engine)
        if place is not None:
            with engine.begin() as conn:
                assert set_place(conn, site_id=site, name=place[0], latitude=place[1], longitude=place[2])
    return made


def seen(engine: sa.Engine, chain: Chain, at: datetime, *, token: str = TOKEN,
         received: datetime | None = None) -> None:
    """A sale with the card at the chain's site at `at`, stored at the hub."""
    chain.add(sale(chain.site_id, f"s-{len(chain.events) + 1}", token), occurred_at=at)
    seq = len(chain.events)
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(seq, seq), site_id=chain.site_id, received_at=received or at)


def travel_cases(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return [case.row for case in list_alerts(conn, code="impossible_travel")]


def test_paris_then_lyon_within_an_hour_raises_one_case(engine: sa.Engine, chains: dict[str, Chain]) -> None:
    seen(engine, chains["paris"], T0)
    seen(engine, chains["lyon"], T0 + timedelta(minutes=60))

    [case] = travel_cases(engine)
    assert (case.source, case.severity, case.site_id, case.device_id, case.card_token) == (
        "hub", "warning", "lyon", "lyon-box1", TOKEN)
    assert case.dedupe_key == f"hub:impossible_travel:{TOKEN}:2025-03-14"
    assert 385 <= case.figures["km"] <= 395 and case.figures["minutes"] == 60
    assert case.figures["kmh"] == case.figures["km"]
    assert "Paris Opéra" in case.summary and "Lyon Part-Dieu" in case.summary and TOKEN not in case.summary
    assert (case.first_at, case.last_at, case.count) == (T0, T0 + timedelta(minutes=60), 1)
    assert case.events == [{"device_id": "lyon-box1", "seq": 1}, {"device_id": "paris-box1", "seq": 1}]


def test_the_same_day_of_trips_is_one_case_counting_each_sale(engine: sa.Engine, chains: dict[str, Chain]) -> None:
    seen(engine, chains["paris"], T0)
    seen(engine, chains["lyon"], T0 + timedelta(minutes=60))
    seen(engine, chains["lyon"], T0 + timedelta(minutes=70))  # still too close in time to Paris
    seen(engine, chains["lyon"], T0 + timedelta(hours=4))  # 390 km in 4 hours: possible
    [case] = travel_cases(engine)
    assert case.count == 2 and case.last_at == T0 + timedelta(minutes=70)


@pytest.mark.parametrize(("first", "then", "gap"), [
    ("paris", "lyon", timedelta(hours=5)),  # a train ride
    ("paris", "boulogne", timedelta(minutes=1)),  # neighbouring sites, under min_km
    ("paris", "nowhere", timedelta(minutes=1)),  # a site without a location
    ("nowhere", "lyon", timedelta(minutes=1)),
    ("paris", "paris", timedelta(minutes=1)),
])
def test_possible_or_unknown_trips_raise_nothing(engine: sa.Engine, chains: dict[str, Chain], first: str,
                                                 then: str, gap: timedelta) -> None:
    seen(engine, chains[first], T0)
    seen(engine, chains[then], T0 + gap)
    assert travel_cases(engine) == []


def test_an_offline_boxs_older_sale_arriving_late_still_compares(engine: sa.Engine,
                                                                 chains: dict[str, Chain]) -> None:
    # Lyon's sale is stored first; Paris's box was offline and sends its sale of an hour before, later.
    seen(engine, chains["lyon"], T0 + timedelta(minutes=60))
    seen(engine, chains["paris"], T0, received=T0 + timedelta(hours=6))

    [case] = travel_cases(engine)
    assert (case.site_id, case.first_at, case.last_at, case.figures["minutes"]) == (
        "lyon", T0, T0 + timedelta(minutes=60), 60)
    assert case.summary.index("Paris") < case.summary.index("Lyon")  # in the order the card travelled
    with engine.connect() as conn:
        held = conn.execute(sa.select(card_sightings.c.site_id, card_sightings.c.seen_at)
                            .order_by(card_sightings.c.site_id)).all()
    assert [tuple(row) for row in held] == [("lyon", T0 + timedelta(minutes=60)), ("paris", T0)]


def test_a_sighting_moves_forward_only(engine: sa.Engine, chains: dict[str, Chain]) -> None:
    seen(engine, chains["paris"], T0 + timedelta(hours=2))
    seen(engine, chains["paris"], T0, received=T0 + timedelta(hours=3))  # an older sale arriving late
    with engine.connect() as conn:
        assert conn.execute(sa.select(card_sightings.c.seen_at)).scalar_one() == T0 + timedelta(hours=2)


def test_travel_off_in_the_bundle_raises_nothing(engine: sa.Engine, chains: dict[str, Chain]) -> None:
    draft = {"currency": "EUR", "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
             "fraud": {"travel": None}}
    with engine.begin() as conn:
        publish_draft(conn, draft, Ed25519PrivateKey.generate(), at=datetime(2025, 1, 1, tzinfo=UTC))
    seen(engine, chains["paris"], T0)
    seen(engine, chains["lyon"], T0 + timedelta(minutes=10))
    assert travel_cases(engine) == []


EQUATOR = Place("origin", 0.0, 0.0)


def east(km: float) -> Place:
    """A place `km` east of the origin along the equator."""
    return Place(f"{km} km east", 0.0, km / distance_km(EQUATOR, Place("1°", 0.0, 1.0)))


@pytest.mark.parametrize(("km", "hours", "fires"), [
    (100, 100 / 200 * 1.01, False),  # just under 200 km/h
    (100, 100 / 200, False),  # at 200 km/h: allowed
    (100, 100 / 200 * 0.99, True),  # just over
    (49.9, 0.01, False),  # under min_km, however fast
    (50, 0.01, True),  # at min_km
    (50.1, 0.01, True),
    (20_000, 0.0, True),  # at the same instant
])
def test_a_trip_is_impossible_above_the_speed_and_from_the_distance(km: float, hours: float, fires: bool) -> None:
    rules = Travel(kmh=200, min_km=50)
    places = {"a": EQUATOR, "b": east(km)}
    assert distance_km(EQUATOR, east(km)) == pytest.approx(km)
    first = Sighting("a", T0, "a-1", 1)
    then = Sighting("b", T0 + timedelta(hours=hours), "b-1", 1)
    for pair in ((first, then), (then, first)):  # whichever is compared with which
        trip = impossible(rules, *pair, places)
        assert (trip is not None) == fires
        if trip is not None:  # in time order; at the same instant, the new sighting last
            assert (trip.first, trip.then) == ((first, then) if hours else pair[::-1])


def test_a_sale_stamped_by_a_clock_the_hub_does_not_believe_raises_nothing(engine: sa.Engine,
                                                                           chains: dict[str, Chain]) -> None:
    seen(engine, chains["paris"], T0)
    # Lyon's box stamps its sale an hour ahead of when the hub got it: its clock runs fast, the trip is not known.
    seen(engine, chains["lyon"], T0 + timedelta(minutes=60), received=T0 + timedelta(minutes=1))
    assert travel_cases(engine) == []
