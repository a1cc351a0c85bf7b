"""/api/v1/analytics/members through a real app and database: what an analyst and a site manager see."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import publish_draft
from cloud.db.schema import member_cards, members
from cloud.db.users import add_user
from cloud.ingest.store import ingest_batch
from cloud.settings import HubSettings
from tests.unit.hub.factories import Chain, sale_payload

ANALYST = ("ana", "analyst password 1")
MANAGER = ("sam", "site manager password 1")
API = "/api/v1/analytics/members"
NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
TODAY = NOON.date()
# Member (card) -> site and the days ago of each visit: a weekly regular who stopped 30 days ago, an occasional
# member (every 60 days, last seen 100 days ago), a new one, and one of site-b.
VISITS = {"regular": ("site-a", (58, 51, 44, 37, 30)), "occasional": ("site-a", (220, 160, 100)),
          "new": ("site-a", (1,)), "other": ("site-b", (3, 2))}
TOKENS = {name: f"{n:02x}" * 16 for n, name in enumerate(VISITS, start=1)}


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {name: hash_password(password) for name, password in (ANALYST, MANAGER)}


@pytest.fixture
def client(db_url: str, hashes: dict[str, str]) -> Iterator[TestClient]:
    """An app over a database with the members above (the regular reached by the spring campaign), an analyst and
    a site manager of site-a; member counts refreshed after every read."""
    app = create_app(HubSettings(database_url=db_url, member_snapshot_s=0.001), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        with engine.begin() as conn:
            add_user(conn, username=ANALYST[0], password_hash=hashes[ANALYST[0]], role="analyst", created_at=NOON)
            add_user(conn, username=MANAGER[0], password_hash=hashes[MANAGER[0]], role="site_manager",
                     created_at=NOON, sites=["site-a"])
            publish_draft(conn, {
                "currency": "EUR", "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}],
                "tiers": {"levels": [{"tier_id": "blue", "name": "Blue"},
                                     {"tier_id": "silver", "name": "Silver", "min_visits": 5},
                                     {"tier_id": "gold", "name": "Gold", "min_visits": 6}], "window_months": 12},
                "films": [{"title": "Dune", "genres": ["scifi", "drama"]}],
                "campaigns": [{"campaign_id": "spring", "name": "Spring", "bonus_percent": 50,
                               "starts_at": (NOON - timedelta(days=40)).isoformat(),
                               "ends_at": (NOON - timedelta(days=20)).isoformat()}]},
                Ed25519PrivateKey.generate(), at=NOON - timedelta(days=400))
        for site in ("site-a", "site-b"):
            chain = Chain(site, f"box-{site}")
            chain.register(engine)
            for name, (where, days) in VISITS.items():
                for ago in days if where == site else ():
                    spring = ago in (37, 30)
                    chain.add(sale_payload(site, sale_id=f"{name}-{ago}") | {"card_token": TOKENS[name], "loyalty": {
                        "status": "earned", "points_earned": 15 if spring else 10, "earned_by": [
                            {"rule": "tickets", "points": 10}, *([{"rule": "campaign:spring", "points": 5}]
                                                                 if spring else [])]}},
                              occurred_at=NOON - timedelta(days=ago))
            with engine.begin() as conn:
                ingest_batch(conn, batch=chain.batch(1, len(chain.events)), site_id=site, received_at=NOON)
        yield client


def ids(client: TestClient) -> dict[str, str]:
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        by_token = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)).all())
    return {name: by_token[token] for name, token in TOKENS.items()}


def get(client: TestClient, path: str, auth: tuple[str, str] = ANALYST, **params: Any) -> Any:
    response = client.get(API + path, params=params, auth=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_member_analytics_for_analysts_and_site_managers(client: TestClient) -> None:
    """One scenario (its set-up is the costly part): what an analyst sees, what a site manager sees, and member
    counts following new sales."""
    what_an_analyst_sees(client)
    a_site_manager_sees_the_members_of_their_sites_only(client)
    member_counts_follow_new_sales_after_a_refresh(client)


def what_an_analyst_sees(client: TestClient) -> None:
    member = ids(client)
    summary = get(client, "/summary")
    first_visits = [TODAY - timedelta(days=max(days)) for _, days in VISITS.values()]
    assert {key: summary[key] for key in ("members", "active_30d", "active_90d", "new_this_month")} == {
        "members": 4, "active_30d": 2, "active_90d": 3,
        "new_this_month": sum(day >= TODAY.replace(day=1) for day in first_visits)}
    assert summary["visits_per_active_member_30d"] == 1.5  # 3 visits in 30 days by the new and site-b's member
    assert summary["spend_per_member"] == 11 * 2850 / 4 and summary["currency"] == "EUR"

    segments = {row["segment"]: row for row in get(client, "/segments")["segments"]}
    assert {name: row["members"] for name, row in segments.items() if row["members"]} == {
        "loyal": 1, "at_risk": 1, "new": 1, "promising": 1}
    assert segments["loyal"]["avg_visits"] == 5 and segments["loyal"]["share"] == 0.25

    churn = get(client, "/churn")
    assert [line["member_id"] for line in churn["items"]] == [member["regular"]] and "2.5 x" in churn["rule"]
    line = churn["items"][0]
    assert (line["days_since"], line["visits"], line["interval_days"], line["spend"]) == (30, 5, 7.0, 5 * 2850)

    ranked = [member[name] for name in ("regular", "occasional", "other", "new")]  # by spend
    assert [line["member_id"] for line in get(client, "/top", by="spend")["items"]] == ranked
    pages, before = [], None
    while True:
        page = get(client, "/top", by="spend", limit=1, **({"before": before} if before else {}))
        pages += [line["member_id"] for line in page["items"]]
        before = page["next"]
        if before is None:
            break
    assert pages == ranked
    assert get(client, "/top", by="points")["items"][0]["points_earned"] == 5 * 10 + 2 * 5
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        balances = sorted(((int(b), str(m)) for m, b in conn.execute(sa.select(members.c.member_id,
                                                                               members.c.balance))), reverse=True)
    assert [(line["balance"], line["member_id"]) for line in get(client, "/top", by="balance")["items"]] == balances

    close = get(client, "/tier-close")["items"]
    assert [(row["member_id"], row["tier"], row["change"], row["target"], row["visits_short"]) for row in close] == [
        (member["regular"], "silver", "up", "gold", 1)]
    assert close[0]["gap"] == 0.166

    preferences = get(client, "/preferences")
    assert preferences["genres"] == [{"name": "drama", "members": 4, "share": 1.0}]  # Dune: scifi and drama
    assert preferences["day_parts"] == [{"name": "afternoon", "members": 4, "share": 1.0}]

    effect = get(client, "/campaigns/spring/effect", days=28)
    # The regular had 3 visits in the 28 days before the start, like no member the campaign did not reach.
    assert (effect["reached"], effect["unmatched"], effect["complete"]) == (1, 1, True)
    assert effect["strata"][3]["reached_visits_after"] == 2
    assert client.get(API + "/campaigns/autumn/effect", auth=ANALYST).status_code == 404
    for path, params in (("/top", {"by": "name"}), ("/churn", {"before": "x"}), ("/churn", {"limit": 0}),
                         ("/campaigns/spring/effect", {"days": 0}), ("/summary", {"site": "../a"})):
        response = client.get(API + path, params=params, auth=ANALYST)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "query", (path, params)


def a_site_manager_sees_the_members_of_their_sites_only(client: TestClient) -> None:
    member = ids(client)
    assert get(client, "/summary", auth=MANAGER)["members"] == 3
    assert get(client, "/summary", auth=MANAGER, site="site-a")["members"] == 3
    top = get(client, "/top", auth=MANAGER, by="balance")["items"]
    assert {line["member_id"] for line in top} == {member[name] for name in ("regular", "occasional", "new")}
    assert {line["home_site"] for line in get(client, "/top", auth=MANAGER)["items"]} == {"site-a"}
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:  # points given at HQ, without a sale: the order follows after a refresh
        conn.execute(members.update().where(members.c.member_id == member["occasional"]).values(balance=10**6))
    get(client, "/summary")
    first = get(client, "/top", auth=MANAGER, by="balance")["items"][0]
    assert (first["member_id"], first["balance"]) == (member["occasional"], 10**6)
    assert sum(row["members"] for row in get(client, "/segments", auth=MANAGER)["segments"]) == 3
    for path in ("/summary", "/segments", "/churn", "/top", "/tier-close", "/preferences",
                 "/campaigns/spring/effect"):
        response = client.get(API + path, params={"site": "site-b"}, auth=MANAGER)
        assert response.status_code == 403, path
    assert get(client, "/summary", site="site-b")["members"] == 1  # an analyst may narrow to any site


def member_counts_follow_new_sales_after_a_refresh(client: TestClient) -> None:
    assert get(client, "/summary")["members"] == 4
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    chain = Chain("site-a", "box-late")
    chain.register(engine)
    chain.add(sale_payload("site-a", sale_id="late") | {"card_token": "ee" * 16}, occurred_at=NOON)
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(1, 1), site_id="site-a", received_at=NOON)
    stale = get(client, "/summary")  # answered from the snapshot, which is refreshed after the answer
    fresh = get(client, "/summary")
    assert (stale["members"], fresh["members"]) == (4, 5)
    assert datetime.fromisoformat(fresh["as_of"]) > datetime.fromisoformat(stale["as_of"])
    assert date.fromisoformat(fresh["as_of"][:10]) >= TODAY
