"""The shared line splitter: line ends, STX ... ETX wrapping, over-long lines, flush, any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.lines import LineSplitter
from edge.errors import FrameError

fast = settings(max_examples=150, deadline=None)
STX, ETX = b"\x02", b"\x03"


def star(data: bytes) -> bytes:
    """A byte-by-byte mask, as the readers' masks are: letters and digits starred."""
    return bytes(0x2A if chr(byte).isalnum() else byte for byte in data)


def splitter(max_line: int = 16, *, ends: bytes = b"\r\n", wrap: bytes = b"", length_detail: str = "") -> LineSplitter:
    return LineSplitter(max_line, ends=ends, wrap=wrap, mask=star, length_detail=length_detail)


def length_error(line: bytes, max_line: int = 16) -> FrameError:
    return FrameError("length", f"line longer than {max_line} bytes", data=star(line))


def feed_all(lines: LineSplitter, chunks: list[bytes]) -> list[bytes | FrameError]:
    return [item for chunk in chunks for item in lines.feed(chunk)]


class TestLineEnds:
    @pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
    def test_each_end_ends_a_line_and_is_removed(self, end: bytes) -> None:
        lines = splitter()
        assert lines.feed(b"ABC" + end + b"DE" + end) == [b"ABC", b"DE"]
        assert lines.pending == 0

    def test_empty_lines_are_dropped_so_crlf_is_one_end(self) -> None:
        assert splitter().feed(b"\r\n\r\nA\r\n\n\rB\n\r") == [b"A", b"B"]

    def test_crlf_split_across_feeds_is_one_end(self) -> None:
        lines = splitter()
        assert lines.feed(b"AB\r") == [b"AB"]
        assert lines.feed(b"\nCD\r") == [b"CD"]
        assert lines.feed(b"\n") == []
        assert lines.pending == 0

    def test_a_line_split_across_feeds_is_held_then_completed(self) -> None:
        lines = splitter()
        assert lines.feed(b"AB") == [] and lines.pending == 2
        assert lines.feed(b"C") == [] and lines.pending == 3
        assert lines.feed(b"D\rE") == [b"ABCD"] and lines.pending == 1

    def test_spaces_are_kept_for_the_parser_to_judge(self) -> None:
        assert splitter().feed(b" A \r \n") == [b" A ", b" "]

    def test_other_end_bytes(self) -> None:
        lines = splitter(ends=b"\x02\x03\x10\r\n")
        assert lines.feed(b"\x02%A?\x03\r;B?\x10C\nD") == [b"%A?", b";B?", b"C"]
        assert lines.pending == 1

    def test_bytes_that_regular_expressions_treat_specially_are_plain_ends(self) -> None:
        assert splitter(ends=b"]^-\\").feed(b"A]B^C-D\\E") == [b"A", b"B", b"C", b"D"]


class TestWrap:
    def test_the_closer_ends_a_line_that_began_with_the_opener_and_the_opener_stays(self) -> None:
        lines = splitter(wrap=STX + ETX)
        assert lines.feed(b"\x02AB\x03\x02CD\x03\r\n") == [b"\x02AB", b"\x02CD"]

    def test_the_closer_is_data_in_a_line_that_did_not_begin_with_the_opener(self) -> None:
        lines = splitter(wrap=STX + ETX)
        assert lines.feed(b"A\x03B\r") == [b"A\x03B"]
        assert lines.feed(b"A\x02B\x03C\r") == [b"A\x02B\x03C"]

    def test_line_ends_still_end_a_wrapped_line(self) -> None:
        assert splitter(wrap=STX + ETX).feed(b"\x02AB\rC\x03\r") == [b"\x02AB", b"C\x03"]

    def test_a_lone_opener_then_its_closer_is_a_line_for_the_parser_to_refuse(self) -> None:
        assert splitter(wrap=STX + ETX).feed(b"\x02\x03") == [b"\x02"]

    def test_wrapping_split_across_feeds(self) -> None:
        lines = splitter(wrap=STX + ETX)
        assert lines.feed(b"\x02") == [] and lines.pending == 1
        assert lines.feed(b"AB") == [] and lines.pending == 3
        assert lines.feed(b"\x03\x02C") == [b"\x02AB"]
        assert lines.feed(b"\x03") == [b"\x02C"]

    def test_an_over_long_wrapped_line_is_skipped_up_to_its_closer(self) -> None:
        lines = splitter(4, wrap=STX + ETX)
        assert lines.feed(b"\x02ABCD") == [length_error(b"\x02ABC", 4)]
        assert lines.feed(b"EF\x03GH\r") == [b"GH"]

    def test_an_over_long_plain_line_is_not_ended_by_the_closer(self) -> None:
        lines = splitter(4, wrap=STX + ETX)
        assert lines.feed(b"ABCDE") == [length_error(b"ABCD", 4)]
        assert lines.feed(b"F\x03GH\rIJ\r") == [b"IJ"]

    @pytest.mark.parametrize("wrap", [b"\x02", b"\x02\x03\x04", b"\x02\x02", b"\r\x03", b"\x02\n"])
    def test_wrap_is_two_distinct_bytes_that_are_not_line_ends(self, wrap: bytes) -> None:
        with pytest.raises(ValueError):
            splitter(wrap=wrap)


class TestOverLongLines:
    def test_a_line_of_exactly_max_line_bytes_is_a_line(self) -> None:
        assert splitter(4).feed(b"ABCD\r") == [b"ABCD"]

    def test_one_byte_more_is_one_length_error_then_the_next_line_reads(self) -> None:
        assert splitter(4).feed(b"ABCDE\rOK\r") == [length_error(b"ABCD", 4), b"OK"]

    def test_reported_once_in_the_feed_of_its_excess_byte_however_long_and_split(self) -> None:
        lines = splitter(4)
        assert lines.feed(b"ABCD") == [] and lines.pending == 4
        assert lines.feed(b"E") == [length_error(b"ABCD", 4)] and lines.pending == 0
        for _ in range(50):
            assert lines.feed(b"XYZ" * 100) == [] and lines.pending == 0
        assert lines.feed(b"\r\nOK\r") == [b"OK"]

    def test_the_error_data_is_masked_and_at_most_max_data_bytes(self) -> None:
        (error,) = splitter(1000).feed(b"a-b" * 400)
        assert isinstance(error, FrameError) and error.kind == "length"
        assert error.data == b"*-*" * 21 + b"*"  # the first 64 bytes, masked
        assert len(error.data) == FrameError.MAX_DATA

    def test_the_mask_only_ever_sees_what_an_error_keeps(self) -> None:
        seen: list[int] = []

        def mask(data: bytes) -> bytes:
            seen.append(len(data))
            return data

        lines = LineSplitter(500, mask=mask)
        lines.feed(b"A" * 400)
        lines.feed(b"A" * 400 + b"\r" + b"B" * 2000 + b"\r")
        lines.feed(b"C" * 300)
        lines.flush()
        assert seen == [FrameError.MAX_DATA] * 3

    def test_length_detail(self) -> None:
        (error,) = splitter(2, length_detail="too long for a card").feed(b"ABC\r")
        assert error == FrameError("length", "too long for a card", data=b"**")

    def test_max_line_is_at_least_one_and_there_is_an_end(self) -> None:
        with pytest.raises(ValueError):
            splitter(0)
        with pytest.raises(ValueError):
            splitter(ends=b"")


class TestFlush:
    def test_a_partial_line_is_a_timeout_with_masked_data(self) -> None:
        lines = splitter()
        lines.feed(b"OK\rA1-B")
        assert lines.flush() == FrameError("timeout", "partial line of 4 bytes dropped after silence", data=b"**-*")
        assert lines.pending == 0 and lines.flush() is None

    def test_nothing_held_is_no_error(self) -> None:
        lines = splitter()
        assert lines.flush() is None
        lines.feed(b"AB\r\n")
        assert lines.flush() is None

    def test_flush_ends_the_skip_of_an_over_long_line(self) -> None:
        lines = splitter(4)
        assert lines.feed(b"ABCDEFG") == [length_error(b"ABCD", 4)]
        assert lines.flush() is None  # reported already
        assert lines.feed(b"OK\r") == [b"OK"]

    def test_flush_forgets_a_wrapped_line(self) -> None:
        lines = splitter(wrap=STX + ETX)
        lines.feed(b"\x02AB")
        assert lines.flush() is not None
        assert lines.feed(b"C\x03D\r") == [b"C\x03D"]


# ------------------------------------------------------------------ hypothesis: any chunking, a per-byte model


def reference(max_line: int, ends: bytes, wrap: bytes, chunks: list[bytes | None]) -> list[object]:
    """The splitter's contract written out one byte at a time (None in `chunks` is a flush)."""
    out: list[object] = []
    line = bytearray()
    skipping = wrapped = False
    for chunk in chunks:
        if chunk is None:
            detail = f"partial line of {len(line)} bytes dropped after silence"
            out.append(FrameError("timeout", detail, data=bytes(line)) if line else None)
            line.clear()
            skipping = wrapped = False
            continue
        for byte in chunk:
            if byte in ends or (wrap and byte == wrap[1] and wrapped):
                if line and not skipping:
                    out.append(bytes(line))
                line.clear()
                skipping = wrapped = False
            elif skipping:
                continue
            elif len(line) == max_line:
                out.append(FrameError("length", f"line longer than {max_line} bytes", data=bytes(line)))
                line.clear()
                skipping = True
            else:
                wrapped = wrapped or (not line and bool(wrap) and byte == wrap[0])
                line.append(byte)
        out.append(("pending", len(line)))
    return out


def observed(lines: LineSplitter, chunks: list[bytes | None]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        if chunk is None:
            out.append(lines.flush())
            continue
        out += lines.feed(chunk)
        out.append(("pending", lines.pending))
    return out


streams = st.lists(st.sampled_from([b"\r", b"\n", b"\x02", b"\x03", b"\x10", b"A", b"b", b"7", b" ", b"AB7 x"]),
                   max_size=120).map(b"".join)
options = st.sampled_from([(b"\r\n", b""), (b"\r\n", STX + ETX), (b"\x02\x03\x10\r\n", b""), (b"\n", b"")])


def cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(cuts)
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@fast
@given(streams, st.lists(st.integers(0, 120), max_size=12), st.integers(1, 9), options)
def test_any_chunking_gives_the_lines_of_one_feed(
    stream: bytes, cuts: list[int], max_line: int, ends_wrap: tuple[bytes, bytes]
) -> None:
    ends, wrap = ends_wrap
    whole = splitter(max_line, ends=ends, wrap=wrap).feed(stream)
    lines = splitter(max_line, ends=ends, wrap=wrap)
    assert feed_all(lines, cut(stream, cuts)) == whole
    assert all(isinstance(item, FrameError) or (item and len(item) <= max_line) for item in whole)


@fast
@given(st.lists(st.one_of(streams, st.none()), max_size=8), st.integers(1, 9), options)
def test_the_splitter_matches_a_byte_by_byte_model(
    chunks: list[bytes | None], max_line: int, ends_wrap: tuple[bytes, bytes]
) -> None:
    ends, wrap = ends_wrap
    lines = LineSplitter(max_line, ends=ends, wrap=wrap, mask=lambda data: data)
    assert observed(lines, chunks) == reference(max_line, ends, wrap, chunks)
