"""Every reader family on real pseudo-terminals, through the box's device wiring: one card, one identity;
a reader unplugged and plugged back during traffic resumes without a restart, and says so in the status."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.peripherals import Peripherals, Writer
from edge.settings import EdgeSettings
from edge.simulator.pty import create_pty_link
from edge.simulator.readers import ReaderOptions, SimCard, VirtualReader, member_cards
from protocol.cards import CardId, CardScheme, em4100_id, member_code_id, nfc_id, printed_id
from tests.edge_support import PEPPER
from tests.support.waiting import wait_for

W24 = CardScheme(em4100="wiegand24")
CARD = member_cards(11, 1)[0]
READERS = [
    {"kind": "rdm6300"},
    {"kind": "magstripe"},
    {"kind": "nfc-line", "reverse_uid": True},
    {"kind": "pn532"},
    {"kind": "wiegand", "wiegand_output": "bits"},
    {"kind": "wiegand", "wiegand_output": "hex", "name": "t1-wiegand-hex"},
    {"kind": "barcode"},
]


def expected(kind: str, card: SimCard) -> CardId:
    """What the chain should call this card, computed from the card itself, not from any reader."""
    if kind in ("rdm6300", "wiegand"):
        return em4100_id(card.fob, 40, W24)
    if kind in ("nfc-line", "pn532"):
        return nfc_id(card.uid)
    if kind == "magstripe":
        return printed_id("magstripe", card.loyalty, W24)
    return member_code_id(card.member_code)


class Site:
    """The box's devices (Peripherals) on ptys, with virtual readers playing the other side."""

    def __init__(self, root: Path) -> None:
        self.stop = threading.Event()
        self.seen: list[tuple[str, CardId]] = []
        self.pos = create_pty_link(root / "pos-t1")
        self.readers: dict[str, VirtualReader] = {}
        specs = []
        for spec in READERS:
            name = str(spec.get("name", f"t1-{spec['kind']}"))
            link = root / name
            options = ReaderOptions(**{k: v for k, v in spec.items() if k not in ("kind", "name")})  # type: ignore[arg-type]
            self.readers[name] = VirtualReader(str(spec["kind"]), link, rng=random.Random(1), options=options,
                                               pace=0.1)
            self.readers[name].open()
            specs.append({**spec, "till": "t1", "port": str(link)})
        self.settings = EdgeSettings.model_validate({
            "site_id": "riverside", "device_id": "riverside-box1", "data_dir": root / "data", "pepper": PEPPER,
            "cards": {"em4100": "wiegand24"}, "tills": [{"till_id": "t1", "pos_port": str(root / "pos-t1")}],
            "readers": specs,
        })
        self.box = Peripherals(self.settings, on_card=self._card, on_pos=self._pos)
        self.box.start()

    def _card(self, till_id: str, card: CardId, reader: str, window_s: float) -> bool:
        self.seen.append((reader, card))
        return True

    def _pos(self, till_id: str, line: Writer, item: object) -> None:
        pass  # no sales in these tests

    def cards_from(self, reader: str) -> list[CardId]:
        return [card for name, card in self.seen if name == reader]

    def close(self) -> None:
        self.stop.set()
        self.box.stop()
        for reader in self.readers.values():
            reader.close()
        self.pos.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site = Site(tmp_path)
    try:
        wait_for(lambda: all(h.state == "up" for h in site.box.health().values()), timeout=10,
                 what="every port open")
        yield site
    finally:
        site.close()


def test_one_card_reaches_one_identity_per_family_through_every_reader(site: Site) -> None:
    for name, reader in site.readers.items():
        reader.present(CARD, fault_rate=0, wait=site.stop)
        wait_for(lambda name=name: site.cards_from(name), timeout=10, what=f"a read from {name}")  # type: ignore[misc]
        assert set(site.cards_from(name)) == {expected(reader.kind, CARD)}, name
    # The fob: an RDM6300 and both Wiegand converters give the same id (the chain uses wiegand24).
    fob_ids = {card for name, card in site.seen if "rdm6300" in name or "wiegand" in name}
    assert fob_ids == {printed_id("em4100", f"{CARD.fob & 0xFFFFFFFF:010d}", W24)}
    health = site.box.health()
    assert all(health[name].reads >= 1 and health[name].last_read_at is not None for name in site.readers)


def test_faults_on_every_line_are_counted_by_kind_and_never_give_a_wrong_card(site: Site) -> None:
    for reader in site.readers.values():
        for fault in ("noise", "damaged"):
            reader._fault(fault, CARD, site.stop)  # noqa: SLF001 (the fault alone, no clean read after it)
        reader.present(CARD, fault_rate=0, wait=site.stop)
    wait_for(lambda: all(site.cards_from(name) for name in site.readers), timeout=15, what="a read from every reader")
    assert {card for _, card in site.seen} == {expected(r.kind, CARD) for r in site.readers.values()}
    health = site.box.health()
    for name, reader in site.readers.items():
        if reader.kind == "pn532":
            # A corrupted reply is NACKed and read again; its DCS error is counted.
            wait_for(lambda name=name: site.box.health()[name].errors, timeout=5, what="the PN532's error count")  # type: ignore[misc]
        else:
            assert sum(health[name].errors.values()) >= 1, (name, health[name].errors)


@pytest.mark.parametrize("name", [spec.get("name", f"t1-{spec['kind']}") for spec in READERS])
def test_a_reader_unplugged_during_traffic_comes_back_by_itself(site: Site, name: str) -> None:
    reader = site.readers[str(name)]
    cards = member_cards(12, 40)
    traffic = threading.Event()

    def present_cards() -> None:  # customers keep presenting cards, plug or no plug
        for card in cards * 5:
            if traffic.is_set():
                return
            reader.present(card, fault_rate=0, wait=traffic)

    presenter = threading.Thread(target=present_cards, daemon=True)
    presenter.start()
    try:
        wait_for(lambda: site.cards_from(name), timeout=10, what="reads before the unplug")
        reader.unplug()
        wait_for(lambda: site.box.health()[name].state == "down", timeout=10, what="the reader shown down")
        during = len(site.cards_from(name))
        reader.replug()
        wait_for(lambda: site.box.health()[name].state == "up", timeout=15, what="the reader back up")
        wait_for(lambda: len(site.cards_from(name)) > during + 1, timeout=15, what="reads after the replug")
    finally:
        traffic.set()
        presenter.join(10)
    health = site.box.health()[name]
    assert health.reopens >= 1 and health.state == "up"
    valid = {expected(reader.kind, card) for card in cards}
    assert set(site.cards_from(name)) <= valid  # a frame cut by the unplug is an error, never a wrong card


def test_a_pn532_that_stops_answering_shows_down_while_its_port_stays_open(site: Site) -> None:
    reader = site.readers["t1-pn532"]
    assert reader.chip is not None
    reader.chip.silent = True  # the module lost power; the USB adapter is still there
    wait_for(lambda: site.box.health()["t1-pn532"].state == "down", timeout=10, what="the chip shown down")
    assert site.box.health()["t1-pn532"].errors.get("no_response") == 1
    reader.chip.silent = False
    wait_for(lambda: site.box.health()["t1-pn532"].state == "up", timeout=10, what="the chip back up")
    reader.present(CARD, fault_rate=0, wait=site.stop)
    wait_for(lambda: site.cards_from("t1-pn532"), timeout=10, what="a read after the chip came back")
    assert site.box.health()["t1-pn532"].reopens == 0  # the port never closed
