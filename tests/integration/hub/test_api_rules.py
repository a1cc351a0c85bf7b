"""/api/v1/rules on a real app, database and broker: admins validate and publish, boxes' topics get the
signed bundle retained, analysts only read, drafts that are no bundle are refused by field."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.auth import hash_password
from cloud.bundles import create_signing_key, load_signing_key
from cloud.db.devices import register_device
from cloud.db.users import add_user
from cloud.settings import HubSettings
from protocol.rules import MAX_BUNDLE_BYTES, RuleBundle
from protocol.signing import verify_bundle
from protocol.topics import site_topic
from tests.support.brokers import Mosquitto
from tests.support.hub_users import hq_actions
from tests.unit.hub.factories import T0

ADMIN, ANALYST = ("ada", "admin pass phrase"), ("ann", "analyst pass phrase")
DRAFT = {"currency": "EUR", "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1200}],
         "redemption": {"enabled": True, "offline_daily_cap": 1500}}


@pytest.fixture
def hub(tmp_path: Path, mosquitto: Mosquitto, db_url: str) -> Iterator[tuple[TestClient, Path]]:
    """The hub on SQLite and on PostgreSQL (db_url), its signing key in a file, a real broker."""
    key_file = tmp_path / "rules.key"
    create_signing_key(key_file)
    settings = HubSettings(database_url=db_url, mqtt_port=mosquitto.port, rules_key_file=key_file)
    app = create_app(settings, start_ingest=False)
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            for (name, password), role in ((ADMIN, "admin"), (ANALYST, "analyst")):
                add_user(conn, username=name, password_hash=hash_password(password), role=role, created_at=T0)
            for site in ("riverside", "harbour"):
                register_device(conn, site_id=site, device_id=f"{site}-box1", public_key="ed25519:" + "A" * 43,
                                at=T0, replace_key=True)
        yield client, key_file


def retained(broker: Mosquitto, site: str) -> bytes:
    got: list[bytes] = []
    arrived = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"reader-{site}")
    client.on_message = lambda _c, _u, message: (got.append(bytes(message.payload)), arrived.set())
    client.connect(broker.host, broker.port)
    client.subscribe(site_topic(site, "rules"), qos=1)
    client.loop_start()
    try:
        assert arrived.wait(10), f"nothing retained for {site}"
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0]


def test_an_admin_publishes_and_every_site_holds_the_signed_bundle(
    hub: tuple[TestClient, Path], mosquitto: Mosquitto
) -> None:
    client, key_file = hub
    assert client.get("/api/v1/rules", auth=ANALYST).status_code == 404
    assert client.post("/api/v1/rules/validate", json=DRAFT, auth=ADMIN).json() == {"valid": True, "problems": []}
    answer = client.post("/api/v1/rules", json=DRAFT, auth=ADMIN)
    assert answer.status_code == 201 and answer.json()["sites"] == 2 and answer.json()["detail"] is None
    hub_key = load_signing_key(key_file).public_key()
    for site in ("riverside", "harbour"):
        bundle = RuleBundle.model_validate_json(retained(mosquitto, site))
        verify_bundle(bundle, hub_key)
        assert bundle.version == 1 and bundle.redemption.offline_daily_cap == 1500
    shown = client.get("/api/v1/rules", auth=ANALYST).json()
    assert shown["version"] == 1
    verify_bundle(RuleBundle.model_validate(shown), hub_key)  # what the API shows is what boxes verify
    assert hq_actions(client.app.state.engine, "rules.") == [  # type: ignore[attr-defined]
        ("rules.publish", "version 1", "ada")]


def test_analysts_read_and_validate_but_do_not_publish(hub: tuple[TestClient, Path]) -> None:
    client, _ = hub
    assert client.post("/api/v1/rules/validate", json=DRAFT, auth=ANALYST).json()["valid"] is True
    assert client.post("/api/v1/rules", json=DRAFT, auth=ANALYST).status_code == 403
    assert client.post("/api/v1/rules", json=DRAFT).status_code == 401


def test_a_draft_that_is_no_bundle_is_refused_by_field_and_nothing_is_kept(hub: tuple[TestClient, Path]) -> None:
    client, _ = hub
    bad = {**DRAFT, "version": 7, "earning": [{"rule_id": "Tickets!", "kind": "popcorn", "basis_points": -5}]}
    checked = client.post("/api/v1/rules/validate", json=bad, auth=ADMIN).json()
    assert checked["valid"] is False
    locs = {problem["loc"] for problem in checked["problems"]}
    assert locs == {"version"}  # the hub's own fields are named first; fix those, then the rest shows
    fixed = {key: value for key, value in bad.items() if key != "version"}
    answer = client.post("/api/v1/rules", json=fixed, auth=ADMIN)
    assert answer.status_code == 422
    assert {".".join(p["loc"]) for p in answer.json()["detail"]} == {"earning.0.rule_id", "earning.0.kind",
                                                           "earning.0.basis_points"}
    assert "Tickets!" not in json.dumps(answer.json())  # problems never echo values
    assert client.get("/api/v1/rules", auth=ADMIN).status_code == 404


def test_a_draft_of_2000_films_of_388_kb_is_refused_by_its_size_as_boxes_take_256_kb(
        hub: tuple[TestClient, Path]) -> None:
    client, _ = hub
    films = [{"title": f"The Remarkable Film Number {n:04d}, Extended Director's Cut With Subtitles And Bonus",
              "genres": ["drama", "family", "documentary"], "distributor": "Northlight Pictures International"}
             for n in range(2000)]
    big = {**DRAFT, "films": films}
    size = len(json.dumps(big)) + 200  # the hub's own fields and the signature, estimated
    assert size == 388_367
    checked = client.post("/api/v1/rules/validate", json=big, auth=ADMIN).json()
    assert checked["valid"] is False and [problem["loc"] for problem in checked["problems"]] == ["bundle"]
    message = checked["problems"][0]["msg"]
    assert str(size) in message and str(MAX_BUNDLE_BYTES) in message
    refused = client.post("/api/v1/rules", json=big, auth=ADMIN)
    assert refused.status_code == 422 and [problem["loc"] for problem in refused.json()["detail"]] == [["bundle"]]
    assert client.get("/api/v1/rules", auth=ADMIN).status_code == 404
    fits = {**DRAFT, "films": films[:1000]}
    assert client.post("/api/v1/rules/validate", json=fits, auth=ADMIN).json() == {"valid": True, "problems": []}
