"""The access matrix, route by route: what a site manager of site-a gets from every /api/v1 route of the OpenAPI,
with data at site-a and site-b. Each route either keeps to site-a (a list without site-b's data; `site=site-b`
or a site-b resource is 403) or is refused outright (403), as docs/access.md says.

A route added without a row here fails `test_every_api_route_has_a_row`: decide what a site manager may do with
it, make the route do it, and add the row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.feedback.complaints import open_complaint
from cloud.fraud.cases import raise_alert
from cloud.ingest.store import ingest_batch
from cloud.staff.store import put_staff
from tests.support.hub_users import bearer, hub_settings, make_token, make_user
from tests.unit.hub.factories import T0, Chain

MINE, OTHER = "site-a", "site-b"


@dataclass(frozen=True)
class Forbidden:
    """403 outright: chain-wide data, or work for other roles. `params` fill the path; `body` is sent as JSON."""

    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Scoped:
    """Kept to the viewer's sites: `site` (the query parameter `param`) set to site-b is 403, to site-a not; without
    it the answer holds nothing of site-b (`proof`: the admin's same answer does, so the check can fail).
    `stream`: the answer never ends (server-sent events), so only the 403 is tried."""

    query: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    param: str = "site"
    proof: bool = False
    stream: bool = False


@dataclass(frozen=True)
class SitePath:
    """The path names a site (`site_id`): site-b is 403, site-a is not."""

    params: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Resource:
    """A resource of one site: site-b's (`theirs` names it, from the seeded world) is 403, site-a's (`mine`) is not."""

    param: str
    mine: str
    theirs: str
    body: Any = None


@dataclass(frozen=True)
class BodySite:
    """The JSON body names a site (`site_id`): site-b is 403, site-a is not."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Open:
    """Every role, nothing of a site in it."""


Row = Forbidden | Scoped | SitePath | Resource | BodySite | Open
PERIOD = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-20T00:00:00Z"}
DAYS = {"from": "2025-03-01", "to": "2025-03-20"}

MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/api/v1/sites"): Scoped(proof=True, param=""),
    ("PUT", "/api/v1/sites/{site_id}"): Forbidden({"site_id": MINE}, body={"name": "A"}),
    ("GET", "/api/v1/stats/box-office"): Scoped({"group_by": "site"}, proof=True),
    ("GET", "/api/v1/rules"): Forbidden(),
    ("POST", "/api/v1/rules"): Forbidden(body={}),
    ("POST", "/api/v1/rules/validate"): Forbidden(body={}),
    ("POST", "/api/v1/rules/backtest"): Forbidden(body={"draft": {}, **PERIOD}),
    ("GET", "/api/v1/rules/backtest/{job_id}"): Forbidden({"job_id": "0" * 32}),
    ("GET", "/api/v1/rules/sponsors"): Forbidden(query=PERIOD),
    ("POST", "/api/v1/members"): Forbidden(body={}),
    ("POST", "/api/v1/members/search"): Forbidden(body={"phone": "+33600000000"}),
    ("GET", "/api/v1/members/{member_id}"): Forbidden(),
    ("PATCH", "/api/v1/members/{member_id}"): Forbidden(body={}),
    ("DELETE", "/api/v1/members/{member_id}"): Forbidden(),
    ("POST", "/api/v1/members/{member_id}/cards"): Forbidden(body={}),
    ("PUT", "/api/v1/members/{member_id}/cards/{token}"): Forbidden(body={"state": "lost"}),
    ("GET", "/api/v1/members/{member_id}/ledger"): Forbidden(),
    ("GET", "/api/v1/overdrafts"): Forbidden(),
    ("GET", "/api/v1/alerts"): Scoped(proof=True),
    ("GET", "/api/v1/alerts/{alert_id}"): Resource("alert_id", "alert-a", "alert-b"),
    ("POST", "/api/v1/alerts/{alert_id}/transition"): Resource("alert_id", "alert-a", "alert-b",
                                                                body={"to": "acknowledged"}),
    ("GET", "/api/v1/audit"): Scoped(proof=True),
    ("GET", "/api/v1/audit/hq"): Forbidden(),
    ("GET", "/api/v1/staff"): Scoped(proof=True),
    ("GET", "/api/v1/staff/{staff_id}"): Resource("staff_id", "c-a", "c-b"),
    ("PUT", "/api/v1/staff/{staff_id}"): Forbidden({"staff_id": "c-a"}, body={"role": "cashier"}),
    ("DELETE", "/api/v1/staff/{staff_id}"): Forbidden({"staff_id": "c-a"}),
    ("POST", "/api/v1/staff/{staff_id}/badges"): Forbidden({"staff_id": "c-a"}, body={}),
    ("DELETE", "/api/v1/staff/{staff_id}/badges/{token}"): Forbidden({"staff_id": "c-a"}),
    ("GET", "/api/v1/blocklist"): Forbidden(),
    ("POST", "/api/v1/blocklist"): Forbidden(body={}),
    ("DELETE", "/api/v1/blocklist/{kind}/{value}"): Forbidden({"kind": "member"}),
    ("GET", "/api/v1/reports/fraud-daily"): Scoped({"day": "2025-03-14"}, proof=True),
    ("GET", "/api/v1/users/me"): Open(),
    ("GET", "/api/v1/users"): Forbidden(),
    ("POST", "/api/v1/users"): Forbidden(body={}),
    ("PATCH", "/api/v1/users/{username}"): Forbidden({"username": "sam"}, body={"role": "admin"}),
    ("POST", "/api/v1/users/{username}/unlock"): Forbidden({"username": "sam"}),
    ("GET", "/api/v1/tokens"): Forbidden(),
    ("POST", "/api/v1/tokens"): Forbidden(body={}),
    ("DELETE", "/api/v1/tokens/{token_id}"): Forbidden({"token_id": "0" * 16}),
    ("GET", "/api/v1/health"): Open(),
    # The analytics, reports, feedback and dashboard routes, as the contract has them (viewer.scope(site)).
    ("GET", "/api/v1/analytics/box-office"): Scoped({"group": "site", **DAYS}, proof=True),
    ("GET", "/api/v1/analytics/occupancy"): Scoped({"group": "site"}),
    ("GET", "/api/v1/analytics/today"): Scoped(proof=True),
    ("GET", "/api/v1/analytics/film-trend"): Scoped({"film": "Dune"}),
    ("GET", "/api/v1/sites/{site_id}/halls"): SitePath(),
    ("PUT", "/api/v1/sites/{site_id}/halls/{hall}"): Forbidden({"site_id": MINE, "hall": "1"}, body={"seats": 100}),
    ("DELETE", "/api/v1/sites/{site_id}/halls/{hall}"): Forbidden({"site_id": MINE, "hall": "1"}),
    ("GET", "/api/v1/analytics/members/summary"): Scoped(),
    ("GET", "/api/v1/analytics/members/segments"): Scoped(),
    ("GET", "/api/v1/analytics/members/churn"): Scoped(),
    ("GET", "/api/v1/analytics/members/top"): Scoped({"by": "visits"}),
    ("GET", "/api/v1/analytics/members/tier-close"): Scoped(),
    ("GET", "/api/v1/analytics/members/preferences"): Scoped(),
    ("GET", "/api/v1/analytics/members/campaigns/{campaign_id}/effect"): Scoped(params={"campaign_id": "spring"}),
    ("GET", "/api/v1/reports/periodic/{period}"): Scoped(params={"period": "2025-03"}, proof=True),
    ("GET", "/api/v1/exports/transactions"): Scoped(DAYS, proof=True),
    ("GET", "/api/v1/feedback/nps"): Scoped(),
    ("GET", "/api/v1/feedback/answers"): Scoped(),
    ("GET", "/api/v1/complaints"): Scoped(proof=True),
    ("POST", "/api/v1/complaints"): BodySite({"category": "staff"}),
    ("GET", "/api/v1/complaints/{complaint_id}"): Resource("complaint_id", "complaint-a", "complaint-b"),
    ("POST", "/api/v1/complaints/{complaint_id}/transition"): Resource(
        "complaint_id", "complaint-a", "complaint-b", body={"to": "in_progress"}),
    ("GET", "/api/v1/live"): Scoped(stream=True),
}
"""What a site manager of site-a gets from each route (method, path as the OpenAPI writes it)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    """An app with sales, alert cases, staff actions and staff accounts at site-a and site-b; a client, the admin's
    headers, the site manager's headers; the seeded ids in the app's state (`ids`)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'hub.db'}"
    app = create_app(hub_settings(url), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        make_user(engine, "ada", "admin")
        make_user(engine, "sam", "site_manager", sites=[MINE])
        app.state.ids = _seed(engine)
        yield client, bearer(make_token(engine, "ada")), bearer(make_token(engine, "sam"))


def _seed(engine: sa.Engine) -> dict[str, str]:
    ids: dict[str, str] = {}
    for site in (MINE, OTHER):
        chain = Chain(site, f"{site}-box")
        chain.register(engine)
        chain.sales(2, film="Dune")
        chain.add({"site_id": site, "till_id": "till-1", "staff_id": f"c-{site[-1]}"}, type="staff.signed_in")
        with engine.begin() as conn:
            ingest_batch(conn, batch=chain.batch(1, 3), site_id=site, received_at=T0 + timedelta(hours=1))
            ids[f"alert-{site[-1]}"] = str(raise_alert(
                conn, dedupe_key=f"hub:test:{site}", code="overdraft", severity="warning", source="hub",
                site_id=site, summary=f"a case at {site}", first_at=T0, at=T0))
            put_staff(conn, staff_id=f"c-{site[-1]}", role="cashier", sites_of=[site], at=T0)
            ids[f"c-{site[-1]}"] = f"c-{site[-1]}"
            ids[f"complaint-{site[-1]}"] = str(open_complaint(conn, site_id=site, category="cleanliness", source="hq",
                                                              at=T0, response_hours=24, by="admin"))
    with engine.begin() as conn:  # works at both: a site manager of site-a sees only site-a among its sites
        put_staff(conn, staff_id="c-ab", role="supervisor", sites_of=["site-a", "site-b"], at=T0)
    return ids


def _path(template: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: params.get(match.group(1), "x1"), template)


def allowed(answer: Any) -> bool:
    """Not refused: done, or 404 for what the seeded world lacks (a campaign no bundle has)."""
    return bool(answer.status_code < 400 or answer.status_code == 404)


def api_operations(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document under /api/v1."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() if path.startswith("/api/v1/")
            for method in operations if method in ("get", "post", "put", "patch", "delete")}


def test_every_api_route_has_a_row(world: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client = world[0]
    operations = api_operations(client.app)  # type: ignore[arg-type]
    missing = sorted(operations - set(MATRIX))
    stale = sorted(set(MATRIX) - operations)
    assert not missing, ("add a row to MATRIX in tests/unit/hub/test_access_matrix.py for each of these routes "
                         f"(what a site manager of site-a may do with it; docs/access.md): {missing}")
    assert not stale, f"these rows of MATRIX name no route any more: {stale}"


@pytest.mark.parametrize(("operation", "row"), sorted(MATRIX.items()), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
def test_a_site_manager_of_site_a(world: tuple[TestClient, dict[str, str], dict[str, str]],
                                  operation: tuple[str, str], row: Row) -> None:
    client, admin, manager = world
    method, template = operation
    if operation not in api_operations(client.app):  # type: ignore[arg-type]
        pytest.skip("not built in this tree")  # test_every_api_route_has_a_row says so
    ids: dict[str, str] = client.app.state.ids  # type: ignore[attr-defined]

    def call(path: str, headers: dict[str, str], query: dict[str, str] | None = None, body: Any = None) -> Any:
        return client.request(method, path, params=query, headers=headers, json=body)

    if isinstance(row, Forbidden):
        answer = call(_path(template, row.params), manager, row.query, row.body)
        assert answer.status_code == 403, answer.text
    elif isinstance(row, BodySite):
        theirs = call(template, manager, body={**row.body, "site_id": OTHER})
        mine = call(template, manager, body={**row.body, "site_id": MINE})
        assert theirs.status_code == 403, theirs.text
        assert allowed(mine) and OTHER not in mine.text, mine.text
    elif isinstance(row, Open):
        assert call(template, manager).status_code == 200
    elif isinstance(row, SitePath):
        theirs = call(_path(template, {**row.params, "site_id": OTHER}), manager, body=row.body)
        mine = call(_path(template, {**row.params, "site_id": MINE}), manager, body=row.body)
        assert theirs.status_code == 403, theirs.text
        assert allowed(mine), mine.text
    elif isinstance(row, Resource):
        theirs = call(_path(template, {row.param: ids[row.theirs]}), manager, body=row.body)
        mine = call(_path(template, {row.param: ids[row.mine]}), manager, body=row.body)
        assert theirs.status_code == 403, theirs.text
        assert allowed(mine) and OTHER not in mine.text, mine.text
    else:
        path = _path(template, row.params)
        if row.param:
            theirs = call(path, manager, {**row.query, row.param: OTHER})
            assert theirs.status_code == 403, theirs.text
        if row.stream:
            return
        if row.param:
            asked = call(path, manager, {**row.query, row.param: MINE})
            assert allowed(asked), asked.text
        answer = call(path, manager, row.query)
        assert allowed(answer), answer.text
        assert OTHER not in answer.text, "a site manager of site-a was shown site-b's data"
        if row.proof:
            assert OTHER in call(path, admin, row.query).text, "the admin should see site-b here"


def test_the_seeded_world_is_what_the_rows_assume(world: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, admin, _ = world
    assert [site["site_id"] for site in client.get("/api/v1/sites", headers=admin).json()] == [MINE, OTHER]
    assert datetime.now(UTC) > T0
