"""The member directory file: deltas only on the version held, snapshots only whole, erasures overwritten."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import StoreError
from edge.store.crypto import Sealer
from edge.store.directory import Directory
from tests.support.directory_pages import delta, entry, snapshot, token_of

HUB = Ed25519PrivateKey.generate()
SEALER = Sealer(os.urandom(32), "test-v1")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    store = Directory(tmp_path / "data" / "directory.db", SEALER)
    yield store
    store.close()


def raw_files(directory: Directory) -> bytes:
    """Every byte SQLite keeps for the directory: the file and its WAL."""
    return b"".join(p.read_bytes() for p in directory.path.parent.glob("directory.db*") if p.is_file())


def test_a_delta_applies_only_on_the_version_held(directory: Directory) -> None:
    first = entry("card-a", balance=500, seen={"riverside-box1": 4}, redeemed_day=date(2026, 11, 20), redeemed=100)
    assert directory.version == 0
    assert directory.apply(delta(0, 1, [first], key=HUB)) == "applied"
    assert directory.apply(delta(0, 1, [first], key=HUB)) == "stale"  # QoS 1 delivered it twice
    assert directory.apply(delta(2, 3, [entry("card-b")], key=HUB)) == "gap"  # version 2 never came
    assert directory.apply(delta(0, 3, [entry("card-b")], key=HUB)) == "gap"  # overlaps what it holds
    assert directory.lookup(token_of("card-b")) is None and directory.version == 1
    second = entry("card-b", balance=70)
    assert directory.apply(delta(1, 2, [first.model_copy(update={"balance": 650}), second], key=HUB)) == "applied"
    assert directory.version == 2
    assert directory.lookup(token_of("card-a")) == first.model_copy(update={"balance": 650})
    assert directory.tokens_of("m-1") == sorted([token_of("card-a"), token_of("card-b")])
    assert directory.lookup(token_of("nobody")) is None and directory.tokens_of("m-9") == []


def test_the_directory_and_its_version_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "directory.db"
    store = Directory(path, SEALER)
    store.apply(delta(0, 7, [entry("card-a", balance=12, birthday="03-14")], key=HUB))
    store.close()
    again = Directory(path, SEALER)
    try:
        assert again.version == 7 and again.lookup(token_of("card-a")) == entry("card-a", balance=12, birthday="03-14")
        stats = again.stats()
        assert (stats.entries, stats.version) == (1, 7) and stats.file_bytes > 0
    finally:
        again.close()
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.glob("directory.db*")} == \
        dict.fromkeys((p.name for p in path.parent.glob("directory.db*")), 0o600)


def test_a_snapshot_in_three_pages_applies_only_when_every_page_is_in(directory: Directory) -> None:
    directory.apply(delta(0, 2, [entry("old-card", balance=1)], key=HUB))
    pages = snapshot(5, [[entry(f"c{n}-{i}", member=f"m-{n}") for i in range(3)] for n in range(3)], key=HUB)
    assert directory.apply(pages[0]) == "partial"
    assert directory.apply(pages[2]) == "partial"
    assert directory.apply(pages[2]) == "partial"  # redelivered: staged once
    # Until the last page, the box decides from the directory it has.
    assert directory.version == 2 and directory.lookup(token_of("old-card")) is not None
    assert directory.lookup(token_of("c0-0")) is None
    assert directory.apply(pages[1]) == "applied"
    assert directory.version == 5 and directory.stats().entries == 9
    assert directory.lookup(token_of("old-card")) is None
    assert directory.tokens_of("m-2") == sorted(token_of(f"c2-{i}") for i in range(3))
    assert directory.apply(pages[0]) == "stale"  # a late copy of a page of the snapshot now held
    assert directory.apply(delta(5, 6, [entry("c0-0", member="m-0", balance=9)], key=HUB)) == "applied"


def test_the_staged_pages_of_an_older_snapshot_are_discarded_when_a_newer_one_starts(directory: Directory) -> None:
    older = snapshot(5, [[entry("five-a")], [entry("five-b")], [entry("five-c")]], key=HUB)
    newer = snapshot(6, [[entry("six-a")], [entry("six-b")]], key=HUB)
    assert [directory.apply(page) for page in older[:2]] == ["partial", "partial"]
    assert directory.apply(newer[0]) == "partial"
    assert directory.apply(older[2]) == "stale"  # the older snapshot can no longer complete
    assert directory.apply(newer[1]) == "applied"
    assert directory.version == 6 and directory.stats().entries == 2
    assert [directory.lookup(token_of(name)) is not None for name in ("five-a", "five-b", "six-a", "six-b")] == \
        [False, False, True, True]


def test_a_snapshot_overtaken_by_deltas_is_stale(directory: Directory) -> None:
    pages = snapshot(3, [[entry("a")], [entry("b")]], key=HUB)
    assert directory.apply(pages[0]) == "partial"
    assert token_of("a").encode() in raw_files(directory)
    assert directory.apply(delta(0, 4, [entry("c")], key=HUB)) == "applied"
    # What was staged is gone from the files: it may hold a card erased since the snapshot was cut.
    assert token_of("a").encode() not in raw_files(directory)
    assert directory.apply(pages[1]) == "stale"
    assert directory.version == 4 and directory.stats().entries == 1


def test_a_birthday_never_reads_in_clear_and_a_removed_card_leaves_no_trace(directory: Directory) -> None:
    erased, kept = entry("erased-card", member="m-7", birthday="12-24"), entry("kept-card", birthday="07-02")
    directory.apply(delta(0, 1, [erased, kept], key=HUB))
    raw = raw_files(directory)
    assert erased.token.encode() in raw  # the search works: the token is there while the card is
    for clear in (b"12-24", b"07-02", b"birthday"):
        assert clear not in raw
    assert directory.lookup(erased.token) == erased
    assert directory.apply(delta(1, 2, removed=[erased.token], key=HUB)) == "applied"
    assert directory.lookup(erased.token) is None and directory.tokens_of("m-7") == []
    raw = raw_files(directory)
    assert erased.token.encode() not in raw and b"m-7" not in raw
    assert kept.token.encode() in raw


def test_a_card_left_out_of_a_snapshot_leaves_no_trace(directory: Directory) -> None:
    directory.apply(delta(0, 1, [entry("gone-card", member="m-gone"), entry("stays")], key=HUB))
    for page in snapshot(2, [[entry("stays")], [entry("new-card")]], key=HUB):
        directory.apply(page)
    raw = raw_files(directory)
    assert token_of("gone-card").encode() not in raw and b"m-gone" not in raw
    assert token_of("stays").encode() in raw and token_of("new-card").encode() in raw


def test_fields_of_a_newer_hub_are_kept_sealed(directory: Directory) -> None:
    card = entry("card-a", nickname="Quinn")
    directory.apply(delta(0, 1, [card], key=HUB))
    assert directory.lookup(card.token) == card and card.model_extra == {"nickname": "Quinn"}
    assert b"Quinn" not in raw_files(directory)


def test_a_row_altered_on_disk_is_a_store_error(directory: Directory) -> None:
    directory.apply(delta(0, 1, [entry("card-a", birthday="01-31")], key=HUB))
    conn = sqlite3.connect(directory.path)
    conn.execute("UPDATE entries SET sealed = ?", (b"\x00" * 40,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="does not open"):
        directory.lookup(token_of("card-a"))
