"""The box's rule bundle: only the hub's signature makes it run, it survives a restart, refusals say why."""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.rules import RuleKeeper
from protocol.rules import Earning, RuleBundle
from protocol.signing import sign_bundle

HUB = Ed25519PrivateKey.generate()


def signed(version: int, basis_points: int = 2000, key: Ed25519PrivateKey = HUB, **extra: object) -> bytes:
    bundle = RuleBundle(version=version, published_at=datetime(2026, 11, 25, tzinfo=UTC), currency="EUR",
                        earning=(Earning(rule_id="tickets", kind="ticket", basis_points=basis_points),))
    body = sign_bundle(bundle, key).model_dump(mode="json", by_alias=True)
    body.update(extra)
    return json.dumps(body).encode()


def test_without_a_bundle_the_box_runs_the_documented_default(tmp_path: Path) -> None:
    keeper = RuleKeeper(tmp_path / "rules.json", HUB.public_key())
    assert keeper.current.version == 0 and keeper.refusal is None
    assert not keeper.current.redemption.enabled


def test_the_hubs_bundle_runs_and_a_restart_offline_runs_it_again(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    keeper = RuleKeeper(path, HUB.public_key())
    assert keeper.offer(signed(3))
    assert keeper.current.version == 3 and keeper.current.earning[0].basis_points == 2000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = RuleKeeper(path, HUB.public_key())  # the box restarted, and the broker is out of reach
    assert again.current.version == 3
    assert not again.offer(signed(3)) and again.refusal is None  # the retained copy again: nothing to do


def test_a_forged_or_older_bundle_changes_nothing_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = RuleKeeper(tmp_path / "rules.json", HUB.public_key())
    keeper.offer(signed(3))
    caplog.set_level(logging.WARNING)
    for _ in range(3):  # a retained forgery comes back at every reconnect
        assert not keeper.offer(signed(9, basis_points=10_000, key=Ed25519PrivateKey.generate()))
    assert keeper.current.version == 3 and "hub's key" in str(keeper.refusal)
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    assert not keeper.offer(signed(2)) and "older than the running 3" in str(keeper.refusal)
    assert not keeper.offer(b"{not json") and keeper.current.version == 3
    assert not keeper.offer(signed(10, tiers=[{"name": "gold"}])) and "newer box" in str(keeper.refusal)
    assert keeper.offer(signed(4)) and keeper.refusal is None


def test_a_box_without_the_hubs_key_refuses_every_bundle(tmp_path: Path) -> None:
    keeper = RuleKeeper(tmp_path / "rules.json", None)
    assert not keeper.offer(signed(3)) and "hub_public_key" in str(keeper.refusal)
    assert keeper.current.version == 0


def test_a_kept_bundle_edited_on_disk_is_not_run(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    RuleKeeper(path, HUB.public_key()).offer(signed(3))
    path.write_bytes(path.read_bytes().replace(b"2000", b"9000"))
    keeper = RuleKeeper(path, HUB.public_key())
    assert keeper.current.version == 0 and "not valid" in str(keeper.refusal)


def test_a_bundle_that_cannot_be_kept_is_not_run(tmp_path: Path) -> None:
    keeper = RuleKeeper(tmp_path / "gone" / "rules.json", HUB.public_key())  # its folder vanished
    assert not keeper.offer(signed(3))
    assert keeper.current.version == 0 and "cannot keep bundle 3 on disk" in str(keeper.refusal)
