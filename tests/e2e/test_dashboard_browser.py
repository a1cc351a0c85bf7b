"""The HQ dashboard in headless Chromium against the hub served by uvicorn and fed over a real Mosquitto: sign in,
every page at laptop and tablet size with its charts drawn from the seeded sales, a new sale on the overview
without reloading, the public feedback form. Screenshots go to $MARQUEE_ARTEFACTS/dashboard (kept) or a folder of
pytest's tmp path; the folder is printed at the end."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloud.api.app import create_app
from protocol.feedback import ticket_code
from protocol.topics import device_topic
from tests.integration.hub.box import FakeBox
from tests.support.app_server import AppServer
from tests.support.brokers import Mosquitto, free_port
from tests.support.hub_users import PASSWORD, hub_settings, make_user
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium and its driver are not installed (make test installs them as root)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
LAPTOP, TABLET = (1366, 768), (820, 1180)
ADMIN = ("ada", PASSWORD)
MANAGER = ("sam", PASSWORD)
HOSTILE = "<b>Night</b> & Day"  # a film title that must show as text, never as markup
FILMS = [("Dune", "sci-fi"), (HOSTILE, "drama"), ("Up", "animation")]
SHOWS = [14, 19, 21]  # UTC hours of the shows: afternoon, evening, late
DAYS = 10
CHARTS = {
    "/": ["chart-today"],
    "/box-office": ["chart-day", "chart-site", "chart-film", "chart-daypart", "chart-hall", "chart-weekday",
                    "chart-occ-film", "chart-occ-hall", "chart-occ-daypart", "chart-occ-site"],
    "/members": ["chart-segments", "chart-genres", "chart-dayparts"],
    "/feedback": ["chart-nps-site", "chart-nps-film", "chart-nps-hall"],
    "/sites": [],
    "/alerts": [],
    "/reports": [],
}
# Per canvas: data points of its Chart.js instance (-1: none) and painted pixels (every 7th sampled).
DRAWN_JS = """
const out = {};
for (const canvas of document.querySelectorAll("canvas")) {
  const chart = window.Chart && window.Chart.getChart(canvas);
  let points = chart ? 0 : -1;
  if (chart) for (const set of chart.data.datasets) points += set.data.filter(v => v !== null && v !== 0).length;
  let painted = 0;
  if (canvas.width && canvas.height) {
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < px.length; i += 28) if (px[i]) painted++;
  }
  out[canvas.id] = [points, painted];
}
return out;
"""


@dataclass
class Seeded:
    """The seeded hub: its address and engine, each site's box chain, and a box publishing for them all."""

    url: str
    engine: sa.Engine
    box: FakeBox
    chains: dict[str, Chain]
    feedback_code: str = ""
    artefacts: Path = field(default_factory=Path)

    def publish(self, site: str, first: int, last: int) -> None:
        chain = self.chains[site]
        self.box.publish(device_topic(site, chain.device_id, "events"), chain.batch(first, last))

    def sell(self, site: str, *, tickets: int, film: str = "Dune", at: datetime | None = None,
             show_hour: int = 19, member: int = 0) -> None:
        """Ring up one sale at `site` (not yet published)."""
        when = at or datetime.now(UTC) - timedelta(seconds=5)
        name, genre = next(f for f in FILMS if f[0] == film)
        showtime = when.replace(hour=show_hour, minute=30, second=0, microsecond=0)
        items: list[dict[str, Any]] = [{"kind": "ticket", "sku": "adult", "film": name, "genre": genre,
                                        "hall": str(1 + show_hour % 2), "showtime": showtime.isoformat(),
                                        "quantity": tickets, "unit_price": 1100}]
        if member % 2:
            items.append({"kind": "concession", "sku": "popcorn", "quantity": 1, "unit_price": 450})
        chain = self.chains[site]
        chain.add({"site_id": site, "till_id": "t1", "cashier_id": "c-7", "sale_id": f"s-{len(chain.events) + 1}",
                   "currency": "EUR", "items": items, "total": sum(i["quantity"] * i["unit_price"] for i in items),
                   "card_token": f"{member + 1:032x}", "loyalty": {"status": "earned", "points_earned": 10 * tickets,
                                                                  "balance": 10}}, occurred_at=when)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Seeded]:
    """The hub (ingest on, over SQLite) served by uvicorn, fed over a real Mosquitto with ten days of sales at two
    sites and the boxes' heartbeats; halls with seats; an admin and a site manager of downtown."""
    workdir = tmp_path_factory.mktemp("dashboard")
    (workdir / "broker").mkdir()
    broker = Mosquitto(port=free_port(), workdir=workdir / "broker")
    broker.start()
    settings = hub_settings(f"sqlite:///{workdir / 'hub.db'}", mqtt_port=broker.port,
                            rules_key_file=workdir / "rules.key", member_key_file=workdir / "members.key",
                            offline_after_seconds=60)
    app = create_app(settings)
    box: FakeBox | None = None
    try:
        with AppServer(app) as server:
            engine: sa.Engine = app.state.engine
            now = datetime.now(UTC)
            make_user(engine, ADMIN[0], "admin")
            make_user(engine, MANAGER[0], "site_manager", sites=("downtown",))
            chains = {site: Chain(site, f"{site}-box1") for site in ("riverside", "downtown")}
            for chain in chains.values():
                chain.register(engine)
            box = FakeBox("127.0.0.1", broker.port, client_id="dashboard-test-box")
            seeded = Seeded(server.url, engine, box, chains)
            for days_ago in range(DAYS, 0, -1):
                day = now - timedelta(days=days_ago)
                for i, (site, hour) in enumerate((s, h) for s in chains for h in SHOWS):
                    seeded.sell(site, tickets=1 + (days_ago + i) % 4, film=FILMS[(days_ago + i) % 3][0],
                                at=day.replace(hour=hour - 1, minute=10 + i), show_hour=hour,
                                member=(days_ago * i) % 9)
            for site in chains:  # and one today, before the show
                seeded.sell(site, tickets=2, show_hour=23, member=3)
            seeded.feedback_code = ticket_code(chains["riverside"].events[-1].hash)
            for site, chain in chains.items():
                seeded.publish(site, 1, len(chain.events))
                status = chain.status(version="1.4.2", last_seq=len(chain.events), backlog=0, rules_version=3,
                                      directory_version=7, disk_free_bytes=12_400_000_000, clock_ok=True,
                                      sent_at=datetime.now(UTC), counters={"sales_answered": len(chain.events)},
                                      peripheral_health={"t1-pos": {"kind": "pos", "till": "t1", "state": "up"},
                                                         "t1-rdm6300": {"kind": "rdm6300", "till": "t1",
                                                                        "state": "up", "reads": 40}})
                box.publish(device_topic(site, chain.device_id, "status"), status)
            total = sum(len(chain.events) for chain in chains.values())
            with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
                wait_for(lambda: sum(r["sales"] for r in api.get("/api/v1/stats/box-office?group_by=site").json())
                         == total, timeout=30, interval=0.1, what="the seeded sales at the hub")
                for site in chains:
                    for hall in ("1", "2"):
                        api.put(f"/api/v1/sites/{site}/halls/{hall}", json={"seats": 40}).raise_for_status()
                # The member figures come from a snapshot the hub refreshes after a read: ask until it has them.
                wait_for(lambda: api.get("/api/v1/analytics/members/summary").json()["members"] > 0, timeout=20,
                         interval=0.2, what="the members' snapshot")
            artefacts = Path(os.environ["MARQUEE_ARTEFACTS"]) / "dashboard" if os.environ.get("MARQUEE_ARTEFACTS") \
                else workdir / "screenshots"
            artefacts.mkdir(parents=True, exist_ok=True)
            seeded.artefacts = artefacts
            yield seeded
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"dashboard screenshots: {artefacts}")
    finally:
        if box is not None:
            box.close()
        broker.stop()


@pytest.fixture(scope="module")
def browser(seeded: Seeded) -> Iterator[Any]:
    """One headless Chromium for the module, signed in through the login page."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="marquee-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={LAPTOP[0]},{LAPTOP[1]}"]:
        options.add_argument(flag)
    # The driver Debian installs beside Chromium: never one downloaded at run time.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(20)
        driver.get(f"{seeded.url}/box-office")
        assert "/login" in driver.current_url  # no session: the page sends the browser to sign in
        driver.find_element(By.ID, "username").send_keys(ADMIN[0])
        driver.find_element(By.ID, "password").send_keys(ADMIN[1])
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait_for(lambda: driver.current_url.endswith("/box-office"), timeout=10, what="the page after signing in")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, path: Path) -> None:
    """The whole page as a PNG (beyond the window's height), through Chromium's DevTools."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def text_of(driver: Any, css: str) -> str:
    """The visible text of the first element matching `css` ("" when none), read in one step (no stale element
    when the page changes meanwhile)."""
    text: str = driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
                                      css)
    return text


def drawn(driver: Any, expected: list[str]) -> dict[str, list[int]]:
    """Each expected chart's (data points, painted pixels) once all are drawn; AssertionError otherwise."""
    def ready() -> tuple[dict[str, list[int]]] | None:
        found: dict[str, list[int]] = driver.execute_script(DRAWN_JS)
        return (found,) if all(found.get(c, [0, 0])[0] > 0 and found[c][1] > 0 for c in expected) else None
    try:
        return wait_for(ready, timeout=10, interval=0.1, what="the charts")[0]
    except AssertionError:
        notice = text_of(driver, "#notice")
        raise AssertionError(f"charts not drawn on {driver.current_url}: {driver.execute_script(DRAWN_JS)}; "
                             f"notice: {notice!r}") from None


@pytest.fixture(scope="module")
def feedback_sent(seeded: Seeded, browser: Any) -> None:
    """A filmgoer answers the public form from their ticket's QR code (no login), poorly rating the hall."""
    browser.get(f"{seeded.url}/f/riverside/{seeded.feedback_code}")
    browser.find_element(By.CSS_SELECTOR, "input[name=nps][value='9']").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=hall][value='2']").click()
    screenshot(browser, seeded.artefacts / "feedback-form.png")
    browser.find_element(By.CSS_SELECTOR, "form.questions button[type=submit]").click()
    wait_for(lambda: "thank" in text_of(browser, "body").lower(), timeout=10,
             what="the thank-you page")
    screenshot(browser, seeded.artefacts / "feedback-sent.png")


@pytest.mark.parametrize("size", [LAPTOP, TABLET], ids=["laptop", "tablet"])
def test_every_page_shows_its_figures_and_charts(seeded: Seeded, browser: Any, feedback_sent: None,
                                                 size: tuple[int, int]) -> None:
    browser.set_window_size(*size)
    name = "laptop" if size == LAPTOP else "tablet"
    seeded.sell("downtown", tickets=1, show_hour=23)  # today's, whenever the test runs (midnight comes)
    seeded.publish("downtown", len(seeded.chains["downtown"].events), len(seeded.chains["downtown"].events))
    for path, charts in CHARTS.items():
        browser.get(f"{seeded.url}{path}")
        nav = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav.pages a")]
        assert nav == ["Overview", "Box office", "Members", "Feedback", "Sites", "Alerts", "Reports"]
        drawn(browser, charts)
        # Nothing wider than the screen (tables scroll inside their frame), links and buttons big enough to touch.
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        heights = browser.execute_script(
            "return [...document.querySelectorAll('nav.pages a, form button')].map(e => e.offsetHeight)")
        assert min(heights) >= 40, (path, heights)
        screenshot(browser, seeded.artefacts / f"{name}-{path.strip('/') or 'overview'}.png")
        if path == "/box-office":
            wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#films tbody tr:not(.empty)")) == 3,
                     timeout=10, what="the films table")
            titles = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#films tbody td:first-child")]
            assert HOSTILE in titles and not browser.find_elements(By.CSS_SELECTOR, "#films b")
        elif path == "/sites":
            site = browser.find_element(By.CSS_SELECTOR, "[data-site=riverside]").text
            assert "online" in site and "1.4.2" in site and "sales answered" in site and "12.4 GB" in site
        elif path == "/alerts":  # the hall rated 2 on the feedback form
            wait_for(lambda: "riverside" in text_of(browser, "#alerts tbody"), timeout=10,
                     what="the low score's alert case")
        elif path == "/members":
            wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#top tbody tr:not(.empty)"), timeout=10,
                     what="the top members")


@pytest.mark.parametrize("size", [LAPTOP, TABLET], ids=["laptop", "tablet"])
def test_a_new_sale_appears_on_the_overview_without_reloading(seeded: Seeded, browser: Any,
                                                              size: tuple[int, int]) -> None:
    browser.set_window_size(*size)
    browser.get(f"{seeded.url}/")
    wait_for(lambda: text_of(browser, "#live-state").startswith("live ·"), timeout=10,
             what="the live figures")
    browser.execute_script("window.marqueeMarker = 'still the same page'")

    def riverside_tickets() -> int:
        return int(text_of(browser, "#today tr[data-site=riverside] td:nth-child(3)") or 0)

    before = riverside_tickets()
    seeded.sell("riverside", tickets=5, show_hour=23)
    chain = seeded.chains["riverside"]
    seeded.publish("riverside", len(chain.events), len(chain.events))

    wait_for(lambda: riverside_tickets() == before + 5, timeout=10, what="the new sale on the overview")
    latest = text_of(browser, "#changes li")
    assert "riverside" in latest and "+5 ticket(s)" in latest and "55.00 EUR" in latest
    assert browser.execute_script("return window.marqueeMarker") == "still the same page"
    drawn(browser, ["chart-today"])
    screenshot(browser, seeded.artefacts / f"{'laptop' if size == LAPTOP else 'tablet'}-live-sale.png")


def test_without_the_chart_library_the_page_says_so_and_shows_its_tables(seeded: Seeded, browser: Any) -> None:
    browser.set_window_size(*LAPTOP)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/static/vendor/chart.umd.min.js*"]})
    try:
        browser.get(f"{seeded.url}/box-office")
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#films tbody tr:not(.empty)")) == 3,
                 timeout=10, what="the films table")
        notes = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "figure.chart .unavailable")]
        assert notes == ["charts unavailable"] * len(CHARTS["/box-office"])
        assert text_of(browser, "#notice") == ""
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


def test_a_case_is_acknowledged_and_reopened_from_the_alerts_page(seeded: Seeded, browser: Any,
                                                                  feedback_sent: None) -> None:
    # The buttons POST with the session's CSRF token; the case leaves the open list and comes back.
    browser.set_window_size(*LAPTOP)
    browser.get(f"{seeded.url}/alerts")
    wait_for(lambda: "feedback_low" in text_of(browser, "#alerts tbody"), timeout=10, what="the open case")
    browser.find_element(By.XPATH, "//table[@id='alerts']//button[text()='Acknowledge']").click()
    wait_for(lambda: "No open case." in text_of(browser, "#alerts tbody"), timeout=10, what="the case acknowledged")
    browser.find_element(By.CSS_SELECTOR, "#alert-filters select[name=state] option[value='']").click()
    wait_for(lambda: "acknowledged" in text_of(browser, "#alerts tbody"), timeout=10, what="every case")
    browser.find_element(By.XPATH, "//table[@id='alerts']//button[text()='Reopen']").click()
    wait_for(lambda: "Acknowledge" in text_of(browser, "#alerts tbody"), timeout=10, what="the case reopened")


def test_a_site_manager_sees_their_sites_only(seeded: Seeded) -> None:
    # The pages scope what they render and the APIs they call scope the rest: another site's data is a 403.
    with httpx.Client(base_url=seeded.url, auth=MANAGER, timeout=10) as client:
        sites = client.get("/sites")
        assert sites.status_code == 200 and "downtown" in sites.text and "riverside" not in sites.text
        overview = client.get("/")
        assert "downtown" in overview.text and "riverside" not in overview.text
        assert client.get("/box-office", params={"site": "riverside"}).status_code == 403
        assert client.get("/api/v1/live", params={"site": "riverside"}).status_code == 403
