"""Staff accounts at the box: they come in the hub's signed directory pages, deltas and snapshots, switch with the
members of a snapshot, survive a restart, and every sale finds them by cashier code, badge and own membership."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.directory import DirectoryKeeper
from edge.store.crypto import Sealer
from edge.store.directory import Directory
from protocol.directory import DirectoryEntry, DirectoryPage, DirectoryRequest
from protocol.signing import sign_directory_page
from protocol.staff import StaffEntry
from tests.support.directory_pages import entry, token_of, wire

HUB = Ed25519PrivateKey.generate()
DEVICE = "riverside-box1"
SEALER_KEY = os.urandom(32)


def staff(staff_id: str, *badges: str, **fields: Any) -> StaffEntry:
    return StaffEntry.model_validate({"staff_id": staff_id, "role": fields.pop("role", "cashier"),
                                      "badges": [token_of(name) for name in badges], **fields})


def delta(version_from: int, version: int, *, entries: Sequence[DirectoryEntry] = (),
          team: Sequence[StaffEntry] = (), gone: Sequence[str] = ()) -> bytes:
    return wire(sign_directory_page(DirectoryPage(kind="delta", version_from=version_from, version=version,
                                                  entries=list(entries), staff=list(team), staff_removed=list(gone)),
                                    HUB))


def snapshot(version: int, pages: Sequence[Sequence[DirectoryEntry]], team: Sequence[StaffEntry]) -> list[bytes]:
    return [wire(sign_directory_page(DirectoryPage(
        kind="snapshot", version_from=0, version=version, page=number, pages=len(pages), entries=list(entries),
        staff=list(team) if number == 1 else [], for_device=DEVICE), HUB)) for number, entries in enumerate(pages, 1)]


def open_directory(path: Path) -> Directory:
    return Directory(path / "directory.db", Sealer(SEALER_KEY, "test-v1"))


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[DirectoryKeeper]:
    asked: list[DirectoryRequest] = []
    keeper = DirectoryKeeper(open_directory(tmp_path), HUB.public_key(), site_id="riverside", device_id=DEVICE,
                             request=asked.append)
    yield keeper
    keeper.close()


def test_staff_from_a_delta_are_found_by_code_badge_and_membership(keeper: DirectoryKeeper) -> None:
    assert keeper.staff("c-7") is None and keeper.badge(token_of("badge-1")) is None
    assert keeper.offer(delta(0, 2, entries=[entry("card-a", member="m-7")],
                              team=[staff("c-7", "badge-1", member_id="m-7", sites=["riverside"]),
                                    staff("s-1", "badge-2", role="supervisor")])) == "applied"
    c7 = keeper.staff("c-7")
    assert c7 is not None and c7.works_at("riverside") and not c7.works_at("harbour")
    assert keeper.badge(token_of("badge-1")) == c7 and keeper.staff_of_member("m-7") == c7
    assert keeper.badge(token_of("badge-2")).role == "supervisor"  # type: ignore[union-attr]
    assert keeper.badge(token_of("card-a")) is None and keeper.staff_of_member("m-8") is None

    # c-7 hands in badge-1 for badge-3 and leaves; s-1 is deleted at HQ.
    assert keeper.offer(delta(2, 4, team=[staff("c-7", "badge-3", member_id="m-7", status="left")],
                              gone=["s-1"])) == "applied"
    assert keeper.badge(token_of("badge-1")) is None and keeper.badge(token_of("badge-3")).status == "left"  # type: ignore[union-attr]
    assert keeper.staff("s-1") is None and keeper.badge(token_of("badge-2")) is None
    assert not keeper.staff("c-7").works_at("riverside")  # type: ignore[union-attr]
    assert keeper.directory.lookup(token_of("card-a")) is not None  # members untouched by staff changes


def test_a_forged_page_brings_no_staff(keeper: DirectoryKeeper) -> None:
    forged = DirectoryPage(kind="delta", version_from=0, version=1, staff=[staff("c-7", "badge-1", role="manager")])
    assert keeper.offer(wire(sign_directory_page(forged, Ed25519PrivateKey.generate()))) is None
    assert keeper.staff("c-7") is None and keeper.badge(token_of("badge-1")) is None


def test_a_snapshots_staff_switch_with_its_members_once_every_page_is_in(keeper: DirectoryKeeper) -> None:
    keeper.offer(delta(0, 3, entries=[entry("card-old")], team=[staff("old", "badge-old")]))
    first, second = snapshot(9, [[entry("card-a")], [entry("card-b")]], [staff("c-7", "badge-1"),
                                                                         staff("s-1", role="manager")])
    assert keeper.offer(first) == "partial"
    # Until the last page, the box decides from the old directory, staff and members alike.
    assert keeper.staff("old") is not None and keeper.staff("c-7") is None
    assert keeper.directory.lookup(token_of("card-old")) is not None
    assert keeper.offer(second) == "applied" and keeper.version == 9
    assert keeper.staff("old") is None and keeper.badge(token_of("badge-old")) is None
    assert keeper.badge(token_of("badge-1")).staff_id == "c-7" and keeper.staff("s-1").role == "manager"  # type: ignore[union-attr]
    assert keeper.directory.lookup(token_of("card-old")) is None and keeper.directory.lookup(token_of("card-b"))


def test_a_single_page_snapshot_redelivered_keeps_its_staff(keeper: DirectoryKeeper) -> None:
    [only] = snapshot(5, [[entry("card-a")]], [staff("c-7", "badge-1")])
    assert keeper.offer(only) == "applied"
    assert keeper.offer(only) == "stale"  # QoS 1 delivers it again
    assert keeper.badge(token_of("badge-1")).staff_id == "c-7"  # type: ignore[union-attr]


def test_staff_survive_a_restart(tmp_path: Path) -> None:
    directory = open_directory(tmp_path)
    keeper = DirectoryKeeper(directory, HUB.public_key(), site_id="riverside", device_id=DEVICE,
                             request=lambda request: None)
    keeper.offer(delta(0, 1, team=[staff("c-7", "badge-1", member_id="m-7")]))
    keeper.close()
    again = DirectoryKeeper(open_directory(tmp_path), HUB.public_key(), site_id="riverside", device_id=DEVICE,
                            request=lambda request: None)
    try:
        assert again.version == 1 and again.staff_of_member("m-7") == again.badge(token_of("badge-1")) is not None
    finally:
        again.close()


def test_an_active_account_wins_a_membership_that_one_who_left_still_names(keeper: DirectoryKeeper) -> None:
    keeper.offer(delta(0, 1, team=[staff("a-old", member_id="m-7", status="left"), staff("z-new", member_id="m-7")]))
    assert keeper.staff_of_member("m-7").staff_id == "z-new"  # type: ignore[union-attr]


def test_a_directory_kept_before_staff_accounts_asks_for_a_snapshot(tmp_path: Path) -> None:
    directory = open_directory(tmp_path)
    directory.apply(DirectoryPage(kind="delta", version_from=0, version=7, entries=[entry("card-a")]))
    directory.close()
    with sqlite3.connect(tmp_path / "directory.db") as conn:  # the file as a box before staff accounts kept it
        conn.execute("DROP TABLE staff")
        conn.execute("DROP TABLE staged_staff")
    asked: list[DirectoryRequest] = []
    keeper = DirectoryKeeper(open_directory(tmp_path), HUB.public_key(), site_id="riverside", device_id=DEVICE,
                             request=asked.append)
    try:
        keeper.start()
        assert asked == [DirectoryRequest(have=0)]  # the hub answers with a snapshot, staff included
        assert keeper.directory.lookup(token_of("card-a")) is not None  # meanwhile the members stay
        assert keeper.offer(delta(7, 8, team=[staff("c-7")])) == "gap"
        [only] = snapshot(8, [[entry("card-a")]], [staff("c-7", "badge-1")])
        assert keeper.offer(only) == "applied" and keeper.badge(token_of("badge-1")) is not None
    finally:
        keeper.close()
