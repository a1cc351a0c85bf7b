"""The dashboard's pages as the hub renders them (no browser): scoping of what they list, bad input, the export
form without script, and pages that still work when the chart library is not installed (what the browser then
shows: tests/e2e/test_dashboard_browser.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.db.sites import set_place
from cloud.web import pages
from tests.support.hub_users import hub_settings, make_user
from tests.unit.hub.factories import Chain


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, tuple[str, str]]]]:
    """An app over SQLite with sites site-a and site-b, an analyst and a site manager of site-a."""
    path: Path = tmp_path_factory.mktemp("pages") / "hub.db"
    app = create_app(hub_settings(f"sqlite:///{path}"), start_ingest=False)
    with TestClient(app) as client:
        engine: sa.Engine = app.state.engine
        for site in ("site-a", "site-b"):
            Chain(site, f"box-{site[-1]}").register(engine)
        users = {"analyst": make_user(engine, "ana", "analyst"),
                 "manager": make_user(engine, "sam", "site_manager", sites=("site-a",))}
        yield client, users


def test_a_site_manager_picks_and_sees_their_sites_only(hub: tuple[TestClient, dict[str, tuple[str, str]]]) -> None:
    client, users = hub
    for path in ("/box-office", "/feedback", "/reports"):
        mine = client.get(path, auth=users["manager"]).text
        everyone = client.get(path, auth=users["analyst"]).text
        assert 'value="site-a"' in mine and 'value="site-b"' not in mine and "All my sites" in mine, path
        assert 'value="site-a"' in everyone and 'value="site-b"' in everyone and "All sites" in everyone, path
    sites = client.get("/sites", auth=users["manager"]).text
    assert 'data-device="box-a"' in sites and 'data-device="box-b"' not in sites
    assert client.get("/box-office", params={"site": "site-b"}, auth=users["manager"]).status_code == 403
    assert client.get("/box-office", params={"site": ""}, auth=users["manager"]).status_code == 200


@pytest.mark.parametrize("query", [{"from": "20026-01-01"}, {"to": "1999-12-31"}, {"site": "Site B!"}])
def test_a_page_refuses_bad_input_with_a_422(hub: tuple[TestClient, dict[str, tuple[str, str]]],
                                             query: dict[str, str]) -> None:
    client, users = hub
    answer = client.get("/box-office", params=query, auth=users["analyst"])
    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["query", next(iter(query))] and "input" not in error  # where and what, never the input


def test_the_export_form_without_script_drops_the_empty_fields(
        hub: tuple[TestClient, dict[str, tuple[str, str]]]) -> None:
    client, users = hub
    answer = client.get("/reports/transactions", params={"from": "2026-11-01", "to": "2026-11-30", "site": "",
                                                         "film": "", "till": "t1", "format": "csv"},
                        auth=users["analyst"], follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/api/v1/exports/transactions?from=2026-11-01&to=2026-11-30&till=t1&format=csv"


def test_pages_work_without_the_chart_library_and_say_so_once(
        hub: tuple[TestClient, dict[str, tuple[str, str]]], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    client, users = hub
    monkeypatch.setattr(pages, "CHARTS_FILE", Path("/nonexistent/chart.umd.min.js"))
    monkeypatch.setattr(pages, "_missing_logged", False)
    with caplog.at_level(logging.WARNING, logger="cloud.web.pages"):
        answers = [client.get(path, auth=users["analyst"]) for path in ("/", "/box-office", "/members")]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all("vendor/chart.umd.min.js" not in a.text and "/static/dashboard.js" in a.text for a in answers)
    assert [r.getMessage() for r in caplog.records].count(
        "the dashboard's chart library is missing (/nonexistent/chart.umd.min.js): run `make install`; pages show "
        "no charts") == 1


def test_the_default_range_ends_on_the_latest_local_day_of_the_viewers_sites(
        hub: tuple[TestClient, dict[str, tuple[str, str]]]) -> None:
    # The analytics count each site's local days: a range ending on UTC's day would leave out, for hours each
    # day, today's sales of a site east of UTC (and end on tomorrow for a manager of a site far west of it).
    client, users = hub
    engine: sa.Engine = client.app.state.engine  # type: ignore[attr-defined]
    zones = {"site-k": "Pacific/Kiritimati", "site-w": "Etc/GMT+12"}  # UTC+14 and UTC-12
    for site, zone in zones.items():
        Chain(site, f"box-{site[-1]}").register(engine)
        with engine.begin() as conn:
            set_place(conn, site_id=site, name=None, latitude=None, longitude=None, timezone=zone)
    west = make_user(engine, "wes", "site_manager", sites=("site-w",))
    with engine.connect() as conn:
        evening = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
        assert pages.local_today(conn, sites=None, now=evening) == date(2026, 3, 2)
        assert pages.local_today(conn, sites=frozenset({"site-a"}), now=evening) == date(2026, 3, 1)
        assert pages.local_today(conn, sites=frozenset({"site-w"}), now=evening - timedelta(hours=12)) == \
            date(2026, 2, 28)
    # At any hour, one of the two differs from UTC's day.
    for auth, zone in ((users["analyst"], zones["site-k"]), (west, zones["site-w"])):
        today_there = datetime.now(ZoneInfo(zone)).date().isoformat()
        for path in ("/box-office", "/feedback", "/reports"):
            page = client.get(path, auth=auth).text
            assert f'name="to" value="{today_there}"' in page, (path, zone)
