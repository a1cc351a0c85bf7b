"""Every rule end to end on real parts: the hub (API, ingest, directory publisher, rules clock, backtest) and a
box over a real Mosquitto, the box's clock set to chosen days. A tier review and an expiry run at the hub
while the box is cut off; the box applies the same rules to its own view, and box and hub agree on every
member before and after it reconnects. A campaign published at HQ pays at the till, ends on its end date,
shows in the backtest of the period before it, and is billed to its sponsor."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import create_signing_key, load_signing_key, publish_draft, push
from cloud.db.devices import register_device
from cloud.db.users import add_user
from cloud.settings import HubSettings
from edge.agent import Agent
from edge.decide import MemberState
from protocol.cards import card_token
from protocol.signing import public_key_text
from tests.edge_support import PEPPER, edge_settings, fob, new_journal
from tests.support.brokers import Mosquitto
from tests.support.redeeming import answer, request
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0

ADMIN = ("ada", "admin pass phrase")
CARDS = {"ana": fob("67003B51C6"), "ben": fob("0F00A1B2C3")}
TOKENS = {name: card_token(PEPPER.encode(), card) for name, card in CARDS.items()}
EARNING = [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}]


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[dict[str, Any]]:
    key_file = tmp_path / "rules.key"
    hub_key = create_signing_key(key_file)
    # The clock's own thread ticks hourly: the test runs it at the moments it chooses.
    settings = HubSettings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", mqtt_port=mosquitto.port,
                           rules_key_file=key_file, pepper=SecretStr(PEPPER), rules_clock_s=3600,
                           member_key=SecretStr(base64.b64encode(os.urandom(32)).decode()))
    app = create_app(settings)
    with TestClient(app) as client:
        identity = Ed25519PrivateKey.generate()
        with app.state.engine.begin() as conn:
            add_user(conn, username=ADMIN[0], password_hash=hash_password(ADMIN[1]), role="admin", created_at=T0)
            register_device(conn, site_id="riverside", device_id="riverside-box1",
                            public_key=public_key_text(identity), at=T0, replace_key=True)
        config = edge_settings(tmp_path / "box", site_id="riverside", device_id="riverside-box1",
                               hub_public_key=public_key_text(hub_key), mqtt={"port": mosquitto.port},
                               sync={"heartbeat_s": 1, "ack_timeout_s": 2})
        box = Agent(config, journal=new_journal(config), pepper=PEPPER.encode(), identity=identity)
        box.start()
        try:
            yield {"client": client, "box": box, "app": app}
        finally:
            box.stop()


def publish(client: TestClient, box: Agent, rules: dict[str, Any]) -> int:
    response = client.post("/api/v1/rules", json=rules, auth=ADMIN)
    assert response.status_code == 201, response.text
    version = int(response.json()["bundle"]["version"])
    wait_for(lambda: box.rules.current.version == version, timeout=10, what="the bundle at the box")
    return version


def published_back_then(app: Any, box: Agent, rules: dict[str, Any], at: datetime) -> None:
    """A bundle published at `at` (the hub folds each span of time under the bundle in force then), and pushed."""
    settings = app.state.settings
    with app.state.engine.begin() as conn:
        bundle = publish_draft(conn, rules, load_signing_key(settings.rules_key_file), at=at, by=ADMIN[0])
    push(settings, bundle, ["riverside"])
    wait_for(lambda: box.rules.current.version == bundle.version, timeout=10, what="the bundle at the box")


def sell(box: Agent, who: str, sale_id: str, when: str, **extra: Any) -> dict[str, Any]:
    box.desk.wall = lambda: at(when)
    tick = at(when) - at("2026-01-01T00:00:00")  # the readers' monotonic clock: presentations far apart
    box.present_card("t1", CARDS[who], now=tick)
    result = answer(box.handle_sale("t1", request("sale", sale_id, popcorn=0, **extra), now=tick + 0.1))
    assert result["status"] == "ok", result
    loyalty: dict[str, Any] = result["loyalty"]
    return loyalty


def at_box(box: Agent, who: str, when: str) -> MemberState:
    with box.journal.transaction() as tx:
        return box.desk.member(tx, TOKENS[who], at=datetime.fromtimestamp(at(when), UTC))


def tier_at_box(box: Agent, state: MemberState) -> str:
    """The member's tier under the box's running rules (never ranked: the lowest)."""
    level = box.rules.current.rules_for(state.programme).level(state.account.tier if state.account else None)
    assert level is not None
    return level.tier_id


def at_hub(client: TestClient, who: str) -> dict[str, Any]:
    """The member holding `who`'s card at the hub; {} (no balance, no tier) before the hub saw the card."""
    found = client.post("/api/v1/members/search", json={"card": {"kind": "read", "number": CARDS[who].text}},
                        auth=ADMIN)
    assert found.status_code == 200, found.text
    if not found.json():
        return {"balance": None, "tier": None}
    [member] = found.json()
    body: dict[str, Any] = client.get(f"/api/v1/members/{member['member_id']}", auth=ADMIN).json()
    return body


def test_a_review_and_an_expiry_at_the_hub_while_the_box_is_cut_off_agree_on_reconnect(
        chain: dict[str, Any], mosquitto: Mosquitto) -> None:
    client, box, app = chain["client"], chain["box"], chain["app"]
    published_back_then(app, box, {
        "currency": "EUR", "timezone": "Europe/Paris", "earning": EARNING, "expiry": {"shelf_life_months": 1},
        "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                             {"tier_id": "silver", "name": "Silver", "min_visits": 2}],
                  "window_months": 1, "review": "monthly", "demotion": "to_qualified"}},
        datetime(2026, 10, 1, tzinfo=UTC))
    # October: Ana visits twice (silver at once), Ben once; 100 points a ticket of 10.00.
    sell(box, "ana", "S-1", "2026-10-10T18:00:00", ticket=1000)
    assert sell(box, "ana", "S-2", "2026-10-11T18:00:00", ticket=1000)["balance"] == 200
    sell(box, "ben", "S-3", "2026-10-12T18:00:00", ticket=1000)
    wait_for(lambda: at_hub(client, "ana")["tier"] == "silver" and at_hub(client, "ben")["balance"] == 100,
             timeout=15, what="October's sales at the hub")
    wait_for(lambda: all(getattr(box.directory.member(TOKENS[who])[0], "account", None) is not None
                         for who in TOKENS), timeout=15, what="the hub's accounts in the box's directory")

    mosquitto.stop()  # the box is cut off from here on
    sell(box, "ben", "S-4", "2026-11-05T18:00:00", ticket=1000)  # the hub does not know of it yet
    worker = app.state.worker
    # 1 December 00:30 in Paris: November's review (window: November) and October's lot expiring.
    worker.clock.run_once(datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
    ana, ben = at_hub(client, "ana"), at_hub(client, "ben")
    assert (ana["tier"], ana["balance"]) == ("regular", 0)
    assert (ben["tier"], ben["balance"]) == ("regular", 0)  # the hub has only October's 100, now lapsed
    kinds = [row["kind"] for row in client.get(f"/api/v1/members/{ana['member_id']}/ledger", auth=ADMIN).json()]
    assert "expiry" in kinds and "tier" in kinds

    # The box, cut off, applies the same rules to its own view at the same moment.
    when = "2026-11-30T23:45:00"
    ana_at_box, ben_at_box = at_box(box, "ana", when), at_box(box, "ben", when)
    assert (tier_at_box(box, ana_at_box), ana_at_box.balance) == ("regular", 0)
    assert (tier_at_box(box, ben_at_box), ben_at_box.balance) == ("regular", 100)

    mosquitto.start()  # the box's November sale reaches the hub, which refolds Ben: 100 kept (earned in November)
    wait_for(lambda: at_hub(client, "ben")["balance"] == 100, timeout=30, what="the box's backlog at the hub")
    wait_for(lambda: box.directory.member(TOKENS["ben"])[0].balance == 100,  # type: ignore[union-attr]
             timeout=15, what="the refolded account in the box's directory")
    for who in ("ana", "ben"):
        hub, here = at_hub(client, who), at_box(box, who, when)
        assert (tier_at_box(box, here), here.balance) == (hub["tier"], hub["balance"]), who
        assert here.account.lots == {month: points for month, points in hub["account"]["lots"].items()}  # type: ignore[union-attr]


DUNE = {"title": "Dune: Part Two", "genres": ["sci-fi"], "distributor": "Legendary Pictures"}


def campaign(starts: str, ends: str) -> dict[str, Any]:
    return {"campaign_id": "dune-double", "name": "Dune: double points", "sponsor": "Legendary Pictures",
            "starts_at": starts, "ends_at": ends, "match": {"films": ["Dune: Part Two"]}, "bonus_percent": 100}


def test_a_campaign_pays_at_the_till_ends_on_its_date_shows_in_the_backtest_and_is_billed(
        chain: dict[str, Any]) -> None:
    client, box = chain["client"], chain["box"]
    plain = {"currency": "EUR", "earning": EARNING, "redemption": {"enabled": True, "points_per_unit": 10}}
    publish(client, box, plain)
    # Before the campaign: a 12.50 Dune ticket earns 125.
    assert sell(box, "ana", "S-1", "2026-11-10T18:00:00", ticket=1250, benefits=True)["points"] == 125
    wait_for(lambda: at_hub(client, "ana")["balance"] == 125, timeout=15, what="the sale at the hub")

    with_campaign = {**plain, "films": [DUNE], "campaigns": [campaign("2026-11-15T00:00:00Z", "2026-11-20T00:00:00Z")]}
    checked = client.post("/api/v1/rules/validate", json=with_campaign, auth=ADMIN).json()
    assert checked["valid"], checked
    publish(client, box, with_campaign)
    during = sell(box, "ana", "S-2", "2026-11-16T18:00:00", ticket=1250, benefits=True)
    assert during["points"] == 250
    assert {"rule": "campaign:dune-double", "points": 125} in during["earned_by"]
    after = sell(box, "ana", "S-3", "2026-11-20T00:00:01", ticket=1250, benefits=True)  # ended at midnight
    assert after["points"] == 125 and all(not part["rule"].startswith("campaign:") for part in after["earned_by"])
    wait_for(lambda: at_hub(client, "ana")["balance"] == 500, timeout=15, what="the campaign's sales at the hub")

    # HQ asks what the same campaign would have made in the fortnight before it.
    draft = {**plain, "films": [DUNE], "campaigns": [campaign("2026-11-01T00:00:00Z", "2026-11-15T00:00:00Z")]}
    started = client.post("/api/v1/rules/backtest", auth=ADMIN, json={
        "draft": draft, "from": "2026-11-01T00:00:00Z", "to": "2026-11-15T00:00:00Z"})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    wait_for(lambda: client.get(f"/api/v1/rules/backtest/{job_id}", auth=ADMIN).json()["status"] != "running",
             timeout=30, what="the backtest")
    job = client.get(f"/api/v1/rules/backtest/{job_id}", auth=ADMIN).json()
    assert job["status"] == "done", job
    chain_wide = job["result"]["chain"]
    assert chain_wide["sales"] == 1
    assert chain_wide["difference"]["points_issued"] == 125
    assert chain_wide["difference"]["sponsors"]["Legendary Pictures"] == {"points": 125, "money": 12}
    assert job["result"]["sites"]["riverside"]["difference"]["points_issued"] == 125

    # What the sponsor is billed for the month: the one sale during the campaign.
    bill = client.get("/api/v1/rules/sponsors", params={"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
                      auth=ADMIN)
    assert bill.status_code == 200, bill.text
    assert bill.json()["sponsors"] == [{"sponsor": "Legendary Pictures", "points": 125, "money": 12}]
    assert [(row["campaign"], row["site_id"], row["points"]) for row in bill.json()["rows"]] == \
        [("dune-double", "riverside", 125)]
