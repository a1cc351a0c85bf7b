"""The HTTP API and dashboard through a real app, a real database and httpx (no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.sites import apply_status, set_place
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from protocol.messages import DeviceStatus, PeripheralHealth
from tests.unit.hub.factories import T0, Chain

AUTH = ("alice", "correct horse battery")


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """An app over a fresh database with one user, not subscribed to any broker."""
    app = create_app(HubSettings(database_url=db_url), start_ingest=False)
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(
                conn, username=AUTH[0], password_hash=hash_password(AUTH[1]), role="analyst", created_at=T0
            )
        yield client


def engine_of(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def seed(client: TestClient, *, film_a: str = "Dune") -> None:
    """site-a: 3 sales of `film_a` on day 1, 1 of Up on day 2; site-b: 2 sales of Up on day 1."""
    a = Chain("site-a", "box-a")
    a.sales(3, film=film_a, tickets=2, ticket_price=1200, concession=450)
    a.add(film="Up", tickets=1, ticket_price=800, concession=0, occurred_at=T0 + timedelta(days=1))
    b = Chain("site-b", "box-b")
    b.sales(2, film="Up", tickets=3, ticket_price=900, concession=200)
    a.register(engine_of(client))
    b.register(engine_of(client))
    with engine_of(client).begin() as conn:
        ingest_batch(conn, batch=a.batch(1, 4), site_id="site-a", received_at=datetime.now(UTC))
        ingest_batch(conn, batch=b.batch(1, 2), site_id="site-b", received_at=datetime.now(UTC))


def test_api_needs_valid_credentials(client: TestClient) -> None:
    for path in ("/api/v1/sites", "/api/v1/stats/box-office?group_by=site", "/"):
        for auth in (None, ("alice", "wrong password"), ("mallory", AUTH[1])):
            response = client.get(path, auth=auth)
            assert response.status_code == 401, (path, auth)
            assert response.headers["www-authenticate"] == 'Basic realm="Marquee"'
        assert client.get(path, auth=AUTH).status_code == 200


def test_a_site_manager_sees_only_their_sites(client: TestClient) -> None:
    seed(client)
    with engine_of(client).begin() as conn:
        add_user(conn, username="sam", password_hash=hash_password("site manager pw"), role="site_manager",
                 created_at=T0, sites=("site-a",))
    sam = ("sam", "site manager pw")

    sites = client.get("/api/v1/sites", auth=sam).json()
    by_site = client.get("/api/v1/stats/box-office", params={"group_by": "site"}, auth=sam).json()
    by_film = client.get("/api/v1/stats/box-office", params={"group_by": "film"}, auth=sam).json()
    other = client.get("/api/v1/stats/box-office", params={"group_by": "film", "site": "site-b"}, auth=sam)

    assert [site["site_id"] for site in sites] == ["site-a"]
    assert [row["key"] for row in by_site] == ["site-a"]
    assert [(row["key"], row["tickets"]) for row in by_film] == [("Dune", 6), ("Up", 1)]  # site-a's Up only
    assert other.status_code == 403 and other.json() == {"detail": "this site is not one of yours"}
    # The analyst, beside, sees both.
    assert [site["site_id"] for site in client.get("/api/v1/sites", auth=AUTH).json()] == ["site-a", "site-b"]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "site",
            [
                {
                    "key": "site-a",
                    "tickets": 7,
                    "revenue": 3 * (2400 + 450) + 800,
                    "currency": "EUR",
                    "sales": 4,
                },
                {"key": "site-b", "tickets": 6, "revenue": 2 * (2700 + 200), "currency": "EUR", "sales": 2},
            ],
        ),
        (
            "film",
            [
                {"key": "Dune", "tickets": 6, "revenue": 3 * 2400, "currency": "EUR", "sales": 3},
                {"key": "Up", "tickets": 7, "revenue": 800 + 2 * 2700, "currency": "EUR", "sales": 3},
            ],
        ),
        (
            "day",
            [
                {
                    "key": "2025-03-14",
                    "tickets": 12,
                    "revenue": 3 * 2850 + 2 * 2900,
                    "currency": "EUR",
                    "sales": 5,
                },
                {"key": "2025-03-15", "tickets": 1, "revenue": 800, "currency": "EUR", "sales": 1},
            ],
        ),
    ],
)
def test_box_office_groups(client: TestClient, group_by: str, expected: list[dict[str, object]]) -> None:
    seed(client)

    response = client.get("/api/v1/stats/box-office", params={"group_by": group_by}, auth=AUTH)

    assert response.status_code == 200
    assert response.json() == expected


def test_box_office_filters(client: TestClient) -> None:
    seed(client)

    by_site = client.get(
        "/api/v1/stats/box-office", params={"group_by": "film", "site": "site-a"}, auth=AUTH
    ).json()
    second_day = client.get(
        "/api/v1/stats/box-office",
        params={"group_by": "site", "date_from": "2025-03-15", "date_to": "2025-03-15"},
        auth=AUTH,
    ).json()

    assert [(row["key"], row["tickets"]) for row in by_site] == [("Dune", 6), ("Up", 1)]
    assert [(row["key"], row["revenue"]) for row in second_day] == [("site-a", 800)]


@pytest.mark.parametrize("query", ["", "?group_by=hall", "?group_by=site&date_from=yesterday"])
def test_box_office_rejects_bad_parameters(client: TestClient, query: str) -> None:
    assert client.get(f"/api/v1/stats/box-office{query}", auth=AUTH).status_code == 422


def test_sites_show_devices_freshness_and_chain(client: TestClient) -> None:
    seed(client)
    now = datetime.now(UTC)
    with engine_of(client).begin() as conn:
        apply_status(
            conn,
            device_id="box-a",
            status=DeviceStatus(
                site_id="site-a", device_id="box-a", online=True, sent_at=now, backlog=12,
                peripheral_health={
                    "t1-wiegand": PeripheralHealth(kind="wiegand", till="t1", state="down", frames=40, reads=38,
                                                   errors={"parity": 3, "timeout": 1}, reopens=2, last_read_at=now),
                    "t1-pos": PeripheralHealth(kind="pos-tcp", till="t1", state="up", frames=12),
                },
            ),
            received_at=now,
            seen_at=now,
        )
        # site-b's box said it was online, but too long ago to believe.
        apply_status(
            conn,
            device_id="box-b",
            status=DeviceStatus(site_id="site-b", device_id="box-b", online=True, backlog=0),
            received_at=now,
            seen_at=None,
        )
        conn.execute(
            sa.text("UPDATE devices SET last_seen = :old WHERE device_id = 'box-b'"),
            {"old": (now - timedelta(hours=1)).replace(tzinfo=None)},
        )

    sites = client.get("/api/v1/sites", auth=AUTH).json()

    assert [(site["site_id"], site["online"], site["events_held"]) for site in sites] == [
        ("site-a", True, 4),
        ("site-b", False, 2),
    ]
    device = sites[0]["devices"][0]
    assert (device["device_id"], device["online"], device["backlog"], device["chain_ok"]) == (
        "box-a",
        True,
        12,
        True,
    )
    # Each reader and POS line as the box last reported it: a technician sees the failing one from HQ.
    assert [(p["name"], p["state"]) for p in device["peripherals"]] == [("t1-pos", "up"), ("t1-wiegand", "down")]
    wiegand = device["peripherals"][1]
    assert (wiegand["kind"], wiegand["till"], wiegand["reads"], wiegand["errors"], wiegand["reopens"]) == (
        "wiegand", "t1", 38, {"parity": 3, "timeout": 1}, 2)
    assert wiegand["last_read_at"] is not None and sites[1]["devices"][0]["peripherals"] == []
    page = client.get("/sites", auth=AUTH).text
    assert 'data-device="box-a"' in page and "t1-wiegand down" in page and "t1-pos down" not in page


def test_healthz_without_ingest(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "up"}
    detail = client.get("/api/v1/health", auth=AUTH)
    assert detail.status_code == 200
    assert detail.json() == {
        "status": "up", "database": True, "ingest": False, "mqtt_connected": False, "counters": {}
    }


def test_healthz_reports_an_unreachable_database(tmp_path: object) -> None:
    app = create_app(
        HubSettings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"),
        start_ingest=False,
    )
    client = TestClient(app)  # no lifespan: it would refuse to start without its database
    try:
        response = client.get("/healthz")
        sites = client.get("/api/v1/sites", auth=AUTH)
    finally:
        client.close()
        app.state.engine.dispose()

    assert response.status_code == 503
    assert response.json() == {"status": "down"}
    assert sites.status_code == 503


def test_dashboard_pages_escape_hostile_names(client: TestClient) -> None:
    seed(client)
    hostile = "<script>alert('x')</script>"
    with engine_of(client).begin() as conn:
        set_place(conn, site_id="site-a", name=hostile, latitude=None, longitude=None)

    for path in ("/sites", "/box-office", "/reports"):
        response = client.get(path, auth=AUTH)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert "site-a" in page and "site-b" in page
        assert "alert('x')" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page, path
        # Scripts come from the hub's own files only (no inline script for an injection to hide in).
        assert page.count("<script") == page.count('<script src="/static/'), path
