"""The running agent on real pseudo-terminals: what the till and the card reader see on their lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.devices.pos import NAK, PosControl, PosFrame, PosFrameParser, SaleAnswer, encode_frame, parse_answer
from edge.devices.rdm6300 import encode_frame as card_frame
from edge.simulator.pty import create_pty_link
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

    def reply(self) -> tuple[bytes, list[object]]:
        """The raw bytes the box sends next, up to its first frame or control byte, and what they parse to."""
        raw = bytearray()
        parser = PosFrameParser()
        items: list[object] = []

        def complete() -> bool:
            chunk = self.pos.read_available(0.05)
            raw.extend(chunk)
            items.extend(parser.feed(chunk))
            return any(isinstance(item, PosFrame | PosControl) for item in items)

        wait_for(complete, timeout=10, what="a reply from the box")
        return bytes(raw), items

    def only_answer(self) -> SaleAnswer:
        """The box's next reply, which must be one answer frame with nothing (no NAK) before it."""
        raw, items = self.reply()
        assert len(items) == 1 and isinstance(items[0], PosFrame), f"the box sent {raw!r}"
        return parse_answer(items[0].payload)


def sale(sale_id: str, *, till: str = "t1", qty: int = 2) -> bytes:
    return json.dumps({
        "type": "sale", "sale_id": sale_id, "till": till, "cashier": "c07", "currency": "EUR",
        "items": [{"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
                   "showtime": "2026-11-23T19:30:00Z", "qty": qty, "price": 1250}],
    }).encode()


def line_errors(agent: Agent) -> dict[str, int]:
    """The POS line's fault counts by kind, as the heartbeat reports them to a technician."""
    return dict(agent.status(True).peripheral_health["t1-pos"].errors)


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
        tills=[{"till_id": "t1", "pos_port": str(lines.pos.link)}],
            readers=[{"till": "t1", "kind": "rdm6300", "port": str(lines.card.link)}],
    )
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    box.start()
    wait_for(lambda: box.status(True).peripherals == {"t1-pos": "up", "t1-rdm6300": "up"}, timeout=10,
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
    assert agent.status(True).peripherals["t1-rdm6300"] == "up"


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


# Each is followed, in the same write, by a good frame: the till must get that frame's answer and nothing
# before it. An LRC of 0x15 on a dropped frame must not pass for the till's NAK either (which would bring
# back the answer to the sale before).
NOISE = {
    "stray bytes": (b"\x00\xffhello\x7f", {"garbage": 1}),
    "EOT": (b"\x04", {}),
    "oversized frame": (b"\x02" + b"x" * 5000 + b"\x03\x15", {"length": 1}),
    "control byte in payload": (b'\x02{"type":"sale",\n"till":"t1"}\x03\x15', {"format": 1}),
    "frame cut by a new STX": (encode_frame(sale("S-cut"))[:60], {"truncated": 1}),
}


@pytest.mark.parametrize(("noise", "counted"), NOISE.values(), ids=list(NOISE))
def test_noise_gets_no_reply_and_the_next_frame_gets_its_answer(
    agent: Agent, lines: Lines, noise: bytes, counted: dict[str, int]
) -> None:
    lines.pos.write(encode_frame(sale("S-before")))
    assert lines.only_answer().sale_id == "S-before"
    lines.pos.write(noise + encode_frame(sale("S-after")))
    answer = lines.only_answer()
    assert (answer.sale_id, answer.status) == ("S-after", "ok")
    assert agent.counters["naks"] == 0 and agent.counters["answers_resent"] == 0
    assert agent.journal.stats().last_seq == 2
    assert line_errors(agent) == counted


def test_a_bad_lrc_gets_a_nak_and_nothing_else(agent: Agent, lines: Lines) -> None:
    good = encode_frame(sale("S-bad"))
    lines.pos.write(good[:-1] + bytes([good[-1] ^ 0xFF]))
    raw, _ = lines.reply()
    assert raw == bytes([NAK])
    lines.pos.write(good)
    assert lines.only_answer().sale_id == "S-bad"
    assert agent.counters["naks"] == 1 and agent.journal.stats().last_seq == 1


def test_a_partial_frame_then_silence_then_the_full_frame_gets_exactly_one_answer(agent: Agent, lines: Lines) -> None:
    frame = encode_frame(sale("S-7"))
    lines.pos.write(frame[:-1])  # the LRC is lost on the line; without the timeout the next STX would take its place
    wait_for(lambda: line_errors(agent).get("timeout") == 1, timeout=5, what="the partial frame dropped")
    lines.pos.write(frame)
    assert lines.only_answer().sale_id == "S-7"
    assert lines.pos.read_available(0.3) == b""  # no NAK, no second answer
    assert agent.journal.stats().last_seq == 1 and agent.counters["naks"] == 0


def test_an_empty_frame_is_rejected_without_a_sale_id(agent: Agent, lines: Lines) -> None:
    lines.pos.write(b"\x02\x03\x03")
    answer = lines.only_answer()
    assert (answer.status, answer.sale_id) == ("rejected", None)
    assert answer.message is not None and "empty" in answer.message
    assert agent.journal.stats().last_seq == 0


def test_a_reused_sale_id_with_new_content_is_a_conflict_recorded_once(agent: Agent, lines: Lines) -> None:
    lines.pos.write(encode_frame(sale("S-5")))
    assert lines.only_answer().status == "ok"
    lines.pos.write(encode_frame(sale("S-5", qty=3)))
    answer = lines.only_answer()
    assert (answer.sale_id, answer.status, answer.loyalty, answer.card) == ("S-5", "conflict", None, None)
    assert answer.message is not None and "S-5" in answer.message
    events = agent.journal.read_events(from_seq=1, limit=10)
    assert [event.type for event in events] == ["sale.recorded", "sale.conflict"]
    assert events[1].payload["original_seq"] == events[0].seq
    assert events[1].payload["items"][0]["quantity"] == 3 and events[1].payload["total"] == 3750
    assert agent.counters["sales_conflicting"] == 1
    lines.pos.write(encode_frame(sale("S-5")))  # the first sale, repeated: its answer again, nothing new
    assert lines.only_answer().status == "ok"
    assert agent.journal.stats().last_seq == 2 and agent.counters["sales_repeated"] == 1


def test_a_request_for_another_till_is_refused_and_leaves_the_card_waiting(agent: Agent, lines: Lines) -> None:
    lines.card.write(card_frame("67003B51C6"))
    wait_for(lambda: agent.counters["cards"] == 1, timeout=5, what="the card read")
    lines.pos.write(encode_frame(sale("S-6", till="t2")))
    answer = lines.only_answer()
    assert (answer.sale_id, answer.status) == ("S-6", "rejected")
    assert answer.message is not None and "t2" in answer.message and "t1" in answer.message
    assert agent.journal.stats().last_seq == 0 and agent.counters["sales_wrong_till"] == 1
    lines.pos.write(encode_frame(sale("S-6")))
    answer = lines.only_answer()
    assert answer.status == "ok" and answer.loyalty is not None and answer.loyalty.status == "earned"
    assert answer.card == "******7558"
