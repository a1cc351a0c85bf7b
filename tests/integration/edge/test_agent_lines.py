"""The running agent on real pseudo-terminals: what the till and the card reader see on their lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.devices.pos import NAK, PosFrame, PosFrameParser, SaleAnswer, encode_frame, parse_answer
from edge.devices.pty import create_pty_link
from edge.devices.rdm6300 import encode_frame as card_frame
from tests.edge_support import PEPPER, edge_settings, new_journal
from tests.support.brokers import free_port
from tests.support.waiting import wait_for


class Lines:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pos = create_pty_link(root / "pos-t1")
        self.card = create_pty_link(root / "card-t1")
        self.parser = PosFrameParser()
        self.seen: list[object] = []

    def read(self) -> list[object]:
        self.seen.extend(self.parser.feed(self.pos.read_available(0.05)))
        return self.seen

    def answer(self) -> SaleAnswer:
        frame = wait_for(lambda: next((i for i in self.read() if isinstance(i, PosFrame)), None), timeout=10,
                         what="an answer frame")
        self.seen.remove(frame)
        return parse_answer(frame.payload)


def sale(sale_id: str) -> bytes:
    return json.dumps({
        "type": "sale", "sale_id": sale_id, "till": "t1", "cashier": "c07", "currency": "EUR",
        "items": [{"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
                   "showtime": "2026-11-23T19:30:00Z", "qty": 2, "price": 1250}],
    }).encode()


@pytest.fixture
def lines(tmp_path: Path) -> Iterator[Lines]:
    lines = Lines(tmp_path / "dev")
    yield lines
    lines.pos.close()
    lines.card.close()


@pytest.fixture
def agent(tmp_path: Path, lines: Lines) -> Iterator[Agent]:
    # No broker listens on this port: the box works offline, as a site whose internet is down.
    settings = edge_settings(
        tmp_path, mqtt={"port": free_port()},
        tills=[{"till_id": "t1", "pos_port": str(lines.pos.link), "card_port": str(lines.card.link)}],
    )
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    box.start()
    wait_for(lambda: box.status(True).peripherals == {"t1-pos": "up", "t1-card": "up"}, timeout=10,
             what="both lines open")
    yield box
    box.stop()


def test_offline_a_card_and_a_sale_are_answered_and_kept_for_the_hub(agent: Agent, lines: Lines) -> None:
    lines.card.write(b"\x00\xffnoise" + card_frame("67003B51C6") * 3)
    wait_for(lambda: agent.counters["cards"] == 1, timeout=5, what="the card read")
    lines.pos.write(encode_frame(sale("S-1")))
    answer = lines.answer()
    assert answer.status == "ok" and answer.loyalty is not None and answer.loyalty.points == 250
    assert agent.journal.stats().backlog == 1  # kept until the hub acknowledges it
    assert agent.status(True).peripherals["t1-card"] == "up"


def test_a_damaged_request_is_nakked_and_a_nak_for_our_answer_gets_it_again(agent: Agent, lines: Lines) -> None:
    good = encode_frame(sale("S-2"))
    lines.pos.write(good[:-1] + bytes([good[-1] ^ 0x01]))  # bad LRC
    wait_for(lambda: NAK in [getattr(i, "byte", None) for i in lines.read()], timeout=5, what="a NAK")
    lines.pos.write(good)
    first = lines.answer()
    lines.pos.write(bytes([NAK]))
    again = lines.answer()
    assert again == first and agent.counters["answers_resent"] == 1
    assert agent.journal.stats().last_seq == 1


def test_a_pos_line_that_is_unplugged_and_comes_back_is_served_again(agent: Agent, lines: Lines) -> None:
    lines.pos.write(encode_frame(sale("S-3")))
    assert lines.answer().status == "ok"
    lines.pos.close()
    wait_for(lambda: agent.status(True).peripherals["t1-pos"] == "down", timeout=10, what="the line down")
    lines.pos = create_pty_link(lines.pos.link)
    lines.parser = PosFrameParser()
    wait_for(lambda: agent.status(True).peripherals["t1-pos"] == "up", timeout=15, what="the line back")
    lines.pos.write(encode_frame(sale("S-4")))
    assert lines.answer().sale_id == "S-4"
