"""A low score in the feedback form reaches the site's manager: an alert case raised with the answer, delivered by
the real alert courier (woken by the answer, not waiting for its poll) to the site's own webhook and to HQ's, never
to another site's manager, within a minute; the message holds the scores, never the comment."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.db.engine import make_engine
from cloud.db.fraud_tables import alerts
from cloud.errors import ConfigError
from cloud.fraud.courier import Courier
from cloud.settings import HubSettings, load_settings
from tests.support.feedback import MEMBER_KEY, sell
from tests.support.waiting import wait_for
from tests.support.webhook import Received, WebhookReceiver
from tests.unit.hub.factories import Chain

NOW = datetime.now(UTC)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize("hq_minimum", ["warning", "critical"])
def test_a_low_score_reaches_the_sites_manager_within_a_minute(tmp_path: Path, hook: WebhookReceiver,
                                                               hq_minimum: str) -> None:
    """Also when HQ's channels take critical cases only: the site's own channel gets every case of its site."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    to_hq_too = hq_minimum == "warning"
    settings: HubSettings = load_settings(
        database_url=url, member_key=MEMBER_KEY, alert_poll_s=600, alert_min_severity=hq_minimum,
        alert_channels={"hq": hook.url("/hq"), "riverside-manager": hook.url("/riverside"),
                        "downtown-manager": hook.url("/downtown")},
        site_alert_channels={"riverside": ["riverside-manager"], "downtown": ["downtown-manager"]})
    app = create_app(settings, start_ingest=False)
    courier_engine = make_engine(url)
    with TestClient(app) as client:
        courier = Courier(courier_engine, settings)
        courier.start()
        app.state.courier = courier
        try:
            engine: sa.Engine = app.state.engine
            codes = {}
            for site_id in ("riverside", "downtown"):
                chain = Chain(site_id, f"{site_id}-box")
                chain.register(engine)
                codes[site_id] = [sell(engine, chain, sold_at=NOW - timedelta(hours=3), film="Arrival",
                                       show_at=NOW - timedelta(hours=2)) for _ in range(2)]
            wait_for(lambda: courier.counters["runs"] >= 1, what="the courier's first pass (nothing to send)")

            # A happy filmgoer: no case.
            assert client.post(f"/f/riverside/{codes['riverside'][0]}", data={"nps": "9", "film": "5"}
                               ).status_code == 200
            started = time.monotonic()
            assert client.post(f"/f/riverside/{codes['riverside'][1]}", data={
                "nps": "7", "hall": "1", "comment": "Sticky floor, call me on 0611223344"}).status_code == 200
            [to_manager] = [each.body for each in wait_received(hook, "/riverside", 1)]
            took = time.monotonic() - started
            assert took < 60
            if to_hq_too:
                [to_hq] = [each.body for each in wait_received(hook, "/hq", 1)]
                assert to_manager == to_hq
            assert to_manager["title"] == "[Marquee] warning: a low score in the audience feedback form at riverside"
            assert "recommend 7/10, hall 1/5 ('Arrival', hall h1)" in to_manager["message"]
            assert "0611223344" not in to_manager["message"] and "Sticky" not in to_manager["message"]

            assert client.post(f"/f/downtown/{codes['downtown'][0]}", data={"nps": "1"}).status_code == 200
            wait_received(hook, "/downtown", 1)
            if to_hq_too:
                wait_received(hook, "/hq", 2)
            assert len([each for each in hook.received if each.path == "/riverside"]) == 1  # not another site's
            if not to_hq_too:
                wait_for(lambda: courier.counters["runs"] >= 3, what="the courier's later passes")
                assert [each for each in hook.received if each.path == "/hq"] == []  # below HQ's minimum
        finally:
            courier.stop()
            courier_engine.dispose()
        with engine.connect() as conn:
            cases = conn.execute(sa.select(alerts.c.code, alerts.c.site_id, alerts.c.severity)).all()
    assert sorted(tuple(case) for case in cases) == [("feedback_low", "downtown", "warning"),
                                                     ("feedback_low", "riverside", "warning")]


def wait_received(hook: WebhookReceiver, path: str, count: int) -> list[Received]:
    """The successful requests to `path`, once `count` arrived: within a minute, the promise to a site manager."""
    return wait_for(lambda: (lambda got: got if len(got) >= count else [])(
        [each for each in hook.received if each.path == path and each.status < 300]),
        timeout=60, what=f"{count} request(s) to {path}")


@pytest.mark.parametrize(("settings", "said"), [
    ({"site_alert_channels": {"riverside": ["riverside-mgr"]}}, "names channel 'riverside-mgr'"),
    ({"site_alert_channels": {"River Side": []}}, "not a site id"),
    ({"complaint_response_hours": {"refunds": 24}}, "unknown category 'refunds'"),
    ({"complaint_response_hours": {"staff": 0}}, "staff must be more than 0"),
])
def test_a_site_channel_or_deadline_that_cannot_work_is_refused_at_start(settings: dict[str, object],
                                                                          said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        load_settings(alert_channels={"riverside-manager": "json://127.0.0.1:9/hook"}, **settings)
