"""/api/v1/feedback and /api/v1/complaints through a real app and database, fed by answers to the public form: NPS
numbers by site, film, hall and local day; answers newest first with comments for admins and the site's managers
only (each read audited); complaints from the form and from HQ through their lifecycle, overdue, audited, and
their handling times for the reports; a site manager limited to their sites everywhere; tickets kept on ingest."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.db.access_tables import hq_audit
from cloud.db.feedback_tables import complaints, feedback_tickets
from cloud.db.schema import sites
from cloud.db.users import add_user
from cloud.feedback.report import complaint_times
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from protocol.feedback import ticket_code
from tests.support.feedback import MEMBER_KEY, sell
from tests.unit.hub.factories import Chain, sale_payload

PASSWORD = "feedback test password 1"
ADMIN, ANALYST, MANAGER, OTHER = ("ada", PASSWORD), ("ann", PASSWORD), ("max", PASSWORD), ("dan", PASSWORD)
NOW = datetime.now(UTC)
YESTERDAY = (NOW - timedelta(days=1)).date()
BOXES = itertools.count(1)
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def client(db_url: str, password_hash: str) -> Iterator[TestClient]:
    """A hub with sites riverside (Europe/Paris) and downtown, an admin, an analyst, riverside's manager (max) and
    downtown's (dan)."""
    app = create_app(HubSettings(database_url=db_url, member_key=MEMBER_KEY, complaint_response_hours={"staff": 24}),
                     start_ingest=False)
    with TestClient(app) as client:
        engine = engine_of(client)
        for site_id in ("riverside", "downtown"):
            Chain(site_id, f"{site_id}-box").register(engine)
        with engine.begin() as conn:
            conn.execute(sites.update().where(sites.c.site_id == "riverside").values(timezone="Europe/Paris"))
            for (name, _), role, where in ((ADMIN, "admin", None), (ANALYST, "analyst", None),
                                           (MANAGER, "site_manager", ("riverside",)),
                                           (OTHER, "site_manager", ("downtown",))):
                add_user(conn, username=name, password_hash=password_hash, role=role, created_at=NOW, sites=where)
        yield client


def engine_of(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def answer(client: TestClient, site_id: str, *, show_at: datetime | None = None, title: str = "Arrival",
           room: str = "h1", **fields: Any) -> str:
    """Sell a ticket at `site_id` for `title` in hall `room` at `show_at` (yesterday noon UTC) and answer its form
    with `fields`; its code."""
    show = show_at or datetime.combine(YESTERDAY, datetime.min.time(), UTC).replace(hour=12)
    chain = Chain(site_id, f"{site_id}-box-{next(BOXES)}")
    chain.register(engine_of(client))
    code = sell(engine_of(client), chain, sold_at=show - timedelta(hours=2), show_at=show, film=title, hall=room)
    posted = client.post(f"/f/{site_id}/{code}", data={name: str(value) for name, value in fields.items()})
    assert posted.status_code == 200, posted.text
    return code


def get(client: TestClient, path: str, who: tuple[str, str], **params: Any) -> Any:
    response = client.get(path, params=params, auth=who)
    assert response.status_code == 200, (path, who[0], response.text)
    return response.json()


def test_nps_by_site_film_hall_and_local_day_and_as_a_site_manager_sees_it(client: TestClient) -> None:
    late_show = datetime.combine(YESTERDAY, datetime.min.time(), UTC).replace(hour=23, minute=30)  # Paris: today
    answer(client, "riverside", show_at=late_show, nps=10, film=5)
    answer(client, "riverside", nps=9, film=4)
    again = answer(client, "riverside", nps=6)
    assert client.post(f"/f/riverside/{again}", data={"nps": "0"}).status_code == 409  # counted once, below
    answer(client, "riverside", title="Blade Runner", room="h2", nps=8, hall=2)
    answer(client, "downtown", nps=0, staff=1)
    nps = "/api/v1/feedback/nps"

    by_site = get(client, nps, ANALYST)
    assert by_site == [
        {"key": "downtown", "answers": 1, "promoters": 0, "passives": 0, "detractors": 1, "nps": -100.0,
         "averages": {"film": None, "hall": None, "staff": 1.0}},
        {"key": "riverside", "answers": 4, "promoters": 2, "passives": 1, "detractors": 1, "nps": 25.0,
         "averages": {"film": 4.5, "hall": 2.0, "staff": None}}]
    assert [(row["key"], row["answers"], row["nps"]) for row in get(client, nps, ANALYST, group="film")] == [
        ("Arrival", 4, 0.0), ("Blade Runner", 1, 0.0)]
    assert [(row["key"], row["answers"]) for row in get(client, nps, ANALYST, group="hall")] == [
        ("downtown/h1", 1), ("riverside/h1", 3), ("riverside/h2", 1)]
    today = (YESTERDAY + timedelta(days=1)).isoformat()
    assert [(row["key"], row["answers"]) for row in get(client, nps, ANALYST, group="day")] == [
        (YESTERDAY.isoformat(), 4), (today, 1)]
    assert [row["answers"] for row in get(client, nps, ANALYST, group="site", **{"from": today})] == [1]

    mine = get(client, nps, MANAGER, group="film")
    assert [(row["key"], row["answers"]) for row in mine] == [("Arrival", 3), ("Blade Runner", 1)]
    assert client.get(nps, params={"site": "downtown"}, auth=MANAGER).status_code == 403
    for bad in ({"group": "cashier"}, {"from": "1999-12-31"}, {"from": "20250101"}, {"site": "Not a site"}):
        refused = client.get(nps, params=bad, auth=ANALYST)
        assert refused.status_code == 422 and set(refused.json()["detail"][0]) == {"loc", "msg", "type"}, bad


@SQLITE_ONLY  # plain reads and writes: the SQL both databases share is covered above
def test_answers_newest_first_with_comments_for_admins_and_the_sites_managers_only(client: TestClient) -> None:
    answer(client, "riverside", nps=9)
    answer(client, "riverside", nps=3, comment="Too loud. <b>Call</b> me: 06 11 22 33 44")
    answer(client, "downtown", nps=10, comment="Great \"bar\"")
    path = "/api/v1/feedback/answers"

    seen = get(client, path, ADMIN)
    assert [(row["site_id"], row["nps"]) for row in seen] == [("downtown", 10), ("riverside", 3), ("riverside", 9)]
    assert [row["comment"] for row in seen] == ["Great \"bar\"", "Too loud. <b>Call</b> me: 06 11 22 33 44", None]
    assert [row["has_comment"] for row in seen] == [True, True, False]
    assert [row["comment"] for row in get(client, path, ANALYST)] == [None, None, None]
    mine = get(client, path, MANAGER)
    assert [(row["site_id"], row["comment"]) for row in mine] == [
        ("riverside", "Too loud. <b>Call</b> me: 06 11 22 33 44"), ("riverside", None)]
    assert client.get(path, params={"site": "downtown"}, auth=MANAGER).status_code == 403
    page = get(client, path, ADMIN, limit=2)
    rest = get(client, path, ADMIN, limit=2, before=page[-1]["id"])
    assert [row["id"] for row in page + rest] == [row["id"] for row in seen]
    assert rest[-1]["film"] == "Arrival" and rest[-1]["day"] == YESTERDAY.isoformat()
    with engine_of(client).connect() as conn:
        reads = conn.execute(sa.select(hq_audit.c.username, hq_audit.c.detail)
                             .where(hq_audit.c.action == "feedback.comments.read").order_by(hq_audit.c.id)).all()
    assert [(row.username, row.detail) for row in reads] == [
        ("ada", {"comments": 2}), ("max", {"comments": 1}), ("ada", {"comments": 2})]


@SQLITE_ONLY
def test_complaints_from_the_form_and_from_hq_through_their_lifecycle(client: TestClient) -> None:
    answer(client, "riverside", nps=2, comment="Dirty seats. jo@example.org", complaint="cleanliness")
    path = "/api/v1/complaints"
    [from_form] = get(client, path, ADMIN)
    assert (from_form["category"], from_form["state"], from_form["source"], from_form["created_by"],
            from_form["overdue"]) == ("cleanliness", "open", "form", None, False)
    detail = get(client, f"{path}/{from_form['id']}", MANAGER)
    assert detail["answer"]["comment"] == "Dirty seats. jo@example.org" and len(detail["history"]) == 1
    assert get(client, f"{path}/{from_form['id']}", ANALYST)["answer"]["comment"] is None

    made = client.post(path, json={"site_id": "riverside", "category": "staff", "owner": "max",
                                   "note": "rude at the bar, phoned in"}, auth=MANAGER)
    assert made.status_code == 201, made.text
    staff = made.json()
    assert (staff["source"], staff["created_by"], staff["owner"]) == ("hq", "max", "max")
    assert datetime.fromisoformat(staff["due_at"]) - datetime.fromisoformat(staff["created_at"]) == timedelta(hours=24)
    assert client.post(path, json={"site_id": "downtown", "category": "staff"}, auth=MANAGER).status_code == 403
    for stranger in ("dan", "nobody"):  # dan does not manage riverside
        refused = client.post(path, json={"site_id": "riverside", "category": "staff", "owner": stranger},
                              auth=ADMIN)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "owner"]
    assert client.post(path, json={"site_id": "riverside", "category": "refunds"}, auth=ADMIN).status_code == 422
    unknown = client.post(path, json={"site_id": "nowhere", "category": "staff"}, auth=ADMIN)
    assert unknown.status_code == 422 and unknown.json()["detail"] == [
        {"loc": ["body", "site_id"], "msg": "no such site", "type": "value_error"}]

    move = f"{path}/{from_form['id']}/transition"
    moves: list[tuple[str, str | None]] = [("in_progress", "max"), ("answered", None), ("resolved", None),
                                           ("closed", None)]
    for to, owner in moves:
        moved = client.post(move, json={"to": to, "owner": owner, "note": f"now {to}"}, auth=MANAGER)
        assert moved.status_code == 200, moved.text
    done = moved.json()
    assert (done["state"], done["owner"]) == ("closed", "max")
    assert done["responded_at"] is not None and done["resolved_at"] is not None
    assert [(h["from_state"], h["to_state"]) for h in done["history"]] == [
        (None, "open"), ("open", "in_progress"), ("in_progress", "answered"), ("answered", "resolved"),
        ("resolved", "closed")]
    assert client.post(move, json={"to": "answered"}, auth=MANAGER).status_code == 409
    assert client.post(move, json={"to": "closed"}, auth=MANAGER).status_code == 409
    assert client.post(move, json={"to": "in_progress"}, auth=OTHER).status_code == 403
    assert client.get(f"{path}/{from_form['id']}", auth=OTHER).status_code == 403
    assert client.post(f"{path}/999999/transition", json={"to": "closed"}, auth=ADMIN).status_code == 404
    assert get(client, path, OTHER) == []

    with engine_of(client).begin() as conn:  # the staff complaint waits past its deadline
        conn.execute(complaints.update().where(complaints.c.id == staff["id"])
                     .values(due_at=NOW - timedelta(hours=1)))
    [late] = get(client, path, ADMIN, overdue="true")
    assert (late["id"], late["overdue"]) == (staff["id"], True)

    with engine_of(client).connect() as conn:
        times = complaint_times(conn, sites=frozenset({"riverside"}), start=NOW - timedelta(days=1),
                                end=NOW + timedelta(days=1), now=NOW + timedelta(minutes=5))
        assert [(t.category, t.opened, t.resolved, t.overdue) for t in times] == [
            ("cleanliness", 1, 1, 0), ("staff", 1, 0, 1)]
        assert times[0].median_response_hours is not None and times[0].median_resolution_hours is not None
        assert times[1].median_response_hours is None
        assert complaint_times(conn, sites=frozenset({"downtown"}), start=NOW - timedelta(days=1),
                               end=NOW + timedelta(days=1)) == []
        actions = conn.execute(sa.select(hq_audit.c.action, hq_audit.c.username).where(
            hq_audit.c.action.like("complaint.%")).order_by(hq_audit.c.id)).all()
    assert [tuple(row) for row in actions] == [("complaint.create", "max")] + [("complaint.transition", "max")] * 4


def test_ingest_keeps_the_code_of_each_sale_with_a_ticket(engine: sa.Engine) -> None:
    chain = Chain("riverside", "box-1")
    chain.register(engine)
    show = NOW.replace(microsecond=0) + timedelta(hours=2)
    with_ticket = sale_payload("riverside", film="Arrival", hall="h3")
    with_ticket["items"][0]["showtime"] = show.isoformat()
    bar_only = sale_payload("riverside", sale_id="s-bar")
    bar_only["items"] = bar_only["items"][1:]
    bar_only["total"] = 450
    sold = chain.add(with_ticket, occurred_at=NOW)
    chain.add(bar_only, occurred_at=NOW)
    chain.add({"note": "a type this hub does not know"}, type="device.note")
    chain.add(film=None, hall=None, occurred_at=NOW)
    for _ in range(2):  # a batch delivered twice keeps one row per sale
        with engine.begin() as conn:
            ingest_batch(conn, batch=chain.batch(1, 4), site_id="riverside", received_at=NOW)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(feedback_tickets).order_by(feedback_tickets.c.seq)).all()
    assert [(r.code, r.site_id, r.device_id, r.seq, r.film, r.hall, r.showtime, r.sold_at) for r in rows] == [
        (ticket_code(sold.hash), "riverside", "box-1", 1, "Arrival", "h3", show, NOW),
        (ticket_code(chain.events[3].hash), "riverside", "box-1", 4, None, None, None, NOW)]
