"""The directory keeper: only the hub's signed pages for this box apply; it asks for what it lacks, not too often."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.directory import ASK_EVERY_S, DirectoryKeeper
from edge.store.crypto import Sealer
from edge.store.directory import Directory
from protocol.directory import DirectoryRequest
from tests.support.directory_pages import delta, entry, snapshot, token_of, wire

HUB = Ed25519PrivateKey.generate()
DEVICE = "riverside-box1"


class Clock:
    """Monotonic seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def asked() -> list[DirectoryRequest]:
    return []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Directory]:
    directory = Directory(tmp_path / "directory.db", Sealer(os.urandom(32), "test-v1"))
    yield directory
    directory.close()


@pytest.fixture
def keeper(store: Directory, asked: list[DirectoryRequest], clock: Clock) -> DirectoryKeeper:
    return DirectoryKeeper(store, HUB.public_key(), site_id="riverside", device_id=DEVICE, request=asked.append,
                           clock=clock)


def test_start_asks_for_the_version_held(keeper: DirectoryKeeper, asked: list[DirectoryRequest]) -> None:
    keeper.start()
    assert asked == [DirectoryRequest(have=0)]
    keeper.offer(wire(delta(0, 3, [entry("card-a")], key=HUB)))
    keeper.start()  # a reconnect: deltas published meanwhile were not kept for the box
    assert asked[-1] == DirectoryRequest(have=3) and keeper.counters["directory_requests"] == 2


def test_a_signed_page_applies_and_a_forged_one_is_refused_counted_and_logged_once(
    keeper: DirectoryKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    assert keeper.offer(wire(delta(0, 1, [entry("card-a", balance=40)], key=HUB))) == "applied"
    caplog.set_level(logging.INFO, logger="edge.directory")
    forged = wire(delta(1, 2, [entry("card-a", balance=10**9, birthday="12-24")], key=Ed25519PrivateKey.generate()))
    for _ in range(3):
        assert keeper.offer(forged) is None
    assert keeper.version == 1 and keeper.directory.lookup(token_of("card-a")).balance == 40  # type: ignore[union-attr]
    assert keeper.counters["directory_pages_refused"] == 3 and "signature" in str(keeper.refusal)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert token_of("card-a") not in refusals[0] and "12-24" not in refusals[0]
    assert keeper.offer(wire(delta(1, 2, [entry("card-a", balance=50)], key=HUB))) == "applied"
    assert keeper.refusal is None and any("accepted again" in r.getMessage() for r in caplog.records)


def test_a_malformed_page_is_refused_without_its_content(
    keeper: DirectoryKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.directory")
    bad = wire(delta(0, 1, [entry("card-a")], key=HUB)).replace(b'"active"', b'"Quinn Marlowe"')
    assert keeper.offer(bad) is None and keeper.offer(b"{not json") is None
    assert keeper.counters["directory_pages_refused"] == 2 and "malformed" in str(keeper.refusal)
    assert "Quinn" not in caplog.text and "Quinn" not in str(keeper.refusal)


def test_a_page_for_another_box_is_ignored(keeper: DirectoryKeeper) -> None:
    other = snapshot(4, [[entry("card-a")]], key=HUB, for_device="riverside-box2")[0]
    assert keeper.offer(wire(other)) is None
    assert keeper.version == 0 and keeper.counters["directory_pages_ignored"] == 1
    mine = snapshot(4, [[entry("card-a")]], key=HUB, for_device=DEVICE)[0]
    assert keeper.offer(wire(mine)) == "applied" and keeper.version == 4


def test_a_gap_asks_at_most_once_per_ten_seconds_until_answered(
    keeper: DirectoryKeeper, asked: list[DirectoryRequest], clock: Clock
) -> None:
    keeper.offer(wire(delta(0, 1, [entry("card-a")], key=HUB)))
    assert keeper.offer(wire(delta(2, 3, [entry("card-b")], key=HUB))) == "gap"
    assert asked == [DirectoryRequest(have=1)]
    clock.now += ASK_EVERY_S - 1
    keeper.offer(wire(delta(3, 4, [entry("card-c")], key=HUB)))
    assert len(asked) == 1  # the answer may be on its way
    clock.now += 2
    keeper.offer(wire(delta(4, 5, [entry("card-d")], key=HUB)))
    assert asked == [DirectoryRequest(have=1)] * 2
    assert keeper.offer(wire(delta(1, 5, [entry("card-b"), entry("card-c"), entry("card-d")], key=HUB))) == "applied"
    keeper.offer(wire(delta(6, 7, [], key=HUB)))  # answered: a new gap asks at once
    assert asked[-1] == DirectoryRequest(have=5) and keeper.counters["directory_gaps"] == 4


def test_while_a_snapshot_arrives_a_gap_does_not_ask_again(
    keeper: DirectoryKeeper, asked: list[DirectoryRequest], clock: Clock
) -> None:
    keeper.start()
    pages = snapshot(9, [[entry("a")], [entry("b")], [entry("c")]], key=HUB)
    for page in pages[:2]:
        clock.now += ASK_EVERY_S
        assert keeper.offer(wire(page)) == "partial"
    keeper.offer(wire(delta(9, 10, [entry("d")], key=HUB)))
    assert len(asked) == 1
    assert keeper.offer(wire(pages[2])) == "applied" and keeper.version == 9


def test_without_the_hubs_key_every_page_is_refused_and_said_once(
    store: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = DirectoryKeeper(store, None, site_id="riverside", device_id=DEVICE, request=lambda request: None)
    assert "hub_public_key" in str(keeper.refusal)
    caplog.set_level(logging.WARNING, logger="edge.directory")
    for _ in range(3):
        assert keeper.offer(wire(delta(0, 1, [entry("card-a")], key=HUB))) is None
    assert keeper.version == 0 and keeper.counters["directory_pages_refused"] == 3
    assert len([r for r in caplog.records if "hub_public_key" in r.getMessage()]) == 1


def test_a_member_is_found_with_all_their_cards(keeper: DirectoryKeeper) -> None:
    keeper.offer(wire(delta(0, 1, [entry("card-a", member="m-5"), entry("card-b", member="m-5")], key=HUB)))
    found, tokens = keeper.member(token_of("card-a"))
    assert found is not None and tokens == sorted([token_of("card-a"), token_of("card-b")])
    assert keeper.member(token_of("unknown")) == (None, [token_of("unknown")])
