"""/api/v1/alerts, /api/v1/audit and a site's place through a real app and database: a box's alert reaches the
case list over a real broker once, people read, filter and page cases, move them with notes (409 when they
cannot), read the staff audit trail; a site manager sees and moves their sites' cases only; admins set where
sites are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.fraud_tables import alert_deliveries
from cloud.db.users import add_user
from cloud.fraud.cases import raise_alert
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from protocol.topics import device_topic
from tests.integration.hub.box import FakeBox
from tests.support.brokers import Mosquitto
from tests.support.hub_users import hq_actions
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0, Chain

ADMIN, ANALYST, MANAGER = ("ada", "admin pass phrase"), ("ann", "analyst pass phrase"), ("sam", "site mgr phrase")
TOKEN = "ab" * 16
SITE = "riverside"


def alert_payload(key: str = f"card_points_day:{TOKEN}:2025-03-14", **extra: Any) -> dict[str, Any]:
    return {"site_id": SITE, "key": key, "code": "card_points_day", "severity": "warning", "action": "hold",
            "first_at": "2025-03-14T18:00:00Z", "till_id": "till-1", "cashier_id": "c-7", "card_token": TOKEN,
            "summary": "card abababab… earned 600 points today, limit 500", "figures": {"points": 600, "limit": 500},
            } | extra


def app_for(db_url: str, **settings: Any) -> Any:
    return create_app(HubSettings(database_url=db_url, **settings), start_ingest="mqtt_port" in settings)


def add_users(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for (name, password), role in ((ADMIN, "admin"), (ANALYST, "analyst"), (MANAGER, "site_manager")):
            add_user(conn, username=name, password_hash=hash_password(password), role=role, created_at=T0,
                     sites=("riverside",) if role == "site_manager" else None)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    app = app_for(db_url)
    with TestClient(app) as client:
        add_users(app.state.engine)
        yield client


def engine_of(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def seed_cases(client: TestClient, count: int) -> list[int]:
    """`count` hub cases, one an hour from T0, at riverside (even) and harbour (odd)."""
    with engine_of(client).begin() as conn:
        return [raise_alert(conn, dedupe_key=f"hub:overdraft:m{n}:2025-03-14", code="overdraft", severity="warning",
                            source="hub", site_id="riverside" if n % 2 == 0 else "harbour", member_id=f"m{n}",
                            summary=f"member m{n} went below zero", figures={"points": n}, first_at=T0,
                            at=T0 + timedelta(hours=n)) for n in range(count)]


def test_a_box_alert_reaches_the_case_list_over_the_broker_once(tmp_path: Path, mosquitto: Mosquitto,
                                                                db_url: str) -> None:
    app = app_for(db_url, mqtt_port=mosquitto.port)
    with TestClient(app) as client:
        add_users(app.state.engine)
        wait_for(lambda: app.state.worker.subscribed, timeout=15, what="the hub's subscriptions")
        chain = Chain(SITE, "riverside-box1")
        chain.register(app.state.engine)
        chain.add(alert_payload(), type="alert.raised")
        box = FakeBox(mosquitto.host, mosquitto.port)
        try:
            topic = device_topic(SITE, "riverside-box1", "events")
            box.publish(topic, chain.batch(1, 1))
            wait_for(lambda: box.acks_of("riverside-box1"), timeout=10, what="the hub's ack")
            box.publish(topic, chain.batch(1, 1))  # a box that missed the ack sends the batch again
            wait_for(lambda: len(box.acks_of("riverside-box1")) == 2, timeout=10, what="the second ack")
        finally:
            box.close()
        [case] = client.get("/api/v1/alerts", auth=ANALYST).json()
    assert (case["code"], case["source"], case["count"], case["state"], case["card"]) == (
        "card_points_day", "box", 1, "open", "abababab…")
    assert case["reason"] == "points earned by this card today above the limit"
    assert TOKEN not in str(case)


def test_cases_list_newest_first_with_filters_pages_and_deliveries(client: TestClient) -> None:
    ids = seed_cases(client, 5)
    with engine_of(client).begin() as conn:
        conn.execute(alert_deliveries.insert(), [
            {"alert_id": ids[4], "channel": "owners-mail", "state": "sent", "attempts": 1, "sent_at": T0,
             "last_error": None},
            {"alert_id": ids[4], "channel": "ops-chat", "state": "failing", "attempts": 5, "sent_at": None,
             "last_error": "HTTP 502 from the webhook"}])
    page = client.get("/api/v1/alerts?limit=2", auth=ANALYST).json()
    assert [case["id"] for case in page] == [ids[4], ids[3]]
    assert page[0]["deliveries"] == [
        {"channel": "ops-chat", "state": "failing", "attempts": 5, "last_error": "HTTP 502 from the webhook",
         "sent_at": None},
        {"channel": "owners-mail", "state": "sent", "attempts": 1, "last_error": None,
         "sent_at": "2025-03-14T18:30:00Z"}]
    assert page[1]["deliveries"] == [] and page[1]["card"] is None and page[1]["figures"] == {"points": 3}
    assert (page[0]["reason"], page[0]["member_id"], page[0]["action"]) == (
        "a member's points spent twice by boxes that could not see each other", "m4", None)
    following = client.get(f"/api/v1/alerts?limit=2&before={ids[3]}", auth=ANALYST).json()
    assert [case["id"] for case in following] == [ids[2], ids[1]]

    def listed(query: str) -> list[int]:
        response = client.get(f"/api/v1/alerts?{query}", auth=ANALYST)
        assert response.status_code == 200, response.text
        return [case["id"] for case in response.json()]

    assert listed("site=harbour") == [ids[3], ids[1]]
    assert listed("code=overdraft&severity=warning&state=open") == ids[::-1]
    assert listed("code=velocity") == [] and listed("severity=critical") == []
    assert listed("from=2025-03-14T19:30:00Z&to=2025-03-14T21:30:00Z") == [ids[2], ids[1]]
    for bad in ("state=closed", "severity=grave", "from=yesterday", "from=1700000000", "limit=0", "before=0",
                "site=Not%20A%20Site"):
        assert client.get(f"/api/v1/alerts?{bad}", auth=ANALYST).status_code == 422, bad


def test_moving_a_case_records_who_when_and_why(client: TestClient) -> None:
    [alert_id] = seed_cases(client, 1)
    url = f"/api/v1/alerts/{alert_id}/transition"
    response = client.post(url, json={"to": "acknowledged", "note": "calling the site"}, auth=ANALYST)
    assert response.status_code == 200, response.text
    case = response.json()
    assert (case["state"], case["state_by"], case["note"]) == ("acknowledged", "ann", "calling the site")
    refused = client.post(url, json={"to": "acknowledged"}, auth=ADMIN)
    assert refused.status_code == 409 and "acknowledged already" in refused.json()["detail"]
    assert client.post(url, json={"to": "resolved", "note": "a double swipe"}, auth=ADMIN).status_code == 200
    assert client.post(url, json={"to": "acknowledged"}, auth=ADMIN).status_code == 409
    assert client.post(url, json={"to": "open", "note": "it happened again"}, auth=ANALYST).status_code == 200

    case = client.get(f"/api/v1/alerts/{alert_id}", auth=ANALYST).json()
    assert [(step["from_state"], step["to_state"], step["username"], step["note"]) for step in case["history"]] == [
        (None, "open", None, None),
        ("open", "acknowledged", "ann", "calling the site"),
        ("acknowledged", "resolved", "ada", "a double swipe"),
        ("resolved", "open", "ann", "it happened again")]
    assert case["state"] == "open" and case["state_by"] == "ann"
    assert hq_actions(engine_of(client), "alert.") == [
        ("alert.transition", str(alert_id), who) for who in ("ann", "ada", "ann")]


def test_unknown_cases_and_bad_bodies(client: TestClient) -> None:
    [alert_id] = seed_cases(client, 1)
    assert client.get("/api/v1/alerts/999999", auth=ANALYST).status_code == 404
    assert client.post("/api/v1/alerts/999999/transition", json={"to": "resolved"}, auth=ADMIN).status_code == 404
    secret = "4111 1111 1111 1111"
    for body in ({"to": "closed", "note": secret}, {"to": "resolved", "card": secret}, {"note": secret},
                 {"to": "resolved", "note": "x" * 1001}, {"to": "resolved", "note": "nul\x00" + secret}):
        response = client.post(f"/api/v1/alerts/{alert_id}/transition", json=body, auth=ADMIN)
        assert response.status_code == 422, body
        assert secret not in response.text and "x" * 100 not in response.text
    assert client.get(f"/api/v1/alerts/{alert_id}", auth=ADMIN).json()["state"] == "open"


def test_roles_reading_and_moving_cases(client: TestClient) -> None:
    river, harbour = seed_cases(client, 2)  # riverside, harbour
    for who in (ADMIN, ANALYST):
        assert [case["id"] for case in client.get("/api/v1/alerts", auth=who).json()] == [harbour, river]
        assert client.get("/api/v1/audit", auth=who).status_code == 200
    # A site manager of riverside: riverside's cases only, and they may move them.
    assert [case["id"] for case in client.get("/api/v1/alerts", auth=MANAGER).json()] == [river]
    assert client.get("/api/v1/alerts?site=harbour", auth=MANAGER).status_code == 403
    assert client.get(f"/api/v1/alerts/{harbour}", auth=MANAGER).status_code == 403
    assert client.get(f"/api/v1/alerts/{river}", auth=MANAGER).status_code == 200
    assert client.post(f"/api/v1/alerts/{harbour}/transition", json={"to": "resolved"},
                       auth=MANAGER).status_code == 403
    moved = client.post(f"/api/v1/alerts/{river}/transition", json={"to": "acknowledged", "note": "on it"},
                        auth=MANAGER)
    assert moved.status_code == 200 and moved.json()["state_by"] == "sam"
    assert client.post(f"/api/v1/alerts/{river}/transition", json={"to": "resolved"},
                       auth=("ann", "wrong password")).status_code == 401
    assert client.get(f"/api/v1/alerts/{harbour}", auth=ADMIN).json()["state"] == "open"


def staff_day(client: TestClient) -> None:
    """riverside: c-7 signs in, overrides a price, refunds a sale, signs out; harbour: c-9 opens the drawer."""
    chains = {site: Chain(site, f"{site}-box1") for site in ("riverside", "harbour")}
    for chain in chains.values():
        chain.register(engine_of(client))
    river = chains["riverside"]
    base = {"site_id": "riverside", "till_id": "till-1"}
    river.add(base | {"staff_id": "c-7"}, type="staff.signed_in")
    river.add(base | {"cashier_id": "c-7", "kind": "override", "sale_id": "s-1", "amount": 500},
              type="till.override")
    river.add(base | {"cashier_id": "c-7", "kind": "refund", "refund_id": "r-1", "sale_id": "s-1",
                      "original_till_id": "till-1", "amount": 1200, "card_token": TOKEN}, type="sale.refunded")
    river.add(base | {"staff_id": "c-7"}, type="staff.signed_out")
    chains["harbour"].add({"site_id": "harbour", "till_id": "till-2", "cashier_id": "c-9"},
                          type="till.drawer_opened", occurred_at=T0 + timedelta(minutes=150))
    with engine_of(client).begin() as conn:
        ingest_batch(conn, batch=river.batch(1, 4), site_id="riverside", received_at=T0 + timedelta(hours=3))
        ingest_batch(conn, batch=chains["harbour"].batch(1, 1), site_id="harbour", received_at=T0 + timedelta(hours=3))


def test_the_audit_trail_filters_and_pages_newest_first(client: TestClient) -> None:
    staff_day(client)
    mine = client.get("/api/v1/audit", auth=MANAGER).json()
    assert {row["site_id"] for row in mine} == {"riverside"} and len(mine) == 4
    assert client.get("/api/v1/audit?site=harbour", auth=MANAGER).status_code == 403

    def audit(query: str = "") -> list[dict[str, Any]]:
        response = client.get(f"/api/v1/audit?{query}", auth=ANALYST)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    every = audit()
    assert [(row["site_id"], row["staff_id"], row["action"]) for row in every] == [
        ("harbour", "c-9", "till.drawer_opened"), ("riverside", "c-7", "staff.signed_out"),
        ("riverside", "c-7", "sale.refunded"), ("riverside", "c-7", "till.override"),
        ("riverside", "c-7", "staff.signed_in")]
    refund = every[2]
    assert (refund["amount"], refund["sale_id"], refund["detail"]["card_token"]) == (1200, "s-1", "abababab…")
    assert TOKEN not in str(every)
    assert [row["action"] for row in audit("site=harbour")] == ["till.drawer_opened"]
    assert [row["seq"] for row in audit("staff=c-7&site=riverside")] == [4, 3, 2, 1]
    assert [row["seq"] for row in audit("staff=c-7&from=2025-03-14T18:32:00Z&to=2025-03-14T18:34:00Z")] == [3, 2]
    first = audit("limit=2")
    assert [row["seq"] for row in audit(f"limit=2&before={first[-1]['cursor']}")] == [3, 2]
    assert audit("before=nobody-box:7") == []
    for bad in ("before=riverside-box1", "before=x:0", "staff=a%20b", "from=2025-03-14", "limit=1001"):
        assert client.get(f"/api/v1/audit?{bad}", auth=ANALYST).status_code == 422, bad


def test_admins_set_a_sites_name_and_location(client: TestClient) -> None:
    Chain(SITE, "riverside-box1").register(engine_of(client))
    place = {"name": "Riverside Lyon", "latitude": 45.764, "longitude": 4.8357}
    assert client.put(f"/api/v1/sites/{SITE}", json=place, auth=ANALYST).status_code == 403
    response = client.put(f"/api/v1/sites/{SITE}", json=place, auth=ADMIN)
    assert response.status_code == 200, response.text
    assert {name: response.json()[name] for name in place} == place
    [site] = client.get("/api/v1/sites", auth=ANALYST).json()
    assert (site["name"], site["latitude"], site["longitude"]) == ("Riverside Lyon", 45.764, 4.8357)
    assert client.put("/api/v1/sites/nowhere", json=place, auth=ADMIN).status_code == 404
    for bad in ({"latitude": 90.5, "longitude": 0}, {"latitude": 0, "longitude": -180.5}, {"latitude": 45.0},
                {"name": "x" * 121}, {"name": "tab\there"}, place | {"owner": "me"}, {"latitude": "north"}):
        assert client.put(f"/api/v1/sites/{SITE}", json=bad, auth=ADMIN).status_code == 422, bad
    cleared = client.put(f"/api/v1/sites/{SITE}", json={"name": "Riverside"}, auth=ADMIN).json()
    assert hq_actions(engine_of(client), "site.") == [("site.update", SITE, "ada")] * 2
    assert (cleared["name"], cleared["latitude"], cleared["longitude"]) == ("Riverside", None, None)


def test_a_sites_time_zone_and_its_place_are_set_apart(client: TestClient) -> None:
    # As docs/analytics.md says to: {"timezone": ...} alone must not wipe the location impossible travel needs,
    # and a place set as before (name and location) must not wipe the time zone the analytics count days in.
    Chain(SITE, "riverside-box1").register(engine_of(client))
    place = {"name": "Riverside Lyon", "latitude": 45.764, "longitude": 4.8357}

    def put(body: dict[str, Any]) -> tuple[Any, ...]:
        answer = client.put(f"/api/v1/sites/{SITE}", json=body, auth=ADMIN)
        assert answer.status_code == 200, answer.text
        return tuple(answer.json()[name] for name in ("name", "latitude", "longitude", "timezone"))

    assert put(place) == ("Riverside Lyon", 45.764, 4.8357, None)
    assert put({"timezone": "Europe/Paris"}) == ("Riverside Lyon", 45.764, 4.8357, "Europe/Paris")
    assert put({"name": "Riverside"}) == ("Riverside", None, None, "Europe/Paris")
    assert put(place | {"timezone": "Europe/Lisbon"}) == ("Riverside Lyon", 45.764, 4.8357, "Europe/Lisbon")
    assert put({"timezone": None}) == ("Riverside Lyon", 45.764, 4.8357, None)
