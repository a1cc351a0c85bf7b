"""POS framing: the PP791 LRC vector, resync, control bytes, fault kinds, flush, split frames, hypothesis streams."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.devices.pos import (
    ACK,
    EOT,
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


def test_eot_between_frames_is_a_control_item_not_garbage() -> None:
    # A till sends EOT when it gives up on a sale: the box ignores it, and it is no line fault.
    items = PosFrameParser().feed(bytes([EOT]) + PING + bytes([EOT, EOT]) + b"\xff" + bytes([EOT]))
    assert summary(items) == [EOT, b"PING", EOT, EOT, "!garbage", EOT]
    assert not PosControl(EOT).is_nak


def test_an_empty_payload_is_a_complete_frame() -> None:
    assert encode_frame(b"") == b"\x02\x03\x03"
    assert PosFrameParser().feed(b"\x02\x03\x03" + PING) == [PosFrame(b""), PosFrame(b"PING")]


@pytest.mark.parametrize(
    ("stream", "kind"),
    [
        (PING[:-1] + b"\x14", "checksum"),  # complete, damaged: the only one the agent NAKs
        (b"\x02{\"type\":", "truncated"),  # cut by the next frame's STX
        (b"\x02PI\nNG\x03\x13", "format"),
        (b"\x02" + b"x" * (MAX_PAYLOAD + 1) + b"\x03\x00", "length"),
        (b"\xff\xfe\x00", "garbage"),
    ],
)
def test_each_fault_has_its_own_kind_and_the_next_frame_is_read(stream: bytes, kind: str) -> None:
    assert summary(PosFrameParser().feed(stream + PING)) == [f"!{kind}", b"PING"]


@pytest.mark.parametrize("lrc_byte", [ACK, NAK, EOT, 0x02])
@pytest.mark.parametrize(
    ("broken", "kind"),
    [(b"\x02PI\nNG\x03", "format"), (b"\x02" + b"x" * (MAX_PAYLOAD + 1) + b"\x03", "length")],
)
def test_the_lrc_of_a_dropped_frame_is_dropped_with_it(broken: bytes, kind: str, lrc_byte: int) -> None:
    # Were it read on its own, an LRC of 0x15 would look like the till asking for our answer again.
    assert summary(PosFrameParser().feed(broken + bytes([lrc_byte]) + PING)) == [f"!{kind}", b"PING"]


def test_flush_with_nothing_pending_reports_nothing() -> None:
    parser = PosFrameParser()
    assert parser.flush() is None
    parser.feed(PING + bytes([ACK]))
    assert parser.pending == 0 and parser.flush() is None


@pytest.mark.parametrize("partial", [b"\x02", b"\x02{\"type\":", b"\x02PING\x03", b"\x02\x03"])
def test_flush_drops_a_partial_frame_and_the_next_frame_starts_clean(partial: bytes) -> None:
    parser = PosFrameParser()
    assert parser.feed(partial) == []
    assert parser.pending == len(partial)
    dropped = parser.flush()
    assert dropped is not None and dropped.kind == "timeout"
    assert parser.pending == 0 and parser.flush() is None
    assert parser.feed(PING) == [PosFrame(b"PING")]


def test_without_a_flush_a_frame_that_lost_its_lrc_swallows_the_next_one() -> None:
    # Why the line needs an inter-byte timeout: the next STX is read as the missing LRC.
    assert summary(PosFrameParser().feed(b"\x02PING\x03" + PING)) == ["!checksum", "!garbage"]


@pytest.mark.parametrize("tail", [b"\x02PI\nNG", b"\x02PI\nNG\x03"])
def test_flush_forgets_the_tail_of_a_frame_already_dropped(tail: bytes) -> None:
    parser = PosFrameParser()
    assert summary(parser.feed(tail)) == ["!format"]
    assert parser.flush() is None  # reported once, when it was dropped
    assert parser.feed(PING) == [PosFrame(b"PING")]


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


@pytest.mark.parametrize("size", [MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1])
@pytest.mark.parametrize("after", [b"\x03", b"\x02", b"y"])
def test_the_size_limit_holds_wherever_the_line_splits_the_payload(size: int, after: bytes) -> None:
    # Payload bytes are taken in slices: the limit must fall on the same byte whatever the chunks.
    stream = b"\x02" + b"x" * size + after + b"\x00" + PING
    whole = PosFrameParser()
    expected = summary(whole.feed(stream))
    for cut in [*range(1, 6), *range(size - 3, size + 4)]:
        parser = PosFrameParser()
        got = summary(parser.feed(stream[:cut]) + parser.feed(stream[cut:]))
        assert got == expected, cut
        assert parser.pending == whole.pending
    assert expected[-1] == b"PING" and (("!length" in expected) == (size > MAX_PAYLOAD or after == b"y" and
                                                                      size == MAX_PAYLOAD))


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


@given(st.binary(max_size=300), st.lists(payloads, max_size=10), st.integers(min_value=1, max_value=50))
def test_after_a_flush_every_frame_is_recovered_whatever_came_before(
    before: bytes, frames: list[bytes], chunk: int
) -> None:
    parser = PosFrameParser()
    parser.feed(before)
    parser.flush()
    stream = b"".join(encode_frame(payload) for payload in frames)
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert items == [PosFrame(payload) for payload in frames]


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
