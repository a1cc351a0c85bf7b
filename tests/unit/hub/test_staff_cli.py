"""`marquee-hub staff` and `marquee-hub blocklist` through click's CliRunner, on a real database and broker: what
an operator types, what they read back, and that a card number typed is never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundles import create_signing_key, load_signing_key
from cloud.cli import main
from cloud.db.access_tables import hq_audit
from cloud.db.devices import register_device
from cloud.db.engine import make_engine, migrate
from protocol.cards import CardScheme, card_token, printed_id
from protocol.signing import public_key_text, verify_blocklist
from tests.support.brokers import Mosquitto, free_port
from tests.unit.hub.factories import T0
from tests.unit.hub.test_blocklist import Retained

PEPPER = "chain-pepper-for-tests-0123456789"
FOB = "0003887558"
FOB_TOKEN = card_token(PEPPER.encode(), printed_id("em4100", FOB, CardScheme()))


@pytest.fixture
def env(db_url: str, tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        register_device(conn, site_id="riverside", device_id="riverside-box1", at=T0,
                        public_key=public_key_text(Ed25519PrivateKey.generate()))
    engine.dispose()
    create_signing_key(tmp_path / "rules.key")
    return {"MARQUEE_HUB_DATABASE_URL": db_url, "MARQUEE_HUB_PEPPER": PEPPER,
            "MARQUEE_HUB_RULES_KEY_FILE": str(tmp_path / "rules.key"), "MARQUEE_HUB_MQTT_PORT": str(mosquitto.port)}


def test_staff_added_badged_listed_and_unbadged(env: dict[str, str]) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["staff", "add", "c-7", "--role", "cashier", "--site", "riverside"], env=env)
    assert added.exit_code == 0, added.output
    assert "staff c-7 created" in added.output
    again = runner.invoke(main, ["staff", "add", "c-7", "--role", "supervisor", "--site", "riverside"], env=env)
    assert "staff c-7 updated" in again.output
    unknown = runner.invoke(main, ["staff", "add", "c-8", "--role", "cashier", "--site", "atlantis"], env=env)
    assert unknown.exit_code == 1 and "'atlantis' is not a registered site" in unknown.output

    badged = runner.invoke(main, ["staff", "badge", "c-7", "--family", "em4100"], input=f"{FOB}\n", env=env)
    assert badged.exit_code == 0, badged.output
    assert f"badge {FOB_TOKEN} added" in badged.output and FOB not in badged.output  # asked for without echo
    twice = runner.invoke(main, ["staff", "badge", "c-7", "--family", "em4100", "--card", FOB], env=env)
    assert twice.exit_code == 1 and "a badge already" in twice.output and FOB not in twice.output

    listed = runner.invoke(main, ["staff", "list", "--site", "riverside"], env=env)
    assert listed.output.split("\t") == ["c-7", "supervisor", "active", "riverside", "-", "em4100:******7558\n"]
    as_json = json.loads(runner.invoke(main, ["staff", "list", "--json"], env=env).output)
    assert as_json == [{"staff_id": "c-7", "role": "supervisor", "status": "active", "sites": ["riverside"],
                        "member_id": None, "badges": [{"token": FOB_TOKEN, "label": "em4100:******7558"}]}]

    removed = runner.invoke(main, ["staff", "remove-badge", "c-7", FOB_TOKEN], env=env)
    assert removed.exit_code == 0 and "badge removed" in removed.output
    missing = runner.invoke(main, ["staff", "remove-badge", "c-7", FOB_TOKEN], env=env)
    assert missing.exit_code == 1 and "no such badge" in missing.output
    assert audited(env) == [("staff.create", "c-7", "cli"), ("staff.update", "c-7", "cli"),
                            ("staff.badge_add", "c-7", "cli"), ("staff.badge_remove", "c-7", "cli")]


def audited(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """The HQ audit log's (action, target, via), oldest first: what the operator's commands changed."""
    engine = make_engine(env["MARQUEE_HUB_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(
                sa.select(hq_audit.c.action, hq_audit.c.target, hq_audit.c.via).order_by(hq_audit.c.id))]
    finally:
        engine.dispose()


def test_blocklist_added_published_listed_and_removed(env: dict[str, str], mosquitto: Mosquitto,
                                                      tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["blocklist", "add", "--family", "em4100", "--reason", "stolen fob"],
                          input=f"{FOB}\n", env=env)
    assert added.exit_code == 0, added.output
    assert f"blocklist version 1: card {FOB_TOKEN} listed" in added.output and "published" in added.output
    assert FOB not in added.output
    reader = Retained(mosquitto.port)
    try:
        got = reader.latest(1)
    finally:
        reader.close()
    verify_blocklist(got, load_signing_key(tmp_path / "rules.key").public_key())
    assert got.lists(FOB_TOKEN, None)

    usage = runner.invoke(main, ["blocklist", "add", "--token", FOB_TOKEN, "--member", "m1", "--reason", "x"], env=env)
    assert usage.exit_code == 2 and "give one of" in usage.output

    listed = runner.invoke(main, ["blocklist", "list", "--json"], env=env)
    document = json.loads(listed.output)
    assert document["version"] == 1
    assert [(e["kind"], e["value"], e["reason"], e["added_by"]) for e in document["entries"]] == [
        ("card", FOB_TOKEN, "stolen fob", "cli")]

    removed = runner.invoke(main, ["blocklist", "remove", "card", FOB_TOKEN], env=env)
    assert removed.exit_code == 0 and f"blocklist version 2: card {FOB_TOKEN} removed" in removed.output
    assert "blocklist version 0" not in runner.invoke(main, ["blocklist", "list"], env=env).output
    masked = f"card:{FOB_TOKEN[:8]}…"  # the audit log never holds a whole card token
    assert audited(env) == [("blocklist.add", masked, "cli"), ("blocklist.remove", masked, "cli")]


def test_blocklist_kept_but_not_published_when_the_broker_is_down(env: dict[str, str]) -> None:
    down = {**env, "MARQUEE_HUB_MQTT_PORT": str(free_port())}
    added = CliRunner().invoke(main, ["blocklist", "add", "--token", FOB_TOKEN, "--reason", "x"], env=down)
    assert added.exit_code == 1
    assert "version 1 is kept, but not yet published" in added.output
    listed = CliRunner().invoke(main, ["blocklist", "list"], env=down)
    assert listed.output.startswith("blocklist version 1: 1 entry")
