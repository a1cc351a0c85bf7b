"""SiteSimulator against a minimal answering till-side peer written with plain pyserial on the pty links."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import serial

from edge.devices.pos import NAK, PosFrame, PosFrameParser, SaleAnswer, SaleRequest, encode_answer, parse_request
from edge.devices.rdm6300 import CardRead, Debouncer, Rdm6300Parser
from edge.errors import FrameError
from edge.simulator.site import SiteSimulator, create_pty_link, member_card_ids, run_simulator_forever
from tests.support.waiting import wait_for


class Peer:
    """Plays the agent: reads both links, NAKs damaged frames, answers sales (or not, or NAKs them)."""

    def __init__(self, card_link: Path, pos_link: Path, *, mode: str = "answer") -> None:
        self.mode = mode  # answer | rules (v1.2 benefits, as a chain's rules give) | nak_first | nak_always | silent
        self.card = serial.serial_for_url(str(card_link), timeout=0.01)
        self.pos = serial.serial_for_url(str(pos_link), timeout=0.01)
        self.requests: list[SaleRequest] = []
        self.cards: list[str] = []
        self.card_errors: list[FrameError] = []
        self.pos_errors: list[FrameError] = []
        self.points_given = 0
        self._card_parser = Rdm6300Parser()
        self._pos_parser = PosFrameParser()
        self._debouncer = Debouncer()
        self._pending_card: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.card.close()
        self.pos.close()

    def _read(self, port: serial.Serial) -> bytes:
        data: bytes = port.read(1)
        return data + port.read(port.in_waiting) if data else data

    def _run(self) -> None:
        tick = 0.0
        while not self._stop.is_set():
            tick += 1
            for read in self._card_parser.feed(self._read(self.card)):
                if isinstance(read, CardRead):
                    if self._debouncer.accept(read.card_id, tick):
                        self.cards.append(read.card_id)
                    self._pending_card = read.card_id
                else:
                    self.card_errors.append(read)
            for item in self._pos_parser.feed(self._read(self.pos)):
                if isinstance(item, FrameError):
                    self.pos_errors.append(item)
                    self.pos.write(bytes([NAK]))
                elif isinstance(item, PosFrame):
                    request = parse_request(item.payload)
                    assert isinstance(request, SaleRequest)  # the simulator sends no redeems unless asked
                    self._on_sale(request)

    def _on_sale(self, request: SaleRequest) -> None:
        first_time = request.sale_id not in {r.sale_id for r in self.requests}
        self.requests.append(request)
        if self.mode == "silent":
            return
        if self.mode == "nak_always" or (self.mode == "nak_first" and first_time):
            self.pos.write(bytes([NAK]))
            return
        card, self._pending_card = self._pending_card, None
        points = request.total // 100 if card else 0
        self.points_given += points
        loyalty: dict[str, Any] = {"status": "earned" if card else "no_card", "points": points, "balance": points}
        if self.mode == "rules" and card:
            loyalty.update(RULES_ANSWER)
        self.pos.write(encode_answer(SaleAnswer(sale_id=request.sale_id, status="ok", loyalty=loyalty, card=card)))


# What the peer's "rules" mode gives every member: a campaign's and a tier's bonus, the first line (a ticket)
# covered by a pass, 40 off line 1 as a member discount, the birthday ticket, silver.
RULES_ANSWER: dict[str, Any] = {
    "earned_by": [{"rule": "tickets", "points": 1}, {"rule": "campaign:drift", "points": 30},
                  {"rule": "tier:silver", "points": 5}, {"rule": "daypart:matinee", "points": 2}],
    "benefits": [{"line": 0, "amount": 1250, "reason": "pass"}, {"line": 1, "amount": 40, "reason": "member"},
                 {"line": 0, "amount": 900, "reason": "birthday"}],
    "discount": 2190, "tier": {"id": "silver", "name": "Silver"}, "passes": [], "birthday_reward": "used",
    "capped": None,
}


@pytest.fixture
def links(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "card0", tmp_path / "pos0"


@pytest.fixture
def site(links: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[tuple[SiteSimulator, Peer]]:
    """A simulator with its links open and a peer on them; indirect params set the peer's mode and options."""
    options = dict(getattr(request, "param", {}))
    mode = options.pop("mode", "answer")
    sim = SiteSimulator(card_link=links[0], pos_link=links[1], seed=7, pace=0.01, **options)
    sim.open()
    peer = Peer(*links, mode=mode)
    yield sim, peer
    peer.close()
    sim.stop()


@pytest.mark.parametrize("site", [{"noise": 0.0}], indirect=True)
def test_sales_are_answered_and_look_like_a_cinema(site: tuple[SiteSimulator, Peer]) -> None:
    sim, peer = site
    stats = sim.run_sales(30)
    assert (stats.sales_sent, stats.answered, stats.unanswered, stats.naks) == (30, 30, 0, 0)
    assert stats.points_seen == peer.points_given
    assert sum(stats.by_loyalty.values()) == 30
    assert 0 < stats.cards_presented < 30 and stats.card_frames >= 2 * stats.cards_presented
    assert peer.card_errors == [] and peer.pos_errors == []
    assert set(peer.cards) <= set(sim.member_cards)

    ids = [r.sale_id for r in peer.requests]
    assert len(set(ids)) == 30
    assert all(re.fullmatch(rf"S-t1-{sim.run_id}-\d+", sale_id) for sale_id in ids)
    today = datetime.now(UTC).date()
    tickets = [i for r in peer.requests for i in r.items if i.kind == "ticket"]
    concessions = [i for r in peer.requests for i in r.items if i.kind == "concession"]
    for r in peer.requests:
        assert 1 <= sum(i.qty for i in r.items if i.kind == "ticket") <= 4
        assert sum(i.qty for i in r.items if i.kind == "concession") <= 3
        assert r.till == "t1" and r.currency == "EUR" and r.benefits is True  # v1.2: the till applies benefits
    for t in tickets:
        assert t.showtime is not None and t.showtime.date() == today
        assert (11, 0) <= (t.showtime.hour, t.showtime.minute) <= (22, 30) and t.showtime.minute in (0, 30)
        assert t.hall in {f"h{n}" for n in range(1, 7)} and 900 <= t.price <= 1800
        assert t.format == ("premium" if t.sku == "TKT-PRM" else "imax" if t.sku == "TKT-IMX" else "2d")
    assert all(350 <= c.price <= 850 and c.category in {"popcorn", "drinks", "snacks", "combo"} for c in concessions)
    assert 2 <= len({t.film for t in tickets}) <= 10
    assert stats.passes_bought == 0 and not any(i.sku == "PASS-CINE" for r in peer.requests for i in r.items)


@pytest.mark.parametrize("site", [{"mode": "rules", "noise": 0.0, "pass_rate": 1.0}], indirect=True)
def test_members_buy_the_pass_and_the_stats_count_what_the_rules_gave(site: tuple[SiteSimulator, Peer]) -> None:
    sim, peer = site
    stats = sim.run_sales(30)
    members = stats.by_loyalty["earned"]
    assert stats.answered == 30 and 0 < members < 30
    passes = [r for r in peer.requests if any(i.sku == "PASS-CINE" for i in r.items)]
    assert stats.passes_bought == len(passes) == members  # pass_rate 1: every member buys one
    assert all(r.items[-1].model_dump(include={"kind", "description", "price"}) == {
        "kind": "concession", "description": "CinePass 30 days", "price": 2990} for r in passes)
    assert stats.campaign_points == {"drift": 30 * members}
    assert (stats.tier_points, stats.daypart_points) == (5 * members, 2 * members)
    assert stats.money_off == {"pass": 1250 * members, "member": 40 * members, "birthday": 900 * members}
    assert stats.member_discounts == stats.birthday_tickets == members
    assert stats.pass_tickets == sum(1250 // r.items[0].price for r in passes)
    assert stats.tiers_seen == {"silver": len(set(peer.cards))}  # members, each counted once
    assert stats.capped == 0


@pytest.mark.parametrize("site", [{"mode": "nak_first"}], indirect=True)
def test_a_nak_makes_the_simulator_resend_the_same_frame(site: tuple[SiteSimulator, Peer]) -> None:
    sim, peer = site
    stats = sim.run_sales(5)
    assert (stats.answered, stats.naks, stats.resends) == (5, 5, 5)
    ids = [r.sale_id for r in peer.requests]
    assert ids == [sale_id for sale_id in dict.fromkeys(ids) for _ in range(2)]


@pytest.mark.parametrize("site", [{"mode": "nak_always"}], indirect=True)
def test_the_simulator_gives_up_after_three_resends(site: tuple[SiteSimulator, Peer]) -> None:
    sim, peer = site
    stats = sim.run_sales(2)
    assert (stats.answered, stats.gave_up, stats.naks, stats.resends) == (0, 2, 8, 6)
    assert len(peer.requests) == 8


@pytest.mark.parametrize("site", [{"mode": "silent", "answer_timeout": 0.2}], indirect=True)
def test_no_answer_in_time_is_counted_as_unanswered(site: tuple[SiteSimulator, Peer]) -> None:
    sim, _ = site
    stats = sim.run_sales(2)
    assert (stats.sales_sent, stats.answered, stats.unanswered) == (2, 0, 2)


@pytest.mark.parametrize("site", [{"noise": 1.0}], indirect=True)
def test_noise_garbles_card_lines_and_lrcs_yet_every_sale_gets_through(site: tuple[SiteSimulator, Peer]) -> None:
    sim, peer = site
    stats = sim.run_sales(20)
    assert stats.answered == 20
    assert stats.reader_faults == stats.cards_presented > 0  # every presentation met noise or a broken frame
    assert stats.corrupted_sent > 0
    assert stats.naks == stats.corrupted_sent == len(peer.pos_errors)
    assert {e.kind for e in peer.pos_errors} == {"checksum"}
    assert peer.card_errors  # the garbage was seen as garbage, never as a card
    assert set(peer.cards) <= set(sim.member_cards)


def test_start_sells_in_the_background_and_stop_removes_the_links(links: tuple[Path, Path]) -> None:
    sim = SiteSimulator(card_link=links[0], pos_link=links[1], seed=3, pace=0.01, sales_per_minute=6000)
    stop = threading.Event()
    runner = threading.Thread(target=run_simulator_forever, args=(sim, stop))
    runner.start()
    try:
        wait_for(lambda: all(os.path.lexists(link) for link in links), timeout=5, what="links")
        peer = Peer(*links)
        try:
            wait_for(lambda: sim.stats.answered >= 3, timeout=10, what="three answered sales")
        finally:
            peer.close()
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert not any(os.path.lexists(link) for link in links)
    assert not [t for t in threading.enumerate() if t.name == "simulator-t1"]
    assert sim.stats["answered"] >= 3


def test_member_cards_are_deterministic_distinct_hex_ids() -> None:
    cards = member_card_ids(7, 50)
    assert cards == member_card_ids(7, 50) != member_card_ids(8, 50)
    assert len(set(cards)) == 50 and all(re.fullmatch(r"[0-9A-F]{10}", c) for c in cards)


def test_create_pty_link_replaces_a_link_and_close_only_removes_its_own(tmp_path: Path) -> None:
    link = tmp_path / "dev" / "ttyCARD"
    first = create_pty_link(link)
    second = create_pty_link(link)
    try:
        assert os.readlink(link) == second.slave_name != first.slave_name
        assert first.read_available(0.01) == b""  # no EIO while nobody has opened the slave
        first.close()
        assert os.path.lexists(link)
    finally:
        second.close()
    assert not os.path.lexists(link)
