"""The dashboard as a manager's browser shows it: headless Chromium against a running hub and box."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Site
from tests.support.processes import Hub
from tests.support.waiting import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def rendered_dom(url: str) -> str:
    """The page's DOM after Chromium loaded it."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make test installs it as root)")
def test_a_manager_sees_the_site_and_its_sales_and_a_stranger_sees_nothing(
    hub: Hub, make_site: Callable[..., Site]
) -> None:
    site = make_site()
    film = "<b>Night</b> & Day"  # must show as text, never as markup
    body = json.dumps({
        "type": "sale", "sale_id": "S-1", "till": "t1", "cashier": "c07", "currency": "EUR",
        "items": [{"kind": "ticket", "sku": "TKT-STD", "film": film, "hall": "h2",
                   "showtime": "2026-11-23T19:30:00Z", "qty": 3, "price": 1050}],
    }).encode()
    assert site.pos.sale(body).status == "ok"
    wait_for(lambda: any(r["key"] == "riverside" for r in hub.get("/api/v1/stats/box-office", group_by="site")),
             timeout=20, what="the sale at the hub")

    port = hub.http_port
    dom = rendered_dom(f"http://{hub.username}:{hub.password}@127.0.0.1:{port}/")
    assert "riverside" in dom and "online" in dom
    assert "31.50 EUR" in dom
    assert "&lt;b&gt;Night&lt;/b&gt; &amp; Day" in dom and "<b>Night</b>" not in dom

    stranger = rendered_dom(f"http://127.0.0.1:{port}/")
    assert "riverside" not in stranger and "31.50" not in stranger
