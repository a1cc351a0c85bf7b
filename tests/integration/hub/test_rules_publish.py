"""HQ publishes a rule bundle with `marquee-hub rules`; a running box verifies it with the printed key and
runs it within seconds; drafts that are not bundles are refused by field, and nothing is published."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.cli import main
from edge.agent import Agent
from protocol.signing import public_key_text
from tests.edge_support import PEPPER, edge_settings, new_journal
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for

DRAFT = {
    "currency": "EUR",
    "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1500},
                {"rule_id": "bar", "kind": "concession", "basis_points": 500}],
    "redemption": {"enabled": True, "points_per_unit": 10, "offline_daily_cap": 3000},
}


@pytest.fixture
def hub_env(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    return {"MARQUEE_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
            "MARQUEE_HUB_MQTT_PORT": str(mosquitto.port), "MARQUEE_HUB_RULES_KEY_FILE": str(tmp_path / "rules.key")}


def hub(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
def box(tmp_path: Path, mosquitto: Mosquitto, hub_env: dict[str, str]) -> Iterator[Agent]:
    code, key = hub(hub_env, "rules", "key")
    assert code == 0 and key.startswith("ed25519:"), key
    assert stat.S_IMODE(Path(hub_env["MARQUEE_HUB_RULES_KEY_FILE"]).stat().st_mode) == 0o600
    assert hub(hub_env, "rules", "key") == (0, key)  # the same key again, never a new one
    settings = edge_settings(tmp_path / "box", hub_public_key=key.strip(), mqtt={"port": mosquitto.port})
    code, _ = hub(hub_env, "devices", "add", "--site", "riverside", "--device", "riverside-box1", "--public-key",
                  "ed25519:" + "A" * 43)
    assert code == 0
    agent = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    agent.start()
    yield agent
    agent.stop()


def test_a_published_draft_runs_on_the_box_within_seconds(box: Agent, hub_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps(DRAFT))
    assert hub(hub_env, "rules", "publish", str(draft)) == (0, "bundle version 1 published to 1 site(s)\n")
    wait_for(lambda: box.status(True).rules_version == 1, timeout=10, what="bundle 1 running on the box")
    assert box.rules.current.redemption.offline_daily_cap == 3000 and box.status(True).rules_refusal is None
    assert hub(hub_env, "rules", "publish", str(draft))[1] == "bundle version 2 published to 1 site(s)\n"
    wait_for(lambda: box.status(True).rules_version == 2, timeout=10, what="bundle 2 running on the box")
    assert hub(hub_env, "rules", "push") == (0, "bundle version 2 published to 1 site(s)\n")
    # A site registered later gets the running bundle at once, not at the next publish.
    code, output = hub(hub_env, "devices", "add", "--site", "harbour", "--device", "harbour-box1", "--public-key",
                       public_key_text(Ed25519PrivateKey.generate()))
    assert code == 0 and "rule bundle version 2 published to site harbour" in output
    harbour = edge_settings(tmp_path / "harbour", site_id="harbour", device_id="harbour-box1",
                            hub_public_key=box.settings.hub_public_key, mqtt={"port": box.settings.mqtt.port})
    second = Agent(harbour, journal=new_journal(harbour), pepper=PEPPER.encode())
    second.start()
    try:
        wait_for(lambda: second.status(True).rules_version == 2, timeout=10, what="bundle 2 at the new site")
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"earning": [{"rule_id": "a", "kind": "ticket", "basis_points": 1},
                      {"rule_id": "b", "kind": "ticket", "basis_points": 2}]}, "keep one"),
        ({"redemption": {"enabled": True, "cashback": 3}}, "redemption.cashback: Extra inputs"),
        ({"version": 99}, "the hub sets version itself"),
        ({"currency": "euro"}, "currency: String should match pattern"),
    ],
)
def test_a_draft_that_is_no_bundle_is_refused_by_field_and_nothing_is_published(
    box: Agent, hub_env: dict[str, str], tmp_path: Path, change: dict[str, object], complaint: str
) -> None:
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps({**DRAFT, **change}))
    code, output = hub(hub_env, "rules", "publish", str(draft))
    assert code == 1 and complaint in output
    assert hub(hub_env, "rules", "push")[1].endswith("no bundle published yet; publish one with "
                                                     "`marquee-hub rules publish`\n")
    assert box.status(True).rules_version == 0


def test_without_the_key_nothing_is_signed(hub_env: dict[str, str], tmp_path: Path) -> None:
    draft = tmp_path / "draft.json"
    draft.write_text(json.dumps(DRAFT))
    code, output = hub(hub_env, "rules", "publish", str(draft))
    assert code == 1 and "marquee-hub rules key" in output
