"""/api/v1/analytics and the halls catalogue through a real app: every endpoint's numbers for a small chain
(sites in two time zones, halls with and without seats), what a site manager may see, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.analytics.box_office import box_office, today_by_site
from cloud.analytics.catalogue import set_hall
from cloud.analytics.occupancy import occupancy
from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.access_tables import hq_audit
from cloud.db.schema import sites
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from tests.unit.hub.factories import Chain

PASSWORD = "analytics test pw"
ADMIN, ANALYST, MANAGER = ("ada", PASSWORD), ("ana", PASSWORD), ("sam", PASSWORD)
API = "/api/v1/analytics"
RANGE = {"from": "2025-03-14", "to": "2025-03-15"}
NOW = datetime(2025, 3, 16, 9, 0, tzinfo=UTC)
SALES: list[tuple[str, str, list[tuple[Any, ...]], bool]] = [
    # site, when (UTC), lines, with a member's card. site-a is in Paris (UTC+1), site-b in UTC.
    ("site-a", "2025-03-14T17:30:00Z", [("t", "Dune", "1", "2025-03-14T19:00:00Z", 2, 1200), ("c", 1, 450)], True),
    ("site-a", "2025-03-14T18:00:00Z", [("t", "Dune", "1", "2025-03-14T19:00:00Z", 1, 1200)], False),
    ("site-a", "2025-03-14T10:00:00Z", [("c", 2, 300), ("t", "Up", "2", "2025-03-14T13:00:00Z", 3, 800)], True),
    ("site-a", "2025-03-14T12:00:00Z", [("c", 1, 450)], False),
    ("site-b", "2025-03-14T23:30:00Z", [("t", "Dune", "1", "2025-03-14T21:00:00Z", 1, 1000)], True),
    ("site-b", "2025-03-15T10:00:00Z", [("t", "Up", "1", None, 2, 900)], False),
]


def payload(site_id: str, number: int, lines: list[tuple[Any, ...]], card: bool) -> dict[str, Any]:
    items = []
    for line in lines:
        if line[0] == "t":
            _, film, hall, showtime, quantity, price = line
            items.append({"kind": "ticket", "sku": "adult", "film": film, "hall": hall, "quantity": quantity,
                          "unit_price": price, **({"showtime": showtime} if showtime else {})})
        else:
            items.append({"kind": "concession", "sku": "snack", "quantity": line[1], "unit_price": line[2]})
    return {"site_id": site_id, "till_id": "till-1", "cashier_id": "c-7", "sale_id": f"s-{number}", "currency": "EUR",
            "items": items, "total": sum(item["quantity"] * item["unit_price"] for item in items),
            "card_token": "cd" * 16 if card else None, "loyalty": {"status": "unavailable" if card else "no_card"}}


def seed(engine: sa.Engine) -> None:
    """The sales above; site-a in Europe/Paris with hall 1 of 100 seats (hall 2 unknown), site-b hall 1 of 50."""
    chains = {site: Chain(site, f"box-{site}") for site in ("site-a", "site-b")}
    for chain in chains.values():
        chain.register(engine)
    for number, (site, at, lines, card) in enumerate(SALES):
        chains[site].add(payload(site, number, lines, card), occurred_at=datetime.fromisoformat(at))
    with engine.begin() as conn:
        conn.execute(sa.update(sites).where(sites.c.site_id == "site-a").values(timezone="Europe/Paris"))
        set_hall(conn, site_id="site-a", hall="1", name="Salle 1", seats=100, at=NOW)
        set_hall(conn, site_id="site-b", hall="1", name=None, seats=50, at=NOW)
        for site, chain in chains.items():
            ingest_batch(conn, batch=chain.batch(1, len(chain.events)), site_id=site, received_at=NOW)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app over SQLite with the chain above, an admin, an analyst and a manager of site-a."""
    path: Path = tmp_path_factory.mktemp("analytics") / "hub.db"
    app = create_app(HubSettings(database_url=f"sqlite:///{path}"), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        hashed = hash_password(PASSWORD)
        with engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hashed, role="admin", created_at=NOW)
            add_user(conn, username=ANALYST[0], password_hash=hashed, role="analyst", created_at=NOW)
            add_user(conn, username=MANAGER[0], password_hash=hashed, role="site_manager", created_at=NOW,
                     sites=("site-a",))
        seed(engine)
        yield client


def rows(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()}


def test_box_office_by_every_group(client: TestClient) -> None:
    def get(group: str) -> dict[str, dict[str, Any]]:
        return rows(client.get(f"{API}/box-office", params={**RANGE, "group": group}, auth=ANALYST))

    by_site = get("site")
    assert by_site["site-a"] == {"key": "site-a", "currency": "EUR", "tickets": 6, "ticket_revenue": 6000,
                                 "concession_revenue": 1500, "concession_items": 4, "sales": 4, "member_sales": 2,
                                 "attach_rate": 0.6667, "spend_per_head": 1250.0, "site_id": "site-a"}
    assert (by_site["site-b"]["tickets"], by_site["site-b"]["sales"], by_site["site-b"]["spend_per_head"]) == (
        3, 2, 933.33)
    by_film = get("film")
    assert {key: (row["tickets"], row["ticket_revenue"], row["concession_revenue"], row["sales"], row["member_sales"])
            for key, row in by_film.items()} == {"Dune": (4, 4600, 450, 3, 2), "Up": (5, 4200, 600, 2, 1),
                                                 "": (0, 0, 450, 1, 0)}
    assert by_film[""]["attach_rate"] is None  # concessions alone: no ticket to attach to
    assert {key: row["tickets"] for key, row in get("hall").items()} == {
        "site-a/": 0, "site-a/1": 3, "site-a/2": 3, "site-b/1": 3}
    # Paris days: all four of site-a's sales on the 14th; site-b's 23:30 UTC sale too.
    assert {key: row["sales"] for key, row in get("day").items()} == {"2025-03-14": 5, "2025-03-15": 1}
    assert list(get("weekday")) == ["friday", "saturday"]
    assert {key: row["sales"] for key, row in get("hour").items()} == {
        "10": 1, "11": 1, "13": 1, "18": 1, "19": 1, "23": 1}
    parts = get("daypart")  # the show's start when known (site-a's 20:00 show: evening), else the sale's hour
    assert list(parts) == ["morning", "afternoon", "evening", "late"]
    assert {key: (row["tickets"], row["sales"]) for key, row in parts.items()} == {
        "morning": (2, 1), "afternoon": (3, 2), "evening": (3, 2), "late": (1, 1)}


def test_occupancy_by_every_group(client: TestClient) -> None:
    def get(group: str) -> dict[str, dict[str, Any]]:
        return rows(client.get(f"{API}/occupancy", params={**RANGE, "group": group}, auth=ANALYST))

    by_film = get("film")
    assert by_film["Dune"] == {"key": "Dune", "shows": 2, "tickets": 4, "seats": 150, "occupancy": 0.0267,
                               "shows_without_capacity": 0, "site_id": None, "hall": None, "film": "Dune",
                               "showtime": None}
    assert (by_film["Up"]["seats"], by_film["Up"]["occupancy"], by_film["Up"]["shows_without_capacity"]) == (
        None, None, 1)  # hall 2 is not in the catalogue
    by_site = get("site")
    assert {key: (row["shows"], row["tickets"], row["seats"], row["occupancy"]) for key, row in by_site.items()} == {
        "site-a": (2, 6, 100, 0.03), "site-b": (1, 1, 50, 0.02)}  # site-a: the 3 tickets of its known hall
    shows = client.get(f"{API}/occupancy", params={**RANGE, "group": "show"}, auth=ANALYST).json()
    assert [(row["site_id"], row["hall"], row["film"], row["showtime"], row["tickets"], row["seats"])
            for row in shows] == [("site-a", "2", "Up", "2025-03-14T13:00:00Z", 3, None),
                                  ("site-a", "1", "Dune", "2025-03-14T19:00:00Z", 3, 100),
                                  ("site-b", "1", "Dune", "2025-03-14T21:00:00Z", 1, 50)]
    assert {key: row["shows"] for key, row in get("daypart").items()} == {"afternoon": 1, "evening": 1, "late": 1}
    assert set(get("hall")) == {"site-a/1", "site-a/2", "site-b/1"} and set(get("day")) == {"2025-03-14"}
    one = client.get(f"{API}/occupancy", params={**RANGE, "group": "show", "limit": 1}, auth=ANALYST).json()
    assert len(one) == 1 and one[0]["film"] == "Up"


def test_a_films_days_and_each_sites_today(client: TestClient) -> None:
    trend = client.get(f"{API}/film-trend", params={**RANGE, "film": "Dune"}, auth=ANALYST)
    assert trend.status_code == 200, trend.text
    body = trend.json()
    assert [(row["key"], row["tickets"], row["ticket_revenue"], row["sales"]) for row in body["box_office"]] == [
        ("2025-03-14", 4, 4600, 3)]
    assert [(row["key"], row["shows"], row["seats"]) for row in body["occupancy"]] == [("2025-03-14", 2, 150)]

    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        # 23:45 UTC: already the 15th in Paris (nothing sold there yet), still the 14th at site-b.
        today = today_by_site(conn, sites=None, now=datetime(2025, 3, 14, 23, 45, tzinfo=UTC))
    assert [(row.site_id, row.day, row.currency, row.tickets, row.sales) for row in today] == [
        ("site-a", date(2025, 3, 15), "", 0, 0), ("site-b", date(2025, 3, 14), "EUR", 1, 1)]
    live = client.get(f"{API}/today", auth=MANAGER)
    assert live.status_code == 200 and [row["site_id"] for row in live.json()] == ["site-a"]


def test_a_site_manager_sees_only_their_sites(client: TestClient) -> None:
    for path, params in (("/box-office", {"group": "site"}), ("/occupancy", {"group": "site"}), ("/today", {})):
        seen = client.get(API + path, params={**RANGE, **params}, auth=MANAGER)
        assert seen.status_code == 200 and {row["site_id"] for row in seen.json()} == {"site-a"}, path
        refused = client.get(API + path, params={**params, "site": "site-b"}, auth=MANAGER)
        assert refused.status_code == 403, path
    assert client.get(f"{API}/film-trend", params={"film": "Dune", "site": "site-b"}, auth=MANAGER).status_code == 403
    trend = client.get(f"{API}/film-trend", params={**RANGE, "film": "Dune"}, auth=MANAGER).json()
    assert [row["tickets"] for row in trend["box_office"]] == [3]
    assert client.get("/api/v1/sites/site-b/halls", auth=MANAGER).status_code == 403
    assert [hall["hall"] for hall in client.get("/api/v1/sites/site-a/halls", auth=MANAGER).json()] == ["1"]
    assert client.put("/api/v1/sites/site-a/halls/2", json={"seats": 80}, auth=MANAGER).status_code == 403


def test_admins_edit_the_halls_catalogue_and_it_is_audited(client: TestClient) -> None:
    assert client.put("/api/v1/sites/site-b/halls/2", json={"seats": 80}, auth=ANALYST).status_code == 403
    assert client.put("/api/v1/sites/nowhere/halls/2", json={"seats": 80}, auth=ADMIN).status_code == 404
    assert client.get("/api/v1/sites/nowhere/halls", auth=ADMIN).status_code == 404
    for bad in ({"seats": 0}, {"seats": 10, "colour": "red"}, {"name": "x"}):
        assert client.put("/api/v1/sites/site-b/halls/2", json=bad, auth=ADMIN).status_code == 422, bad

    put = client.put("/api/v1/sites/site-b/halls/Salle 2", json={"seats": 80, "name": "Big"}, auth=ADMIN)
    assert put.status_code == 200, put.text
    assert {key: put.json()[key] for key in ("site_id", "hall", "name", "seats")} == {
        "site_id": "site-b", "hall": "Salle 2", "name": "Big", "seats": 80}
    assert client.put("/api/v1/sites/site-b/halls/1", json={"seats": 40}, auth=ADMIN).status_code == 200
    by_site = rows(client.get(f"{API}/occupancy", params={**RANGE, "group": "site"}, auth=ANALYST))
    assert by_site["site-b"]["seats"] == 40  # a corrected capacity applies to past shows at once
    assert [h["hall"] for h in client.get("/api/v1/sites/site-b/halls", auth=ANALYST).json()] == ["1", "Salle 2"]
    assert client.delete("/api/v1/sites/site-b/halls/Salle 2", auth=ADMIN).status_code == 204
    assert client.delete("/api/v1/sites/site-b/halls/Salle 2", auth=ADMIN).status_code == 404
    client.put("/api/v1/sites/site-b/halls/1", json={"seats": 50}, auth=ADMIN)

    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        audit = conn.execute(sa.select(hq_audit.c.username, hq_audit.c.action, hq_audit.c.target, hq_audit.c.detail)
                             .where(hq_audit.c.action.like("hall.%")).order_by(hq_audit.c.id)).all()
    assert [(row.username, row.action, row.target) for row in audit] == [
        ("ada", "hall.set", "site-b/Salle 2"), ("ada", "hall.set", "site-b/1"),
        ("ada", "hall.delete", "site-b/Salle 2"), ("ada", "hall.set", "site-b/1")]
    assert audit[1].detail == {"seats": 40, "seats_before": 50}


@pytest.mark.parametrize(("params", "loc"), [
    ({"from": "2025-03-15", "to": "2025-03-14"}, "from"),
    ({"from": "1999-12-31"}, "from"),
    ({"from": "9999-12-30"}, "from"),  # no date arithmetic on it: no overflow, no 500
    ({"to": "0001-01-02"}, "to"),
    ({"from": "2020-01-01", "to": "2025-01-01"}, "to"),
    ({"from": "14/03/2025"}, "from"),
    ({"group": "colour"}, "group"),
    ({"site": "Site A"}, "site"),
])
def test_bad_parameters_are_a_422_naming_them(client: TestClient, params: dict[str, str], loc: str) -> None:
    response = client.get(f"{API}/box-office", params=params, auth=ANALYST)
    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [["query", loc]]


def test_the_queries_sum_the_same_on_both_databases(engine: sa.Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        films = box_office(conn, group="film", sites=None, first=date(2025, 3, 14), last=date(2025, 3, 15))
        parts = box_office(conn, group="weekday", sites=frozenset({"site-b"}), first=date(2025, 3, 14),
                           last=date(2025, 3, 15))
        shows = occupancy(conn, group="hall", sites=None, first=date(2025, 3, 14), last=date(2025, 3, 14))
    assert [(row.key, row.tickets, row.concession_items, row.member_sales) for row in films] == [
        ("", 0, 1, 0), ("Dune", 4, 1, 2), ("Up", 5, 2, 1)]
    assert [(row.key, row.sales) for row in parts] == [("friday", 1), ("saturday", 1)]
    assert [(row.key, row.shows, row.seats, row.shows_without_capacity) for row in shows] == [
        ("site-a/1", 1, 100, 0), ("site-a/2", 1, None, 1), ("site-b/1", 1, 50, 0)]
