"""POS framing: the PP791 LRC vector, resync, control bytes, split frames, hypothesis streams."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.devices.pos import (
    ACK,
    MAX_PAYLOAD,
    NAK,
    PosControl,
    PosFrame,
    PosFrameParser,
    encode_frame,
    lrc,
)
from edge.errors import FrameError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "serial"
PING = bytes([0x02]) + b"PING" + bytes([0x03, 0x13])

# JSON-ish payloads: printable, no control bytes, as the protocol allows.
payloads = st.binary(max_size=200).map(lambda b: bytes(x for x in b if x >= 0x20))
noise = st.binary(max_size=30).map(lambda b: b.replace(b"\x02", b""))


def summary(items: list[PosFrame | FrameError | PosControl]) -> list[object]:
    out: list[object] = []
    for item in items:
        if isinstance(item, PosFrame):
            out.append(item.payload)
        elif isinstance(item, PosControl):
            out.append(item.byte)
        else:
            out.append(f"!{item.kind}")
    return out


def test_ping_lrc_vector() -> None:
    assert lrc(b"PING\x03") == 0x13
    assert encode_frame(b"PING") == PING


def test_ping_frame_decodes() -> None:
    assert PosFrameParser().feed(PING) == [PosFrame(b"PING")]


def test_bad_lrc_is_a_checksum_error() -> None:
    assert summary(PosFrameParser().feed(PING[:-1] + b"\x14" + PING)) == ["!checksum", b"PING"]


@pytest.mark.parametrize(("payload", "lrc_byte"), [(b"@A", 0x02), (b"AA", 0x03), (b"AW", NAK)])
def test_lrc_may_be_any_byte_even_stx_etx_or_nak(payload: bytes, lrc_byte: int) -> None:
    frame = encode_frame(payload)
    assert frame[-1] == lrc_byte
    assert PosFrameParser().feed(frame + PING) == [PosFrame(payload), PosFrame(b"PING")]


def test_bare_ack_and_nak_between_frames_are_control_items() -> None:
    items = PosFrameParser().feed(bytes([ACK]) + PING + bytes([NAK]))
    assert items == [PosControl(ACK), PosFrame(b"PING"), PosControl(NAK)]
    assert PosControl(NAK).is_nak and not PosControl(ACK).is_nak


def test_stx_inside_a_frame_restarts_it_and_counts_the_abandoned_part() -> None:
    assert summary(PosFrameParser().feed(b"\x02{\"type\":" + PING)) == ["!truncated", b"PING"]


def test_control_byte_inside_payload_is_an_error_then_resync() -> None:
    assert summary(PosFrameParser().feed(b"\x02PI\nNG\x03\x13" + PING)) == ["!format", b"PING"]


def test_a_run_of_garbage_is_one_error() -> None:
    assert summary(PosFrameParser().feed(b"hello world" + PING + b"\xff\xfe")) == ["!garbage", b"PING", "!garbage"]


def test_oversized_payload_is_a_length_error_then_resync() -> None:
    stream = b"\x02" + b"x" * (MAX_PAYLOAD + 10) + b"\x03\x00" + PING
    parser = PosFrameParser()
    assert summary(parser.feed(stream)) == ["!length", b"PING"]


def test_a_payload_of_exactly_the_limit_is_accepted() -> None:
    payload = b"x" * MAX_PAYLOAD
    assert PosFrameParser().feed(encode_frame(payload)) == [PosFrame(payload)]


@pytest.mark.parametrize("payload", [b"x" * (MAX_PAYLOAD + 1), b"a\nb", b"\x02"])
def test_encode_frame_refuses_what_the_protocol_forbids(payload: bytes) -> None:
    with pytest.raises(ValueError):
        encode_frame(payload)


def test_a_frame_split_at_every_byte_boundary_gives_the_same_result() -> None:
    stream = (FIXTURES / "pos_session.bin").read_bytes()
    whole = PosFrameParser().feed(stream)
    for cut in range(len(stream) + 1):
        parser = PosFrameParser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == whole
    parser = PosFrameParser()
    assert [item for byte in stream for item in parser.feed(bytes([byte]))] == whole


def test_recorded_session() -> None:
    request = (FIXTURES / "pos_request.json").read_bytes()
    items = PosFrameParser().feed((FIXTURES / "pos_session.bin").read_bytes())
    assert summary(items) == ["!checksum", request, ACK, b"PING"]


@given(st.lists(st.binary(max_size=600), max_size=30))
def test_arbitrary_bytes_never_raise_and_memory_stays_bounded(chunks: list[bytes]) -> None:
    parser = PosFrameParser()
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, PosFrame | PosControl | FrameError)
        assert parser.pending <= MAX_PAYLOAD


@given(st.lists(st.tuples(noise, payloads), max_size=15), noise, st.integers(min_value=1, max_value=50))
def test_frames_interleaved_with_noise_are_all_recovered_in_order(
    pairs: list[tuple[bytes, bytes]], tail: bytes, chunk: int
) -> None:
    stream = b"".join(junk + encode_frame(payload) for junk, payload in pairs) + tail
    parser = PosFrameParser()
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert [item.payload for item in items if isinstance(item, PosFrame)] == [payload for _, payload in pairs]


@given(payloads, st.integers(min_value=1, max_value=255))
def test_a_corrupted_lrc_is_never_a_frame(payload: bytes, flip: int) -> None:
    frame = bytearray(encode_frame(payload))
    frame[-1] ^= flip
    assert summary(PosFrameParser().feed(bytes(frame))) == ["!checksum"]
