"""Alert delivery: cases reach a real SMTP server (aiosmtpd, its own process) and a local webhook receiver through
apprise; below the minimum severity nothing goes; a failing channel is retried with backoff, shows `failing`
with its reason on the delivery, and recovers; two couriers never send one delivery twice; a channel URL apprise
cannot use is refused at start without echoing it; a database outage is logged once."""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.db.engine import make_engine
from cloud.db.fraud_tables import alert_deliveries, alerts
from cloud.db.schema import sites
from cloud.errors import ConfigError
from cloud.fraud.courier import Courier
from cloud.settings import HubSettings, load_settings
from tests.support.brokers import Mosquitto, free_port
from tests.support.smtp_server import SmtpServer, body_text
from tests.support.waiting import wait_for
from tests.support.webhook import WebhookReceiver

TOKEN = "3f9a6c0e" + "d1" * 12
SITE = "lyon"
CASE_PATH = re.compile(r"/api/v1/alerts/(\d+)")


def settings_for(db_url: str, **overrides: Any) -> HubSettings:
    """Settings with a short poll; everything else as given."""
    return load_settings(**{"database_url": db_url, "alert_poll_s": 0.05, **overrides})


def raise_case(engine: sa.Engine, *, severity: str = "warning", code: str = "card_points_day",
               raised_at: datetime | None = None, state: str = "open", **fields: Any) -> int:
    """An alert case as the hub keeps it (what H2's cases module writes)."""
    at = raised_at or datetime.now(UTC)
    values: dict[str, Any] = {
        "dedupe_key": f"{SITE}:{code}:{uuid.uuid4().hex}", "code": code, "severity": severity, "action": "hold",
        "source": "box", "site_id": SITE, "device_id": "box-1", "till_id": "till-2", "cashier_id": "c-7",
        "staff_id": "c-7", "member_id": "m-42", "card_token": TOKEN, "sale_id": "s-9",
        "summary": "card earned 1200 points today at till-2 (limit 500)", "figures": {"points": 1200, "limit": 500},
        "events": [{"device_id": "box-1", "seq": 17}], "first_at": at, "last_at": at, "raised_at": at,
        "count": 1, "state": state, "state_at": at, **fields}
    with engine.begin() as conn:
        return int(conn.execute(alerts.insert().values(**values).returning(alerts.c.id)).scalar_one())


def deliveries(engine: sa.Engine) -> dict[tuple[int, str], Any]:
    with engine.connect() as conn:
        return {(row.alert_id, row.channel): row for row in conn.execute(sa.select(alert_deliveries)).all()}


@pytest.fixture
def site(engine: sa.Engine) -> str:
    with engine.begin() as conn:
        conn.execute(sites.insert().values(site_id=SITE, name="Lyon Part-Dieu"))
    return SITE


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


class RootLog(logging.Handler):
    """A handler on the root logger while in its `with` block: the records the hub's own log would get."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> RootLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def test_a_case_reaches_the_smtp_server_and_the_webhook_within_seconds(
        engine: sa.Engine, db_url: str, site: str, hook: WebhookReceiver, tmp_path: Path) -> None:
    with SmtpServer(tmp_path / "smtp") as smtp:
        settings = settings_for(db_url, alert_channels={"ops-mail": smtp.url(), "chat": hook.url()},
                                alert_poll_s=30)  # woken by notify(), not by the poll
        courier = Courier(engine, settings)
        courier.start()
        try:
            case_id = raise_case(engine)
            courier.notify()
            [mail] = smtp.wait_for_messages(1, timeout=10)
            [posted] = hook.wait_for_bodies(1, timeout=10)
        finally:
            courier.stop()
    title = "[Marquee] warning: points earned by this card today above the limit at Lyon Part-Dieu"
    assert mail["Subject"] == title and posted["title"] == title
    assert posted["type"] == "warning"
    for text in (body_text(mail), posted["message"]):
        assert "card earned 1200 points today at till-2 (limit 500)" in text
        assert "Figures: " in text and "points=1200" in text and "limit=500" in text
        assert "\nRule: card_points_day (the box's action: hold)\n" in text  # plain text, line by line
        assert "Card: 3f9a6c0e…" in text and TOKEN not in text  # a masked token prefix, never the whole token
        assert "Cashier: c-7" in text and "Member: m-42" in text and "Till: till-2" in text
        assert f"Case: /api/v1/alerts/{case_id} (open)" in text
        assert "box-1#17" in text
    rows = deliveries(engine)
    assert {key: (row.state, row.attempts, row.last_error) for key, row in rows.items()} == {
        (case_id, "ops-mail"): ("sent", 1, None), (case_id, "chat"): ("sent", 1, None)}
    assert all(row.sent_at is not None and row.next_at is None for row in rows.values())


@pytest.mark.parametrize(("minimum", "sent"), [
    ("info", {"info", "warning", "critical"}),
    ("warning", {"warning", "critical"}),
    ("critical", {"critical"}),
])
def test_cases_below_the_minimum_severity_are_kept_but_not_sent(
        engine: sa.Engine, db_url: str, site: str, hook: WebhookReceiver, minimum: str, sent: set[str]) -> None:
    ids = {severity: raise_case(engine, severity=severity) for severity in ("info", "warning", "critical")}
    courier = Courier(engine, settings_for(db_url, alert_channels={"chat": hook.url()}, alert_min_severity=minimum))
    courier.tick()
    # tick() sends synchronously: what the receiver has now is all this pass sent.
    assert sorted(body["title"].split(":")[0] for body in hook.bodies()) == sorted(
        f"[Marquee] {severity}" for severity in sent)
    assert {alert_id for alert_id, _ in deliveries(engine)} == {ids[severity] for severity in sent}
    courier.tick()
    assert len(hook.bodies()) == len(sent)  # once per case and channel


def test_old_and_closed_cases_are_not_sent(engine: sa.Engine, db_url: str, site: str, hook: WebhookReceiver) -> None:
    now = datetime.now(UTC)
    fresh = raise_case(engine, raised_at=now - timedelta(hours=23))
    raise_case(engine, raised_at=now - timedelta(hours=25))  # before the backlog window (24 h)
    raise_case(engine, state="resolved")
    Courier(engine, settings_for(db_url, alert_channels={"chat": hook.url()})).tick()
    assert [int(CASE_PATH.search(body["message"]).group(1)) for body in hook.bodies()] == [fresh]  # type: ignore[union-attr]


def test_a_failing_channel_backs_off_shows_failing_with_its_reason_then_recovers(
        engine: sa.Engine, db_url: str, site: str, hook: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    url = f"json://marquee:Hunter2Secret@127.0.0.1:{hook.port}/hook"  # a password apprise sends as basic auth
    settings = settings_for(db_url, alert_channels={"chat": url}, alert_retry_base_s=10, alert_retry_max_s=60,
                            alert_failing_after=3)
    courier = Courier(engine, settings, now=clock, rng=random.Random(7))
    case_id = raise_case(engine, raised_at=clock.at)
    hook.fail_next(4)
    expected = [  # attempts: the state after it and its delay before the next try (jitter: 80 to 100 %)
        (1, "pending", 10), (2, "pending", 20), (3, "failing", 60), (4, "failing", 60)]
    root = RootLog()  # what the hub's log (handlers on the root logger, set up by its CLI) receives
    with caplog.at_level(logging.INFO), root:
        for attempts, state, delay in expected:
            courier.tick()
            row = deliveries(engine)[(case_id, "chat")]
            assert (row.attempts, row.state) == (attempts, state)
            assert row.last_error is not None and "error=500" in row.last_error
            assert "Hunter2Secret" not in row.last_error and "marquee:" not in row.last_error
            waited = (row.next_at - clock.at).total_seconds()
            assert 0.8 * delay <= waited <= delay
            clock.at = row.next_at - timedelta(seconds=0.5)
            courier.tick()  # not due yet: nothing is sent
            assert len(hook.received) == attempts
            clock.at = row.next_at
        courier.tick()
    row = deliveries(engine)[(case_id, "chat")]
    assert (row.state, row.attempts, row.sent_at) == ("sent", 5, clock.at)
    assert len(hook.bodies()) == 1
    assert hook.received[-1].headers["Authorization"].startswith("Basic ")
    # One line when the channel started failing, one when it came back; apprise's own lines stay out of the log.
    logged = [(record.name, record.levelname, record.getMessage()) for record in root.records]
    assert [(name, level) for name, level, _ in logged] == [("cloud.fraud.courier", "WARNING"),
                                                           ("cloud.fraud.courier", "INFO")]
    assert logged[0][2].startswith("alert channel chat fails (") and "Hunter2Secret" not in logged[0][2]
    assert logged[1][2] == "alert channel chat delivers again"


def test_two_couriers_never_send_one_delivery_twice(
        engine: sa.Engine, db_url: str, site: str, hook: WebhookReceiver) -> None:
    ids = {raise_case(engine) for _ in range(30)}
    settings = settings_for(db_url, alert_channels={"chat": hook.url()}, alert_poll_s=0.01)
    engines = [make_engine(db_url), make_engine(db_url)]
    couriers = [Courier(each, settings) for each in engines]
    for courier in couriers:
        courier.start()
    try:
        bodies = hook.wait_for_bodies(30, timeout=30)
        wait_for(lambda: all(row.state == "sent" for row in deliveries(engine).values()), timeout=10,
                 what="every delivery sent")
    finally:
        for courier in couriers:
            courier.stop()
        for each in engines:
            each.dispose()
    sent_ids = [int(CASE_PATH.search(body["message"]).group(1)) for body in hook.bodies()]  # type: ignore[union-attr]
    assert len(bodies) >= 30 and sorted(sent_ids) == sorted(ids)  # each exactly once
    assert all(row.attempts == 1 for row in deliveries(engine).values())
    assert sum(courier.counters["sent"] for courier in couriers) == 30


@pytest.mark.parametrize(("url", "named"), [
    ("foo://admin:Sup3rSecret@mail.example.com", "apprise knows no service foo://"),
    ("mailto://", "apprise cannot use this mailto:// URL"),
    ("not a url Sup3rSecret", "its URL does not start with a service"),
    ("tgram://", "apprise cannot use this tgram:// URL"),
])
def test_a_channel_apprise_cannot_use_is_refused_at_start_without_echoing_it(
        url: str, named: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as refused:
        load_settings(alert_channels={"ok": "json://127.0.0.1:9/hook", "chat": url})
    assert named in str(refused.value) and "'chat'" in str(refused.value)
    assert "Sup3rSecret" not in str(refused.value) and "Sup3rSecret" not in caplog.text


@pytest.mark.parametrize("url", [
    "mailto://127.0.0.1:2525?from=hub@example.com&to=ops@example.com",
    "mailtos://user:pass@smtp.example.com?to=ops@example.com",
    "json://127.0.0.1:9000/hook",
    "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#fraud",
    "tgram://123456789:AABBCCDDEEFFGGHHIIJJKKLLMMNNOOPPQQR/-1001234567890",
    "workflows://prod-00.westeurope.logic.azure.com:443/abcdefghijklmnop/signature0123456789abcdefghijklmn",
])
def test_the_documented_channel_urls_are_accepted(url: str) -> None:
    settings = load_settings(alert_channels={"ops": url}, report_channels={"owner": url})
    assert settings.alert_channels["ops"].get_secret_value() == url
    assert "**" in repr(settings.alert_channels)  # a SecretStr: never printed


def test_the_hub_refuses_to_start_with_a_bad_channel(tmp_path: Path) -> None:
    env = {**os.environ, "MARQUEE_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
           "MARQUEE_HUB_ALERT_CHANNELS": '{"chat": "nope://admin:Sup3rSecret@chat.example.com"}'}
    done = subprocess.run([str(Path(sys.executable).parent / "marquee-hub"), "serve", "--no-ingest"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "channel 'chat': apprise knows no service nope://" in done.stderr
    assert "Sup3rSecret" not in done.stderr + done.stdout


def test_a_database_outage_pauses_the_courier_with_one_log_line(
        hook: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    nowhere = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2")
    courier = Courier(nowhere, settings_for("sqlite://", alert_channels={"chat": hook.url()}))
    try:
        with caplog.at_level(logging.INFO, logger="cloud.fraud.courier"):
            for _ in range(3):
                courier.tick()  # never raises
    finally:
        nowhere.dispose()
    assert courier.counters["failures"] == 3
    assert [record.getMessage() for record in caplog.records] == [
        "the alert courier cannot use the database (OperationalError); trying again every 0.05s"]


def test_the_hub_app_runs_the_courier_beside_ingest(db_url: str, mosquitto: Mosquitto, hook: WebhookReceiver) -> None:
    settings = settings_for(db_url, mqtt_port=mosquitto.port, alert_channels={"chat": hook.url()})
    app = create_app(settings)
    with TestClient(app):
        assert isinstance(app.state.courier, Courier)
        raise_case(app.state.engine)
        [posted] = hook.wait_for_bodies(1, timeout=10)
    assert posted["title"] == "[Marquee] warning: points earned by this card today above the limit at lyon"
    assert app.state.courier is None  # stopped with the app
