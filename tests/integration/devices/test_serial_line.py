"""SerialLine on real pseudo-terminals and pyserial's loop://: delivery, writes, outages, callbacks, stop,
the inter-byte timeout."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.devices.pos import NAK, PosControl, PosFrame, PosFrameParser
from edge.devices.pos import encode_frame as encode_pos_frame
from edge.devices.rdm6300 import CardRead, Rdm6300Parser, encode_frame
from edge.devices.serial_line import SerialLine
from edge.errors import FrameError
from edge.simulator.pty import PtyEnd, create_pty_link
from tests.support.waiting import wait_for

CARDS = [f"{i:02X}00C0{i * 7919 % 65536:04X}" for i in range(1, 41)]


class Recorder:
    """Collects what a line delivers, thread-safely."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.states: list[str] = []
        self._lock = threading.Lock()

    def on_item(self, line: SerialLine, item: object) -> None:
        with self._lock:
            self.items.append(item)

    def on_state(self, line: SerialLine, state: str) -> None:
        with self._lock:
            self.states.append(state)

    def cards(self) -> list[str]:
        with self._lock:
            return [item.card_id for item in self.items if isinstance(item, CardRead)]


@pytest.fixture
def make_line() -> Iterator[Callable[..., SerialLine]]:
    """Builds started lines with quick backoff and stops them all at the end of the test."""
    lines: list[SerialLine] = []

    def make(url: str, recorder: Recorder, **kwargs: object) -> SerialLine:
        options: dict[str, object] = {
            "parser_factory": Rdm6300Parser,
            "on_item": recorder.on_item,
            "on_state": recorder.on_state,
            "backoff_min": 0.02,
            "backoff_max": 0.1,
        }
        options.update(kwargs)
        line = SerialLine(name=f"test{len(lines)}", url=url, **options)  # type: ignore[arg-type]
        lines.append(line)
        line.start()
        return line

    yield make
    for line in lines:
        line.stop()


@pytest.fixture
def ptys() -> Iterator[list[PtyEnd]]:
    ends: list[PtyEnd] = []
    yield ends
    for end in ends:
        end.close()


def test_frames_written_on_the_master_come_out_in_order(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]
) -> None:
    end = create_pty_link(tmp_path / "card")
    ptys.append(end)
    recorder = Recorder()
    line = make_line(str(end.link), recorder)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    stream = b"".join(encode_frame(card) for card in CARDS)
    for start in range(0, len(stream), 97):  # chunks that cut frames anywhere
        end.write(stream[start : start + 97])
    wait_for(lambda: len(recorder.cards()) == len(CARDS), timeout=5, what="all cards")
    assert recorder.cards() == CARDS
    counters = line.counters
    assert counters["items"] == len(CARDS) and counters["bytes"] == len(stream)
    assert counters["opens"] == 1 and counters["errors"] == {}


def test_write_reaches_the_master(tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]) -> None:
    end = create_pty_link(tmp_path / "pos")
    ptys.append(end)
    line = make_line(str(end.link), Recorder(), parser_factory=PosFrameParser)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    received = bytearray()

    def got_it() -> bool:
        received.extend(end.read_available(0.05))
        return bytes(received) == encode_pos_frame(b"PING") + bytes([NAK])

    assert line.write(encode_pos_frame(b"PING"))
    assert line.write(bytes([NAK]))
    wait_for(got_it, timeout=5, what="bytes on the master")
    assert line.counters["bytes_written"] == 8


def test_loop_url_loops_writes_back_to_reads(make_line: Callable[..., SerialLine]) -> None:
    recorder = Recorder()
    line = make_line("loop://", recorder, parser_factory=PosFrameParser)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    assert line.write(b"\x02PING\x03\x14" + encode_pos_frame(b"PING") + bytes([NAK]) + b"junk")
    wait_for(lambda: len(recorder.items) == 4, timeout=5, what="four items")
    assert recorder.items == [FrameError("checksum", "LRC 0x14, computed 0x13"), PosFrame(b"PING"),
                              PosControl(NAK), FrameError("garbage", "bytes outside a frame")]
    assert line.counters["errors"] == {"checksum": 1, "garbage": 1}
    assert line.counters["items"] == 2


def test_missing_port_is_down_then_comes_up_when_the_pty_appears(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.devices.serial_line")
    link = tmp_path / "later"
    recorder = Recorder()
    line = make_line(str(link), recorder)
    wait_for(lambda: line.state == "down", timeout=5, what="line down")
    assert not line.write(b"x")
    wait_for(lambda: line.counters["failures"] >= 3, timeout=5, what="several retries")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "a missing port is logged once, not at every retry"

    end = create_pty_link(link)
    ptys.append(end)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    end.write(encode_frame(CARDS[0]))
    wait_for(lambda: recorder.cards() == [CARDS[0]], timeout=5, what="a card")
    assert recorder.states == ["down", "up"]
    assert any(r.levelno == logging.INFO and "back" in r.getMessage() for r in caplog.records)


def test_a_pty_closed_under_the_line_goes_down_and_a_new_one_at_the_same_link_comes_up(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]
) -> None:
    link = tmp_path / "card"
    first = create_pty_link(link)
    ptys.append(first)
    recorder = Recorder()
    line = make_line(str(link), recorder)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    first.write(encode_frame(CARDS[0]) + encode_frame(CARDS[1])[:5])  # a frame cut by the outage
    wait_for(lambda: recorder.cards() == CARDS[:1], timeout=5, what="first card")

    first.close()
    wait_for(lambda: line.state == "down", timeout=5, what="line down")
    assert not os.path.lexists(link)

    second = create_pty_link(link)
    ptys.append(second)
    wait_for(lambda: line.state == "up", timeout=5, what="line up again")
    second.write(encode_frame(CARDS[2])[3:] + encode_frame(CARDS[3]))
    wait_for(lambda: recorder.cards() == [CARDS[0], CARDS[3]], timeout=5, what="cards after the outage")
    # A fresh parser after the reopen: the cut frame's head never merges with the new line's bytes.
    assert line.counters["opens"] == 2
    assert recorder.states == ["up", "down", "up"]


def test_a_callback_that_raises_does_not_stop_the_line(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd], caplog: pytest.LogCaptureFixture
) -> None:
    end = create_pty_link(tmp_path / "card")
    ptys.append(end)
    seen: list[str] = []

    def flaky(line: SerialLine, item: object) -> None:
        assert isinstance(item, CardRead)
        seen.append(item.card_id)
        if len(seen) % 2:
            raise RuntimeError("bug in the agent")

    line = make_line(str(end.link), Recorder(), on_item=flaky)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    for card in CARDS[:6]:
        end.write(encode_frame(card))
    wait_for(lambda: len(seen) == 6, timeout=5, what="six cards")
    assert seen == CARDS[:6]
    assert line.counters["callback_errors"] == 3
    assert sum("on_item callback raised" in r.getMessage() and r.exc_info is not None for r in caplog.records) == 3


def test_stop_joins_the_thread_and_closes_the_port(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]
) -> None:
    end = create_pty_link(tmp_path / "card")
    ptys.append(end)
    recorder = Recorder()
    line = make_line(str(end.link), recorder)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    line.stop()
    assert line.state == "stopped"
    assert not [t for t in threading.enumerate() if t.name == f"serial-{line.name}"]
    assert not line.write(b"x")
    assert recorder.states[-1] == "stopped"


def test_stop_while_down_is_prompt(tmp_path: Path, make_line: Callable[..., SerialLine]) -> None:
    # The reader sits in a backoff wait of at least 5 s. The join allows 10 s, more than the whole
    # wait, so only the time taken can tell an interruptible wait from one that is sat out.
    line = make_line(str(tmp_path / "never"), Recorder(), backoff_min=5.0, backoff_max=10.0)
    wait_for(lambda: line.state == "down", timeout=5, what="line down")
    started = time.monotonic()
    line.stop(timeout=10)
    assert time.monotonic() - started < 1.0, "stop() sat out the backoff"
    assert not [t for t in threading.enumerate() if t.name == f"serial-{line.name}"]


def test_stop_while_up_is_prompt(tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]) -> None:
    end = create_pty_link(tmp_path / "card")
    ptys.append(end)
    line = make_line(str(end.link), Recorder())
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    started = time.monotonic()
    line.stop(timeout=10)
    assert time.monotonic() - started < 1.0, "stop() waited for more than a read timeout"


def test_a_partial_frame_followed_by_silence_is_dropped_and_the_next_frame_is_read(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]
) -> None:
    end = create_pty_link(tmp_path / "pos")
    ptys.append(end)
    recorder = Recorder()
    line = make_line(str(end.link), recorder, parser_factory=PosFrameParser, inter_byte_timeout=0.3)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    end.write(encode_pos_frame(b"PING")[:-1])  # the LRC is lost on the line
    wait_for(lambda: line.counters["errors"].get("timeout") == 1, timeout=5, what="the partial frame dropped")
    end.write(encode_pos_frame(b"PING"))
    wait_for(lambda: len(recorder.items) == 2, timeout=5, what="the next frame")
    (dropped, frame) = recorder.items
    assert isinstance(dropped, FrameError) and dropped.kind == "timeout"
    assert frame == PosFrame(b"PING")
    assert line.counters["errors"] == {"timeout": 1}


def test_without_an_inter_byte_timeout_a_lost_lrc_spoils_the_next_frame(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]
) -> None:
    # The behaviour the timeout exists to prevent (and that None keeps, for lines that need no timeout).
    end = create_pty_link(tmp_path / "pos")
    ptys.append(end)
    recorder = Recorder()
    line = make_line(str(end.link), recorder, parser_factory=PosFrameParser)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    end.write(encode_pos_frame(b"PING")[:-1])
    wait_for(lambda: line.counters["bytes"] == 6, timeout=5, what="the partial frame read")
    end.write(encode_pos_frame(b"PING"))
    wait_for(lambda: line.counters["bytes"] == 13, timeout=5, what="the next frame read")
    assert line.counters["errors"] == {"checksum": 1, "garbage": 1}
    assert not [item for item in recorder.items if isinstance(item, PosFrame)]


def test_a_frame_sent_in_pieces_closer_than_the_timeout_is_one_frame(
    tmp_path: Path, make_line: Callable[..., SerialLine], ptys: list[PtyEnd]
) -> None:
    end = create_pty_link(tmp_path / "pos")
    ptys.append(end)
    recorder = Recorder()
    line = make_line(str(end.link), recorder, parser_factory=PosFrameParser, inter_byte_timeout=1.0)
    wait_for(lambda: line.state == "up", timeout=5, what="line up")
    frame = encode_pos_frame(b"PING" * 10)
    for piece in (frame[:10], frame[10:30]):
        end.write(piece)
        # The gap under test (not a synchronisation): longer than a read timeout, shorter than the limit.
        time.sleep(0.25)
    end.write(frame[30:])
    wait_for(lambda: recorder.items, timeout=5, what="the frame")
    assert recorder.items == [PosFrame(b"PING" * 10)]
    assert line.counters["errors"] == {}


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_non_positive_inter_byte_timeout_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="inter_byte_timeout"):
        SerialLine(name="x", url="loop://", parser_factory=PosFrameParser, on_item=lambda line, item: None,
                   inter_byte_timeout=bad)
