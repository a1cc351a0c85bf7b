"""Impossible travel: the same card at two sites further apart than a trip at the bundle's `fraud.travel.kmh`
allows in the time between. Only the hub sees every site, so only the hub can tell.

Each card's latest sighting per site is kept (`card_sightings`, in event time). A sale with a card is compared
with the card's latest sighting at every other site that has a location, whichever of the two came first: an
offline box's backlog arriving hours later compares the same as a live sale.

Sightings of one site are written under the site's row lock (ingest takes it first), so two hub processes never
write the same row. Two sites' batches stored at the same instant by two processes do not see each other's
sighting; the next sale of the card compares again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.db.fraud_tables import card_sightings
from cloud.db.schema import member_cards, sites
from cloud.fraud.cases import raise_alert
from protocol.calendar import local_day
from protocol.events import Event, SaleRecorded
from protocol.fraud import Travel
from protocol.rules import RuleBundle

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Sighting:
    """A card's latest sale at a site (event time) and the event that says so."""

    site_id: str
    seen_at: datetime
    device_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Place:
    """A site's name (its id when HQ gave none) and location in degrees."""

    name: str
    latitude: float
    longitude: float


def distance_km(a: Place, b: Place) -> float:
    """Great-circle distance (haversine) between two places, in km."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat, dlon = lat2 - lat1, math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Trip:
    """Two sightings of one card and what the trip between them would take."""

    first: Sighting
    then: Sighting
    km: float
    seconds: float

    @property
    def kmh(self) -> float:
        return self.km * 3600 / max(self.seconds, 1.0)


def impossible(rules: Travel, new: Sighting, held: Sighting, places: dict[str, Place]) -> Trip | None:
    """The trip between a new sighting and a held one when it is too fast for `rules` (sites at least `min_km`
    apart, faster than `kmh`), in time order (the new one last at the same instant); None otherwise, or when a
    site has no location."""
    if new.site_id == held.site_id or new.site_id not in places or held.site_id not in places:
        return None
    first, then = sorted((held, new), key=lambda sighting: sighting.seen_at)
    km = distance_km(places[first.site_id], places[then.site_id])
    trip = Trip(first, then, km, (then.seen_at - first.seen_at).total_seconds())
    # To the metre and the metre an hour: locations and seconds are no finer, and a limit is then exact.
    if round(km, 3) < rules.min_km or round(trip.kmh, 3) <= rules.kmh:
        return None
    return trip


def check_travel(conn: sa.Connection, *, sales: Sequence[tuple[Event, SaleRecorded]], site_id: str,
                 bundle: RuleBundle, at: datetime) -> list[int]:
    """Record where the cards of `sales` (stored just now at `site_id`) were seen, and raise an
    `impossible_travel` case for each sale too far from the card's latest sighting at another site (the
    fastest such trip). Returns the ids of the cases raised or counted on."""
    tokens = sorted({sale.card_token for _, sale in sales if sale.card_token is not None})
    held: dict[str, dict[str, Sighting]] = {}
    for row in conn.execute(sa.select(card_sightings).where(card_sightings.c.card_token.in_(tokens))):
        held.setdefault(row.card_token, {})[row.site_id] = Sighting(row.site_id, row.seen_at, row.device_id,
                                                                    int(row.seq))
    existing = {(token, site) for token, seen in held.items() for site in seen}
    rules = bundle.fraud.travel
    places = _places(conn, {site_id} | {site for seen in held.values() for site in seen}) if rules else {}
    found: list[tuple[str, Trip]] = []
    latest: dict[str, Sighting] = {}
    for event, sale in sorted(sales, key=lambda pair: (pair[0].occurred_at, pair[0].seq)):
        token = sale.card_token
        assert token is not None
        seen = held.setdefault(token, {})
        sighting = Sighting(site_id, event.occurred_at, event.device_id, event.seq)
        if rules is not None and site_id in places:
            trips = [trip for other in seen.values()
                     if (trip := impossible(rules, sighting, other, places)) is not None]
            if trips:
                found.append((token, max(trips, key=lambda each: each.kmh)))
        current = seen.get(site_id)
        if current is None or sighting.seen_at > current.seen_at:
            seen[site_id] = latest[token] = sighting
    _write(conn, latest, existing, site_id)
    # In key order: two hub processes counting on the same cases lock them in one order.
    return [_raise(conn, token=token, trip=trip, places=places, tz=bundle.timezone, at=at)
            for token, trip in sorted(found, key=lambda pair: (pair[0], pair[1].then.seen_at))]


def _places(conn: sa.Connection, site_ids: set[str]) -> dict[str, Place]:
    rows = conn.execute(sa.select(sites.c.site_id, sites.c.name, sites.c.latitude, sites.c.longitude).where(
        sites.c.site_id.in_(sorted(site_ids)), sites.c.latitude.is_not(None), sites.c.longitude.is_not(None)))
    return {row.site_id: Place(row.name or row.site_id, float(row.latitude), float(row.longitude)) for row in rows}


def _raise(conn: sa.Connection, *, token: str, trip: Trip, places: dict[str, Place], tz: str, at: datetime) -> int:
    first, then = trip.first, trip.then
    minutes = int(trip.seconds // 60)
    km, kmh = round(trip.km), round(trip.kmh)
    member_id = conn.execute(sa.select(member_cards.c.member_id)
                             .where(member_cards.c.card_token == token)).scalar_one_or_none()
    summary = (f"card {token[:8]}… at {places[first.site_id].name} then at {places[then.site_id].name} "
               f"{minutes} min later: {km} km, {kmh} km/h")
    return raise_alert(
        conn, dedupe_key=f"hub:impossible_travel:{token}:{local_day(then.seen_at, tz).isoformat()}",
        code="impossible_travel", severity="warning", source="hub", site_id=then.site_id, device_id=then.device_id,
        card_token=token, member_id=member_id, summary=summary, figures={"km": km, "minutes": minutes, "kmh": kmh},
        events=[(then.device_id, then.seq), (first.device_id, first.seq)], first_at=first.seen_at,
        last_at=then.seen_at, at=at,
    )


def _write(conn: sa.Connection, latest: dict[str, Sighting], existing: set[tuple[str, str]], site_id: str) -> None:
    """Insert or move forward the site's sightings, in token order (one lock order for every writer)."""
    new: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for token in sorted(latest):
        sighting = latest[token]
        row = {"card_token": token, "site_id": site_id, "seen_at": sighting.seen_at,
               "device_id": sighting.device_id, "seq": sighting.seq}
        (moved if (token, site_id) in existing else new).append(row)
    if new:
        conn.execute(card_sightings.insert(), new)
    if moved:
        col = card_sightings.c
        conn.execute(
            card_sightings.update()
            .where(col.card_token == sa.bindparam("b_token"), col.site_id == sa.bindparam("b_site"))
            .values(seen_at=sa.bindparam("b_seen"), device_id=sa.bindparam("b_device"), seq=sa.bindparam("b_seq")),
            [{"b_token": row["card_token"], "b_site": row["site_id"], "b_seen": row["seen_at"],
              "b_device": row["device_id"], "b_seq": row["seq"]} for row in moved])
