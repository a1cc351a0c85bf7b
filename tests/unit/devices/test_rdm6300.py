"""RDM6300 framing and debouncing: devices.md vectors, resync, flush, split frames, hypothesis streams."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.devices.rdm6300 import CardRead, Debouncer, Rdm6300Parser, encode_frame
from edge.errors import FrameError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "serial"
VECTOR = bytes.fromhex("02 36 37 30 30 33 42 35 31 43 36 43 42 03")
BAD_CHECKSUM = b"\x02" + b"68003B51C6CB" + b"\x03"

card_ids = st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper())
# Noise between frames: anything but STX (which would legitimately start a frame).
noise = st.binary(max_size=30).map(lambda b: b.replace(b"\x02", b""))


def kinds(items: list[CardRead | FrameError]) -> list[str]:
    return [item.card_id if isinstance(item, CardRead) else f"!{item.kind}" for item in items]


def test_devices_md_vector_decodes() -> None:
    assert Rdm6300Parser().feed(VECTOR) == [CardRead("67003B51C6")]


def test_devices_md_bad_checksum_is_an_error_not_a_card() -> None:
    (item,) = Rdm6300Parser().feed(BAD_CHECKSUM)
    assert isinstance(item, FrameError) and item.kind == "checksum"


def test_encode_frame_matches_the_vector_and_normalises_case() -> None:
    assert encode_frame("67003B51C6") == VECTOR
    assert encode_frame("67003b51c6") == VECTOR


@pytest.mark.parametrize("bad", ["", "67003B51C", "67003B51C6C", "67003B51CG"])
def test_encode_frame_refuses_bad_ids(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_frame(bad)


def test_lower_case_hex_is_accepted_and_normalised() -> None:
    assert Rdm6300Parser().feed(b"\x02" + b"67003b51c6cb" + b"\x03") == [CardRead("67003B51C6")]


def test_stream_starting_mid_frame_resyncs_with_one_error() -> None:
    items = Rdm6300Parser().feed(VECTOR[5:] + VECTOR)
    assert kinds(items) == ["!garbage", "67003B51C6"]


def test_a_run_of_garbage_is_one_error() -> None:
    items = Rdm6300Parser().feed(b"\xff" * 100 + VECTOR + b"hello" + VECTOR)
    assert kinds(items) == ["!garbage", "67003B51C6", "!garbage", "67003B51C6"]


@pytest.mark.parametrize(
    ("stream", "kind"),
    [
        (b"\x0267003B" + VECTOR, "length"),  # cut short by the next STX
        (b"\x0267003B\x03" + VECTOR, "length"),  # ETX too early
        (b"\x0267003B51C6CBX" + VECTOR, "length"),  # no ETX after 12 chars
        (b"\x0267003Z51C6CB\x03" + VECTOR, "format"),  # not hex
    ],
)
def test_broken_frames_are_reported_once_then_the_next_frame_is_read(stream: bytes, kind: str) -> None:
    assert kinds(Rdm6300Parser().feed(stream)) == [f"!{kind}", "67003B51C6"]


def test_flush_with_nothing_pending_reports_nothing() -> None:
    parser = Rdm6300Parser()
    assert parser.flush() is None
    parser.feed(VECTOR)
    assert parser.pending == 0 and parser.flush() is None


@pytest.mark.parametrize("cut", [1, 5, 13])  # a lone STX, mid id, all but the ETX
def test_flush_drops_a_partial_frame_and_the_next_frame_starts_clean(cut: int) -> None:
    parser = Rdm6300Parser()
    assert parser.feed(VECTOR[:cut]) == []
    assert parser.pending == cut
    dropped = parser.flush()
    assert dropped is not None and dropped.kind == "timeout"
    assert parser.pending == 0 and parser.flush() is None
    assert parser.feed(VECTOR[3:] + VECTOR) == [FrameError("garbage", "bytes outside a frame"), CardRead("67003B51C6")]


def test_after_silence_garbage_is_a_new_run() -> None:
    parser = Rdm6300Parser()
    assert kinds(parser.feed(b"\xff")) == ["!garbage"]
    assert parser.flush() is None
    assert kinds(parser.feed(b"\xfe" + VECTOR)) == ["!garbage", "67003B51C6"]


def test_a_frame_split_at_every_byte_boundary_gives_the_same_result() -> None:
    stream = VECTOR[3:] + VECTOR + b"\x00\x01" + BAD_CHECKSUM + encode_frame("1A00C0FFEE")
    whole = Rdm6300Parser().feed(stream)
    for cut in range(len(stream) + 1):
        parser = Rdm6300Parser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == whole
    parser = Rdm6300Parser()
    assert [item for byte in stream for item in parser.feed(bytes([byte]))] == whole


def test_recorded_session() -> None:
    items = Rdm6300Parser().feed((FIXTURES / "rdm6300_session.bin").read_bytes())
    assert kinds(items) == [
        "!garbage", "67003B51C6", "67003B51C6", "67003B51C6", "!garbage", "!checksum",
        "67003B51C6", "!length", "1A00C0FFEE", "1A00C0FFEE",
    ]


@given(st.binary(max_size=40), st.lists(card_ids, max_size=10), st.integers(min_value=1, max_value=17))
def test_after_a_flush_every_frame_is_recovered_whatever_came_before(
    before: bytes, cards: list[str], chunk: int
) -> None:
    parser = Rdm6300Parser()
    parser.feed(before)
    parser.flush()
    stream = b"".join(encode_frame(card) for card in cards)
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert items == [CardRead(card) for card in cards]


@given(st.lists(st.tuples(noise, card_ids), max_size=20), noise, st.integers(min_value=1, max_value=17))
def test_frames_interleaved_with_noise_are_all_recovered_in_order(
    pairs: list[tuple[bytes, str]], tail: bytes, chunk: int
) -> None:
    stream = b"".join(junk + encode_frame(card) for junk, card in pairs) + tail
    parser = Rdm6300Parser()
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert [item.card_id for item in items if isinstance(item, CardRead)] == [card for _, card in pairs]


@given(card_ids, st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=255))
def test_a_corrupted_character_is_never_a_card(card: str, position: int, flip: int) -> None:
    frame = bytearray(encode_frame(card))
    frame[position] ^= flip
    items = Rdm6300Parser().feed(bytes(frame))
    # Either an error or, if the flip only changed the case of a hex letter, the same card.
    assert all(isinstance(item, FrameError) or item == CardRead(card) for item in items)
    assert items


class TestDebouncer:
    def test_first_read_is_accepted_and_repeats_are_suppressed(self) -> None:
        debouncer = Debouncer(window_s=0.5)
        assert debouncer.accept("67003B51C6", 10.0)
        assert not debouncer.accept("67003B51C6", 10.1)
        assert not debouncer.accept("67003B51C6", 10.2)

    def test_each_repeat_extends_the_window(self) -> None:
        debouncer = Debouncer(window_s=0.5)
        assert debouncer.accept("67003B51C6", 0.0)
        for step in range(1, 20):  # resting on the reader for 4 s, a frame every 0.2 s
            assert not debouncer.accept("67003B51C6", step * 0.2)
        assert debouncer.accept("67003B51C6", 19 * 0.2 + 0.5)  # silent for the whole window: a new tap

    def test_a_different_card_is_accepted_at_once(self) -> None:
        debouncer = Debouncer(window_s=0.5)
        assert debouncer.accept("67003B51C6", 0.0)
        assert debouncer.accept("1A00C0FFEE", 0.01)
        assert debouncer.accept("67003B51C6", 0.02)

    def test_the_same_card_after_the_window_is_accepted(self) -> None:
        debouncer = Debouncer(window_s=0.22)
        assert debouncer.accept("67003B51C6", 5.0)
        assert not debouncer.accept("67003B51C6", 5.21)
        assert debouncer.accept("67003B51C6", 5.44)
