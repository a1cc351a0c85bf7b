"""The blocklist at the box: only the hub's signed, newer lists apply; the last good one is kept on disk, owner-only,
and applies again after a restart; a refused one is counted and logged once per reason."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.blocklist import NO_KEY, BlocklistKeeper
from protocol.blocklist import Blocklist
from protocol.codec import encode
from protocol.signing import sign_blocklist

HUB = Ed25519PrivateKey.generate()
CARD, OTHER = "ab" * 32, "cd" * 16


def listed(version: int, cards: tuple[str, ...] = (CARD,), members: tuple[str, ...] = ("m-7",),
           key: Ed25519PrivateKey = HUB) -> bytes:
    return encode(sign_blocklist(Blocklist(version=version, issued_at=datetime(2026, 3, 1, tzinfo=UTC),
                                           cards=list(cards), members=list(members)), key))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "blocklist.json"


@pytest.fixture
def keeper(path: Path) -> BlocklistKeeper:
    path.parent.mkdir(mode=0o700)
    return BlocklistKeeper(path, HUB.public_key())


def test_a_signed_list_applies_to_cards_and_members(keeper: BlocklistKeeper) -> None:
    assert keeper.current is None and not keeper.lists(CARD, None) and keeper.version == 0
    assert keeper.offer(listed(1)) is True
    assert keeper.lists(CARD, None) and keeper.lists(OTHER, "m-7") and keeper.lists(None, "m-7")
    assert not keeper.lists(OTHER, "m-8") and not keeper.lists(None, None)
    assert keeper.counters == {"blocklist_version": 1, "blocklist_applied": 1, "blocklist_refused": 0}


@pytest.mark.parametrize(("version", "applied", "refused"), [(1, False, True), (2, False, False), (3, True, False)])
def test_only_a_newer_version_replaces_the_one_in_use(keeper: BlocklistKeeper, version: int, applied: bool,
                                                      refused: bool) -> None:
    keeper.offer(listed(2))
    assert keeper.offer(listed(version, cards=(OTHER,), members=())) is applied
    assert keeper.lists(OTHER, None) is applied and keeper.lists(CARD, "m-7") is not applied
    # The same version again is the retained copy coming back at a reconnection: not a refusal.
    assert (keeper.refusal is not None) is refused and keeper.counters["blocklist_refused"] == int(refused)


def test_forged_malformed_and_older_lists_are_refused_counted_and_logged_once_per_reason(
        keeper: BlocklistKeeper, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.blocklist")
    keeper.offer(listed(5))
    forged = listed(6, cards=(OTHER,), key=Ed25519PrivateKey.generate())
    for _ in range(3):
        assert keeper.offer(forged) is False
    assert "signature" in str(keeper.refusal)
    unsigned = encode(Blocklist(version=7, issued_at=datetime(2026, 3, 1, tzinfo=UTC), cards=[OTHER]))
    assert keeper.offer(unsigned) is False
    malformed = b'{"schema": "marquee.blocklist/1", "version": "eight", "cards": ["4111111111111111"]}'
    assert keeper.offer(malformed) is False
    assert "malformed" in str(keeper.refusal) and "4111111111111111" not in str(keeper.refusal)
    assert keeper.offer(listed(4)) is False and "older" in str(keeper.refusal)
    assert keeper.version == 5 and not keeper.lists(OTHER, None)
    assert keeper.counters["blocklist_refused"] == 6
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 4  # forged (once for three), unsigned, malformed, older
    assert all("4111111111111111" not in line for line in caplog.text.splitlines())


def test_the_good_one_is_kept_owner_only_and_survives_a_restart_and_a_forgery_on_disk(
        keeper: BlocklistKeeper, path: Path) -> None:
    keeper.offer(listed(3))
    keeper.offer(listed(4, key=Ed25519PrivateKey.generate()))  # refused: the disk keeps version 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restarted = BlocklistKeeper(path, HUB.public_key())
    assert restarted.version == 3 and restarted.lists(CARD, None) and restarted.counters["blocklist_version"] == 3
    assert not list(path.parent.glob(".*.tmp"))

    path.write_bytes(listed(9, cards=(OTHER,), key=Ed25519PrivateKey.generate()))  # edited on the box by hand
    tampered = BlocklistKeeper(path, HUB.public_key())
    assert tampered.current is None and "not valid" in str(tampered.refusal)
    assert tampered.offer(listed(3)) is True  # the hub's retained copy puts the real one back


def test_without_the_hub_key_nothing_applies(path: Path) -> None:
    keeper = BlocklistKeeper(path, None)
    assert keeper.offer(listed(1)) is False and keeper.refusal == NO_KEY and keeper.current is None


def test_a_list_that_cannot_be_kept_is_not_applied(tmp_path: Path) -> None:
    keeper = BlocklistKeeper(tmp_path / "missing-folder" / "blocklist.json", HUB.public_key())
    assert keeper.offer(listed(1)) is False
    assert "cannot keep" in str(keeper.refusal) and not keeper.lists(CARD, None)
