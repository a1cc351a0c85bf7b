"""Staff accounts at the hub: created and changed with refusals by field, badges kept as tokens only, and every
change carried by the member directory in version order with the members' changes, in deltas and snapshots."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.bundles import create_signing_key
from cloud.db.devices import register_device
from cloud.db.fraud_tables import staff, staff_badges
from cloud.db.schema import directory_changes
from cloud.errors import StaffError
from cloud.members import store as members
from cloud.members.directory import changes_after, current_version
from cloud.members.model import CardInput, MemberDraft
from cloud.members.publisher import DirectoryPublisher
from cloud.members.vault import MemberVault
from cloud.staff import store
from protocol.cards import CardScheme, card_token, printed_id
from protocol.codec import decode, encode
from protocol.directory import DirectoryPage, DirectoryRequest
from protocol.signing import public_key_text, verify_directory_page
from protocol.topics import device_topic
from tests.support.waiting import wait_for
from tests.unit.hub.factories import T0

PEPPER = "chain-pepper-for-tests-0123456789"
CARDS = members.CardContext(PEPPER.encode(), CardScheme())
FOB, OTHER_FOB = "0003887558", "0001234567"


def fob(number: str) -> CardInput:
    return CardInput(kind="em4100", number=number)


def token_of(number: str) -> str:
    return card_token(PEPPER.encode(), printed_id("em4100", number, CardScheme()))


def add_site(engine: sa.Engine, site: str) -> None:
    with engine.begin() as conn:
        register_device(conn, site_id=site, device_id=f"{site}-box1", at=T0,
                        public_key=public_key_text(Ed25519PrivateKey.generate()))


def enrol(engine: sa.Engine, *cards: str) -> str:
    with engine.begin() as conn:
        return members.enrol(conn, MemberVault(os.urandom(32)), CARDS, MemberDraft(cards=tuple(fob(c) for c in cards)),
                             at=T0, by="test")


@pytest.fixture
def sites(engine: sa.Engine) -> sa.Engine:
    for site in ("riverside", "harbour"):
        add_site(engine, site)
    return engine


def put(engine: sa.Engine, staff_id: str = "c-7", **fields: Any) -> bool:
    with engine.begin() as conn:
        return store.put_staff(conn, staff_id=staff_id, role=fields.pop("role", "cashier"), at=T0, **fields)


def badge(engine: sa.Engine, number: str, staff_id: str = "c-7") -> str:
    with engine.begin() as conn:
        return store.add_badge(conn, CARDS, staff_id=staff_id, card=fob(number), at=T0)


def test_an_account_is_created_then_set_whole_and_read_back(sites: sa.Engine) -> None:
    assert put(sites, sites_of=["riverside"]) is True
    assert put(sites, role="supervisor", status="suspended", sites_of=["harbour", "riverside"]) is False
    with sites.connect() as conn:
        member = store.get_staff(conn, staff_id="c-7")
        assert (member.role, member.status, member.sites, member.member_id) == (
            "supervisor", "suspended", ["harbour", "riverside"], None)
        assert [m.staff_id for m in store.list_staff(conn, site_id="harbour")] == ["c-7"]
        assert store.list_staff(conn, status="active") == []
        with pytest.raises(StaffError) as missing:
            store.get_staff(conn, staff_id="c-8")
        assert missing.value.kind == "not_found"


@pytest.mark.parametrize(("staff_id", "fields", "field"), [
    ("c" * 32, {}, None),                          # the longest cashier code
    ("c" * 33, {}, "staff_id"),                    # one character over
    ("-c7", {}, "staff_id"),                       # must start with a letter or digit
    ("c 7", {}, "staff_id"),
    ("c-7", {"role": "boss"}, "role"),
    ("c-7", {"status": "fired"}, "status"),
    ("c-7", {"sites_of": ["riverside", "atlantis"]}, "sites"),
    ("c-7", {"member_id": "m0000000000000000"}, "member_id"),
])
def test_an_account_is_refused_by_field_before_anything_is_written(sites: sa.Engine, staff_id: str,
                                                                   fields: dict[str, Any], field: str | None) -> None:
    if field is None:
        assert put(sites, staff_id, **fields) is True
        return
    with pytest.raises(StaffError) as refused:
        put(sites, staff_id, **fields)
    assert refused.value.kind == "invalid" and str(refused.value).startswith(field)
    with sites.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(staff)).scalar_one() == 0
        assert current_version(conn) == 0  # boxes were told nothing


def test_an_unknown_site_is_named_in_the_refusal(sites: sa.Engine) -> None:
    with pytest.raises(StaffError, match="'atlantis' is not a registered site"):
        put(sites, sites_of=["atlantis"])


def test_a_badge_is_kept_as_its_token_and_label_never_as_the_number(sites: sa.Engine, db_url: str,
                                                                    tmp_path: Path) -> None:
    put(sites)
    assert badge(sites, FOB) == token_of(FOB)
    with sites.connect() as conn:
        [held] = store.get_staff(conn, staff_id="c-7").badges
        rows = b"".join(repr(tuple(row)).encode() for table in (staff, staff_badges, directory_changes)
                        for row in conn.execute(sa.select(table)))
    assert (held.token, held.label) == (token_of(FOB), "em4100:******7558")
    files = b"".join(path.read_bytes() for path in tmp_path.glob("hub.db*")) if db_url.startswith("sqlite") else b""
    assert token_of(FOB).encode() in rows
    for form in (FOB, FOB.lstrip("0"), "3887558"):
        assert form.encode() not in rows + files, form


def test_badges_refused_when_a_badge_already_or_another_members_card(sites: sa.Engine) -> None:
    own = enrol(sites, FOB)
    other = enrol(sites, OTHER_FOB)
    put(sites, "c-7", member_id=own)
    put(sites, "c-8")
    assert badge(sites, FOB, "c-7") == token_of(FOB)  # their own membership's card may be their badge
    for staff_id, number, message in (("c-7", FOB, "a badge already"), ("c-8", FOB, "a badge already"),
                                      ("c-8", OTHER_FOB, "another member's")):
        with pytest.raises(StaffError, match=message) as refused:
            badge(sites, number, staff_id)
        assert refused.value.kind == "conflict" and number not in str(refused.value)
    with pytest.raises(StaffError) as unknown:
        badge(sites, "0000000001", "c-9")
    assert unknown.value.kind == "not_found"
    with pytest.raises(StaffError) as malformed:
        badge(sites, "12AB", "c-8")
    assert malformed.value.kind == "invalid" and "12AB" not in str(malformed.value)
    assert other  # the other member still holds their card


@pytest.mark.parametrize(("held", "refused"), [(19, False), (20, True)])
def test_a_staff_member_holds_at_most_20_badges(sites: sa.Engine, held: int, refused: bool) -> None:
    put(sites)
    for n in range(held):
        badge(sites, f"{1000 + n:010d}")
    if refused:
        with pytest.raises(StaffError, match="at most 20") as error:
            badge(sites, "0000009999")
        assert error.value.kind == "conflict"
    else:
        badge(sites, "0000009999")
    with sites.connect() as conn:
        assert len(store.get_staff(conn, staff_id="c-7").badges) == 20


def test_a_badge_taken_back_and_an_account_deleted(sites: sa.Engine) -> None:
    put(sites)
    token = badge(sites, FOB)
    with sites.begin() as conn:
        store.remove_badge(conn, staff_id="c-7", token=token, at=T0)
        with pytest.raises(StaffError) as twice:
            store.remove_badge(conn, staff_id="c-7", token=token, at=T0)
        assert twice.value.kind == "not_found"
        assert store.get_staff(conn, staff_id="c-7").badges == []
        store.delete_staff(conn, staff_id="c-7", at=T0)
        assert store.list_staff(conn) == []


def test_directory_versions_carry_staff_changes_in_order_with_member_changes(sites: sa.Engine) -> None:
    member_id = enrol(sites, OTHER_FOB)                         # v1: the member's card
    put(sites, "c-7", member_id=member_id)                      # v2: the account
    put(sites, "s-1", role="supervisor", sites_of=["riverside"])  # v3
    badge(sites, FOB, "c-7")                                    # v4: c-7 again (its v2 leaves the log)
    with sites.begin() as conn:
        members.add_card(conn, CARDS, member_id, fob("0000000042"), at=T0)  # v5, v6: both of the member's cards
        store.delete_staff(conn, staff_id="s-1", at=T0)          # v7: boxes forget s-1
        changes = changes_after(conn, 0, limit=100)
        assert current_version(conn) == 7
    described = [(c.version, c.staff_id or "card", c.entry is not None) for c in changes]
    assert described == [(4, "c-7", True), (5, "card", True), (6, "card", True), (7, "s-1", False)]
    c7 = changes[0].entry
    assert c7 == {"staff_id": "c-7", "role": "cashier", "status": "active", "sites": [], "badges": [token_of(FOB)],
                  "member_id": member_id}
    assert {c.token for c in changes[1:3]} == {token_of(OTHER_FOB), token_of("0000000042")}


class Captured:
    """What a publisher hands to the broker: directory pages by topic."""

    def __init__(self) -> None:
        self.pages: list[tuple[str, DirectoryPage]] = []
        self._lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes) -> bool:
        with self._lock:
            self.pages.append((topic, decode(DirectoryPage, payload)))
        return True

    def find(self, test: Any) -> list[DirectoryPage]:
        with self._lock:
            return [page for _, page in self.pages if test(page)]


@pytest.fixture
def publisher(sites: sa.Engine, tmp_path: Path) -> Iterator[tuple[DirectoryPublisher, Captured, Ed25519PrivateKey]]:
    key = create_signing_key(tmp_path / "rules.key")
    captured = Captured()
    running = DirectoryPublisher(sites, tmp_path / "rules.key", captured)
    running.start()
    yield running, captured, key
    running.stop()


def test_a_delta_carries_changed_staff_and_forgotten_ones(
        sites: sa.Engine, publisher: tuple[DirectoryPublisher, Captured, Ed25519PrivateKey]) -> None:
    running, captured, key = publisher
    put(sites, "c-7", sites_of=["riverside"])
    badge(sites, FOB, "c-7")
    running.notify()
    [page] = wait_for(lambda: captured.find(lambda p: p.kind == "delta" and p.version == 2 and p.staff
                                            and p.staff[0].badges), what="the badge in a delta")[-1:]
    verify_directory_page(page, key.public_key())
    assert [(s.staff_id, s.role, s.sites, s.badges) for s in page.staff] == [
        ("c-7", "cashier", ["riverside"], [token_of(FOB)])]
    put(sites, "c-7", status="left")
    running.notify()
    left = wait_for(lambda: captured.find(lambda p: p.kind == "delta" and p.version == 3))[0]
    assert [(s.staff_id, s.status) for s in left.staff] == [("c-7", "left")] and left.staff_removed == []
    with sites.begin() as conn:
        store.delete_staff(conn, staff_id="c-7", at=T0)
    running.notify()
    gone = wait_for(lambda: captured.find(lambda p: p.kind == "delta" and p.version == 4))[0]
    assert gone.staff == [] and gone.staff_removed == ["c-7"] and gone.entries == []
    # Every site's boxes get each delta.
    assert {topic for topic, page in captured.pages if page.version == 4} == {
        "marquee/v1/riverside/members", "marquee/v1/harbour/members"}


def test_a_snapshot_carries_every_staff_account_on_its_first_page(
        sites: sa.Engine, publisher: tuple[DirectoryPublisher, Captured, Ed25519PrivateKey]) -> None:
    running, captured, key = publisher
    member_id = enrol(sites, OTHER_FOB)
    put(sites, "c-7", member_id=member_id)
    put(sites, "s-1", role="supervisor")
    badge(sites, FOB, "s-1")
    running.offer_request(device_topic("riverside", "riverside-box1", "directory"), encode(DirectoryRequest(have=0)))
    [page] = wait_for(lambda: captured.find(lambda p: p.kind == "snapshot"), what="the snapshot")
    verify_directory_page(page, key.public_key())
    assert (page.version, page.page, page.pages, page.for_device) == (4, 1, 1, "riverside-box1")
    assert [entry.token for entry in page.entries] == [token_of(OTHER_FOB)]
    assert {s.staff_id: (s.member_id, s.badges) for s in page.staff} == {
        "c-7": (member_id, []), "s-1": (None, [token_of(FOB)])}


def test_a_staff_members_anonymous_account_merged_into_a_member_keeps_them_linked(sites: sa.Engine) -> None:
    from cloud.db.schema import member_cards
    from cloud.db.schema import members as members_table
    from cloud.members import store as member_store
    from tests.unit.hub.factories import T0

    with sites.begin() as conn:
        conn.execute(members_table.insert().values(member_id="manon", programme="default", status="anonymous",
                                                   created_at=T0, updated_at=T0, balance=0, redeemed=0))
        conn.execute(member_cards.insert().values(card_token=token_of("0001234567"), member_id="manon",
                                                  state="active", label="seen", added_at=T0, state_at=T0))
    put(sites, member_id="manon")
    member = enrol(sites, "0003887558")
    with sites.begin() as conn:
        member_store.add_card(conn, CARDS, member, fob("0001234567"), at=T0)
    with sites.connect() as conn:
        assert conn.execute(sa.text("SELECT member_id FROM staff")).scalar() == member
