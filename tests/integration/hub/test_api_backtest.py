"""/api/v1/rules/backtest and /rules/sponsors on a real app and database: a draft tried on stored sales in a
background job polled to its figures, admins only, at most two at once; drafts naming films, halls or sites
the hub has never seen are refused by field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import publish_draft
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from tests.support.hub_users import hq_actions
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0, Chain, sale_payload

ADMIN, ANALYST = ("ada", "admin pass phrase"), ("ann", "analyst pass phrase")
BASE: dict[str, Any] = {"currency": "EUR", "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
                        "redemption": {"enabled": True, "points_per_unit": 10}}
CAMPAIGN = {"campaign_id": "dune-double", "name": "Dune double points", "starts_at": "2025-03-01T00:00:00Z",
            "ends_at": "2025-04-01T00:00:00Z", "match": {"films": ["Dune"]}, "bonus_percent": 100,
            "sponsor": "Legendary"}
PERIOD = {"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"}
PAID = [{"rule": "tickets", "points": 240}, {"rule": "campaign:dune-double", "points": 240, "sponsor": "Legendary"}]


def card_sale(site: str, n: int, *, parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Two Dune tickets at 12.00 and a popcorn with card n, 240 points (10 % of the tickets) recorded."""
    return sale_payload(site, sale_id=f"s-{n}") | {"card_token": f"{n:02x}" * 16, "loyalty": {
        "status": "earned", "points_earned": 240, "rules_version": 1,
        "earned_by": parts or [{"rule": "tickets", "points": 240}]}}


@contextmanager
def hub_with_sales(db_url: str, *, parts: list[dict[str, Any]] | None = None) -> Iterator[TestClient]:
    app = create_app(HubSettings(database_url=db_url), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        with engine.begin() as conn:
            for (name, password), role in ((ADMIN, "admin"), (ANALYST, "analyst")):
                add_user(conn, username=name, password_hash=hash_password(password), role=role, created_at=T0)
            publish_draft(conn, BASE, Ed25519PrivateKey.generate(), at=datetime(2025, 1, 1, tzinfo=UTC))
        for site, cards in (("riverside", (1, 2)), ("harbour", (3,))):
            chain = Chain(site, f"{site}-box1")
            chain.register(engine)
            for n in cards:
                chain.add(card_sale(site, n, parts=parts))  # in March 2025 (T0)
            with engine.begin() as conn:
                ingest_batch(conn, batch=chain.batch(1, len(cards)), site_id=site, received_at=T0)
        yield client


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """The hub on SQLite and PostgreSQL with 3 card sales of Dune in March 2025 (2 at riverside, 1 at harbour)."""
    with hub_with_sales(db_url) as client:
        yield client


def finished(client: TestClient, job_id: str) -> dict[str, Any]:
    def poll() -> dict[str, Any] | None:
        answer = client.get(f"/api/v1/rules/backtest/{job_id}", auth=ADMIN)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return None if body["status"] == "running" else body
    job = wait_for(poll, timeout=30, what=f"backtest {job_id} to finish")
    assert job is not None
    return job


def test_a_backtest_answers_202_and_polls_to_done_with_its_progress_and_figures(client: TestClient) -> None:
    answer = client.post("/api/v1/rules/backtest", json={"draft": {**BASE, "campaigns": [CAMPAIGN]}, **PERIOD},
                         auth=ADMIN)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["status"] == "running" and started["job_id"]
    job = finished(client, started["job_id"])
    assert job["status"] == "done" and job["error"] is None
    assert job["progress"] == {"sales_done": 3, "sales_total": 3}
    chain = job["result"]["chain"]
    assert (chain["baseline"]["points_issued"], chain["proposed"]["points_issued"]) == (720, 1440)
    assert chain["difference"]["sponsors"] == {"Legendary": {"points": 720, "money": 72}}
    assert {site: figures["difference"]["points_issued"] for site, figures in job["result"]["sites"].items()} == {
        "harbour": 240, "riverside": 480}

    only = client.post("/api/v1/rules/backtest", json={"draft": BASE, **PERIOD, "sites": ["harbour"]}, auth=ADMIN)
    done = finished(client, only.json()["job_id"])
    assert done["progress"] == {"sales_done": 1, "sales_total": 1} and list(done["result"]["sites"]) == ["harbour"]
    assert hq_actions(client.app.state.engine, "rules.") == [  # type: ignore[attr-defined]
        ("rules.backtest", started["job_id"], "ada"), ("rules.backtest", only.json()["job_id"], "ada")]


def test_an_invalid_draft_or_period_is_refused_by_field_without_echoing_values(client: TestClient) -> None:
    bad = {**BASE, "earning": [{"rule_id": "Tickets!", "kind": "popcorn", "basis_points": -5}]}
    answer = client.post("/api/v1/rules/backtest", json={"draft": bad, **PERIOD}, auth=ADMIN)
    assert answer.status_code == 422
    assert {".".join(problem["loc"]) for problem in answer.json()["detail"]} == {
        "earning.0.rule_id", "earning.0.kind", "earning.0.basis_points"}
    assert all(set(problem) == {"loc", "msg", "type"} for problem in answer.json()["detail"])
    assert "Tickets!" not in answer.text and "popcorn" not in answer.text

    backwards = client.post("/api/v1/rules/backtest", json={"draft": BASE, "from": PERIOD["to"],
                                                            "to": PERIOD["from"]}, auth=ADMIN)
    assert backwards.status_code == 422 and "after" in backwards.text
    secret = "4111111111111111"
    odd = client.post("/api/v1/rules/backtest", json={"draft": BASE, **PERIOD, "sites": [secret], "extra": secret},
                      auth=ADMIN)
    assert odd.status_code == 422 and secret not in odd.text
    assert client.post("/api/v1/rules/backtest", json={"draft": BASE, **PERIOD, "sites": ["dockside"]},
                       auth=ADMIN).json()["detail"] == [
                           {"loc": ["sites", "0"], "msg": "site 'dockside' is not registered", "type": "value_error"}]


def test_admins_and_analysts_backtest_and_read_the_sponsors_bill_and_an_unknown_job_is_404(
        client: TestClient) -> None:
    assert client.post("/api/v1/rules/backtest", json={"draft": BASE, **PERIOD}).status_code == 401
    assert client.get("/api/v1/rules/sponsors", params=PERIOD, auth=ANALYST).status_code == 200
    assert client.get("/api/v1/rules/backtest/" + "0" * 32, auth=ANALYST).status_code == 404
    missing = client.get("/api/v1/rules/backtest/" + "0" * 32, auth=ADMIN)
    assert missing.status_code == 404 and "no such backtest" in missing.json()["detail"]


def test_campaigns_naming_a_film_hall_or_site_the_hub_never_saw_are_refused_by_field(client: TestClient) -> None:
    campaign = {**CAMPAIGN, "match": {"films": ["dune", "Dnue", "Arrival"], "halls": ["1", "7"],
                                      "sites": ["riverside", "dockside"]}}
    draft = {**BASE, "films": [{"title": "ARRIVAL", "genres": ["sci-fi"]}], "campaigns": [campaign]}
    checked = client.post("/api/v1/rules/validate", json=draft, auth=ADMIN).json()
    assert checked["valid"] is False
    problems = {problem["loc"]: problem["msg"] for problem in checked["problems"]}
    assert set(problems) == {"campaigns.0.match.films.1", "campaigns.0.match.halls.1", "campaigns.0.match.sites.1"}
    assert "'Dnue'" in problems["campaigns.0.match.films.1"] and "`films`" in problems["campaigns.0.match.films.1"]
    assert "'7'" in problems["campaigns.0.match.halls.1"] and "'dockside'" in problems["campaigns.0.match.sites.1"]
    refused = client.post("/api/v1/rules/backtest", json={"draft": draft, **PERIOD}, auth=ADMIN)
    assert refused.status_code == 422 and {".".join(p["loc"]) for p in refused.json()["detail"]} == set(problems)
    assert client.post("/api/v1/rules", json=draft, auth=ADMIN).status_code == 422  # nor published
    fixed = {**draft, "campaigns": [{**CAMPAIGN, "match": {"films": ["dune", "Arrival"], "halls": ["1"],
                                                           "sites": ["riverside"]}}]}
    assert client.post("/api/v1/rules/validate", json=fixed, auth=ADMIN).json() == {"valid": True, "problems": []}


def test_a_campaign_naming_hall_imax_matches_the_hall_the_tills_send_as_IMAX(client: TestClient) -> None:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    chain = Chain("harbour", "harbour-box2")
    chain.register(engine)
    chain.add(card_sale("harbour", 4) | {"items": [{"kind": "ticket", "sku": "adult", "film": "Dune", "hall": "IMAX",
                                                    "quantity": 1, "unit_price": 1500}], "total": 1500})
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(1, 1), site_id="harbour", received_at=T0)
    draft = {**BASE, "campaigns": [{**CAMPAIGN, "match": {"films": ["Dune"], "halls": ["imax", "Imax", "1", "7"]}}]}
    checked = client.post("/api/v1/rules/validate", json=draft, auth=ADMIN).json()
    assert [problem["loc"] for problem in checked["problems"]] == ["campaigns.0.match.halls.3"]


def test_a_period_of_401_days_or_ending_2_days_from_now_is_refused_by_field_for_backtests_and_the_bill(
        client: TestClient) -> None:
    now = datetime.now(UTC)

    def iso(at: datetime) -> str:
        return at.isoformat().replace("+00:00", "Z")

    long = {"from": "2024-02-01T00:00:00Z", "to": "2025-03-08T00:00:00Z"}  # 401 days
    ahead = {"from": iso(now - timedelta(days=30)), "to": iso(now + timedelta(days=2))}
    backwards = {"from": PERIOD["to"], "to": PERIOD["from"]}
    for period, message in ((long, "the period is at most 400 days long"),
                            (ahead, "`to` is at most one day after now"),
                            (backwards, "`to` must be after `from`")):
        refused = client.post("/api/v1/rules/backtest", json={"draft": BASE, **period}, auth=ADMIN)
        expected = [{"loc": ["to"], "msg": message, "type": "value_error"}]
        assert refused.status_code == 422 and refused.json()["detail"] == expected
        bill = client.get("/api/v1/rules/sponsors", params=period, auth=ADMIN)
        assert bill.status_code == 422 and bill.json()["detail"] == expected
    year = {"from": "2024-02-02T00:00:00Z", "to": "2025-03-08T00:00:00Z"}  # 400 days
    soon = {"from": iso(now - timedelta(days=30)), "to": iso(now + timedelta(hours=23))}
    for period in (year, soon):
        assert client.get("/api/v1/rules/sponsors", params=period, auth=ADMIN).status_code == 200
        started = client.post("/api/v1/rules/backtest", json={"draft": BASE, **period}, auth=ADMIN)
        assert started.status_code == 202 and finished(client, started.json()["job_id"])["status"] == "done"


def test_the_sponsors_bill_of_recorded_sales_per_sponsor_campaign_and_site(db_url: str) -> None:
    with hub_with_sales(db_url, parts=PAID) as client:
        bill = client.get("/api/v1/rules/sponsors", params=PERIOD, auth=ADMIN)
        assert bill.status_code == 200
        assert bill.json()["sponsors"] == [{"sponsor": "Legendary", "points": 720, "money": 72}]
        assert [(row["site_id"], row["campaign"], row["points"], row["money"]) for row in bill.json()["rows"]] == [
            ("harbour", "dune-double", 240, 24), ("riverside", "dune-double", 480, 48)]
        before = client.get("/api/v1/rules/sponsors", params={"from": "2025-01-01T00:00:00Z",
                                                              "to": "2025-02-01T00:00:00Z"}, auth=ADMIN)
        assert before.json()["sponsors"] == [] and before.json()["rows"] == []
        assert client.get("/api/v1/rules/sponsors", params={"from": "2025-03-01"}, auth=ADMIN).status_code == 422


def test_a_third_backtest_while_two_run_is_refused_with_429(postgres_url: str) -> None:
    with hub_with_sales(postgres_url) as client:
        engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
        body = {"draft": BASE, **PERIOD}
        # Readers of `events` wait behind an exclusive lock: the two jobs run until it goes (PostgreSQL only;
        # SQLite's WAL never makes a reader wait).
        with engine.connect() as locker:
            locker.execute(sa.text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
            first, second = (client.post("/api/v1/rules/backtest", json=body, auth=ADMIN) for _ in range(2))
            assert (first.status_code, second.status_code) == (202, 202)
            third = client.post("/api/v1/rules/backtest", json=body, auth=ADMIN)
            assert third.status_code == 429 and third.headers["Retry-After"] == "30"
            assert json.loads(third.text)["detail"].startswith("two backtests are running")
            locker.rollback()
        assert all(finished(client, job.json()["job_id"])["status"] == "done" for job in (first, second))
        fourth = client.post("/api/v1/rules/backtest", json=body, auth=ADMIN)  # room again
        assert fourth.status_code == 202 and finished(client, fourth.json()["job_id"])["status"] == "done"
