"""Barcode/QR scanner lines: the member QR vector, line ends, STX/ETX, AIM identifiers, errors, hypothesis streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.barcode import MAX_LINE, BarcodeParser, BarcodeRead, encode_scan
from edge.errors import FrameError

MEMBER = "M1234567897"  # devices.md section 5: 123456789 plus its Luhn check digit 7
MEMBER_WIRE = bytes.fromhex("4D 31 32 33 34 35 36 37 38 39 37 0D 0A")

fast = settings(max_examples=200, deadline=None)

texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60)
ends = st.sampled_from([b"\r", b"\n", b"\r\n"])
plain_texts = texts.filter(lambda text: not text.startswith("]"))  # never taken for an AIM identifier
aims = st.one_of(st.none(), st.sampled_from(["]Q1", "]C0", "]A0", "]E0", "]d2", "]z0"]))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def show(items: list[BarcodeRead | FrameError]) -> list[object]:
    return [f"!{item.kind}" if isinstance(item, FrameError) else item for item in items]


class TestMemberCode:
    def test_the_vector_is_luhn_valid(self) -> None:
        assert luhn_ok(MEMBER[1:]) and not luhn_ok("1234567898")

    def test_wire_bytes(self) -> None:
        assert encode_scan(MEMBER) == MEMBER_WIRE

    def test_decodes(self) -> None:
        (read,) = BarcodeParser().feed(MEMBER_WIRE)
        assert read == BarcodeRead(MEMBER, None)
        assert isinstance(read, BarcodeRead)
        assert read.fields() == {"text": MEMBER, "symbology": None}


class TestLineEnds:
    @pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
    def test_every_end(self, end: bytes) -> None:
        parser = BarcodeParser()
        assert parser.feed((MEMBER.encode() + end) * 3) == [BarcodeRead(MEMBER, None)] * 3
        assert parser.pending == 0

    def test_crlf_split_across_feeds_is_one_end(self) -> None:
        parser = BarcodeParser()
        assert parser.feed(MEMBER_WIRE[:-1]) == [BarcodeRead(MEMBER, None)]
        assert parser.feed(b"\n") == []
        assert parser.feed(b"ABC\r") == [BarcodeRead("ABC", None)]
        assert parser.feed(b"\nDEF\r\n") == [BarcodeRead("DEF", None)]

    def test_a_lone_cr_then_text_is_an_end(self) -> None:
        assert BarcodeParser().feed(b"ABC\rDEF\r") == [BarcodeRead("ABC", None), BarcodeRead("DEF", None)]

    def test_empty_lines_are_ignored(self) -> None:
        assert BarcodeParser().feed(b"\r\n\n\r\rABC\n\r\n\r\n") == [BarcodeRead("ABC", None)]

    def test_spaces_are_payload(self) -> None:
        assert BarcodeParser().feed(b" A B \r\n") == [BarcodeRead(" A B ", None)]


class TestWrapping:
    def test_stx_etx_is_stripped(self) -> None:
        assert BarcodeParser().feed(b"\x02" + MEMBER.encode() + b"\x03") == [BarcodeRead(MEMBER, None)]

    def test_stx_etx_then_crlf_is_one_read(self) -> None:
        parser = BarcodeParser()
        assert parser.feed(b"\x02ABC\x03\r\n\x02DEF\x03\r") == [BarcodeRead("ABC", None), BarcodeRead("DEF", None)]
        assert parser.pending == 0

    def test_stx_without_etx_ends_at_the_line_end(self) -> None:
        assert BarcodeParser().feed(b"\x02ABC\r\n") == [BarcodeRead("ABC", None)]

    @pytest.mark.parametrize(
        "line",
        [
            b"ABC\x03\r\n",  # ETX without STX: not a wrapper
            b"AB\x02C\r\n",  # STX inside a line
            b"\x02AB\x02C\x03",  # a second STX (a frame cut and restarted)
            b"\x02\x03",  # nothing inside the wrapper
            b"\x02\r\n",
        ],
    )
    def test_stray_wrapper_bytes_are_format_errors(self, line: bytes) -> None:
        assert show(BarcodeParser().feed(line + b"\r\nOK\r\n")) == ["!format", BarcodeRead("OK", None)]


class TestAim:
    @pytest.mark.parametrize("aim", ["]Q1", "]C0", "]A0", "]d2"])
    def test_identifier_is_parsed_when_enabled(self, aim: str) -> None:
        (read,) = BarcodeParser(aim=True).feed(f"{aim}{MEMBER}\r\n".encode())
        assert isinstance(read, BarcodeRead)
        assert read.fields() == {"text": MEMBER, "symbology": aim}

    def test_identifier_is_payload_when_disabled(self) -> None:
        assert BarcodeParser().feed(b"]Q1" + MEMBER_WIRE) == [BarcodeRead("]Q1" + MEMBER, None)]

    def test_identifier_inside_stx_etx(self) -> None:
        assert BarcodeParser(aim=True).feed(encode_scan(MEMBER, aim="]Q1", stx_etx=True)) == [
            BarcodeRead(MEMBER, "]Q1")]

    @pytest.mark.parametrize("line", [b"]Q", b"]]1ABC", b"]1QABC", b"]Q-ABC", b"ABC"])
    def test_lines_without_a_valid_identifier_are_read_whole(self, line: bytes) -> None:
        assert BarcodeParser(aim=True).feed(line + b"\r\n") == [BarcodeRead(line.decode(), None)]

    def test_identifier_with_no_data_is_a_format_error(self) -> None:
        assert show(BarcodeParser(aim=True).feed(b"]Q1\r\n")) == ["!format"]


class TestErrors:
    @pytest.mark.parametrize(
        "line",
        [
            b"\x06",  # a Honeywell ACK on its own line
            b"\x15",  # a NAK
            b"\x06" + MEMBER.encode(),  # an ACK in front of a scan
            b"M12345\xe967897",
            b"M12345\x0067897",
            b"M12345\t67897",
            b"\x7f",
        ],
    )
    def test_non_printable_bytes_are_format_errors(self, line: bytes) -> None:
        assert show(BarcodeParser().feed(line + b"\r\n")) == ["!format"]

    def test_an_overlong_line_is_one_length_error_then_the_next_line_reads(self) -> None:
        items = BarcodeParser().feed(b"A" * 5000 + b"\r\n" + MEMBER_WIRE)
        assert show(items) == ["!length", BarcodeRead(MEMBER, None)]

    def test_a_line_of_exactly_the_maximum_is_read(self) -> None:
        assert BarcodeParser().feed(b"A" * MAX_LINE + b"\r") == [BarcodeRead("A" * MAX_LINE, None)]
        assert show(BarcodeParser().feed(b"A" * (MAX_LINE + 1) + b"\r")) == ["!length"]
        # The STX counts: a wrapped line holds one byte less.
        assert show(BarcodeParser().feed(b"\x02" + b"A" * MAX_LINE + b"\x03")) == ["!length"]

    def test_an_overlong_wrapped_line_ends_at_its_etx(self) -> None:
        items = BarcodeParser().feed(b"\x02" + b"A" * 2000 + b"\x03\x02OK\x03")
        assert show(items) == ["!length", BarcodeRead("OK", None)]

    def test_flush_drops_a_partial_line_with_a_timeout(self) -> None:
        parser = BarcodeParser()
        assert parser.feed(b"M1234") == []
        assert parser.pending == 5
        dropped = parser.flush()
        assert dropped is not None and dropped.kind == "timeout"
        assert parser.pending == 0 and parser.flush() is None
        assert parser.feed(b"567897\r\n") == [BarcodeRead("567897", None)]

    def test_flush_of_a_lone_stx_is_a_timeout(self) -> None:
        parser = BarcodeParser()
        parser.feed(b"\x02")
        assert parser.pending == 1
        dropped = parser.flush()
        assert dropped is not None and dropped.kind == "timeout"

    def test_flush_with_nothing_pending_reports_nothing(self) -> None:
        parser = BarcodeParser()
        assert parser.flush() is None
        parser.feed(MEMBER_WIRE)
        assert parser.pending == 0 and parser.flush() is None

    def test_flush_ends_the_skip_of_an_overlong_line(self) -> None:
        parser = BarcodeParser()
        assert show(parser.feed(b"A" * 3000)) == ["!length"]
        assert parser.flush() is None
        assert parser.feed(MEMBER_WIRE) == [BarcodeRead(MEMBER, None)]

    @pytest.mark.parametrize("line", [b"M12345\x0067897\r\n", b"M1234567897" * 100 + b"\r\n", b"\x02M1234567897"])
    def test_errors_never_show_the_code(self, line: bytes) -> None:
        parser = BarcodeParser()
        items = parser.feed(line)
        dropped = parser.flush()
        (item,) = items + ([dropped] if dropped else [])
        assert isinstance(item, FrameError)
        assert not any(byte in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" for byte in item.data)
        assert "1234" not in item.detail and "1234" not in str(item)


class TestEncoder:
    def test_options(self) -> None:
        assert encode_scan("ABC", end=b"\r") == b"ABC\r"
        assert encode_scan("ABC", aim="]C0") == b"]C0ABC\r\n"
        assert encode_scan("ABC", stx_etx=True, end=b"") == b"\x02ABC\x03"
        assert encode_scan("ABC", stx_etx=True) == b"\x02ABC\x03\r\n"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"text": ""},
            {"text": "caf\u00e9"},
            {"text": "A\rB"},
            {"text": "A" * (MAX_LINE + 1)},
            {"text": "ABC", "aim": "Q1"},
            {"text": "ABC", "aim": "]Q"},
            {"text": "ABC", "end": b""},
            {"text": "ABC", "end": b"\x03"},
        ],
    )
    def test_bad_input_is_a_value_error(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            encode_scan(**kwargs)  # type: ignore[arg-type]

    @fast
    @given(texts, ends, aims, st.booleans())
    def test_every_encoded_scan_decodes_to_itself(self, text: str, end: bytes, aim: str | None, wrap: bool) -> None:
        parser = BarcodeParser(aim=aim is not None)
        # With AIM parsing on, a text that itself starts like an identifier is still read right after one.
        assert parser.feed(encode_scan(text, end=end, aim=aim, stx_etx=wrap)) == [BarcodeRead(text, aim)]


# ------------------------------------------------------------------ hypothesis streams

# A noise line: bytes that hold no line end and no STX/ETX, with at least one byte that is not printable,
# so it can never be a scan (a long one is a length error, which is fine).
noise_parts = st.tuples(st.binary(max_size=80), st.sampled_from(b"\x00\x06\x15\x7f\x80\xff"), st.binary(max_size=10))
noise_lines = noise_parts.map(lambda parts: bytes(b for b in b"%b%c%b" % parts if b not in b"\x02\x03\r\n"))


@fast
@given(st.lists(st.tuples(plain_texts, aims), min_size=1, max_size=10), ends, st.booleans(), st.data())
def test_a_stream_split_anywhere_gives_the_same_reads(
    scans: list[tuple[str, str | None]], end: bytes, wrap: bool, data: st.DataObject
) -> None:
    stream = b"".join(encode_scan(text, end=end, aim=aim, stx_etx=wrap) for text, aim in scans)
    whole = BarcodeParser(aim=True).feed(stream)
    assert whole == [BarcodeRead(text, aim) for text, aim in scans]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = BarcodeParser(aim=True)
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert [item for piece in pieces for item in parser.feed(piece)] == whole


@fast
@given(st.lists(st.tuples(noise_lines, texts), max_size=12), noise_lines, ends, st.booleans())
def test_scans_between_noise_lines_are_all_found_in_order(
    pairs: list[tuple[bytes, str]], tail: bytes, end: bytes, wrap: bool
) -> None:
    stream = b"".join(junk + end + encode_scan(text, end=end, stx_etx=wrap) for junk, text in pairs) + tail
    items = BarcodeParser().feed(stream)
    assert [item for item in items if isinstance(item, BarcodeRead)] == [BarcodeRead(text, None) for _, text in pairs]
    # One error per noise line at most, never one per byte.
    assert sum(isinstance(item, FrameError) for item in items) <= len(pairs)


@fast
@given(st.binary(max_size=2000), st.lists(texts, max_size=8), st.integers(1, 40))
def test_after_a_flush_every_scan_is_recovered_whatever_came_before(
    before: bytes, scans: list[str], chunk: int
) -> None:
    parser = BarcodeParser()
    parser.feed(before)
    parser.flush()
    stream = b"".join(encode_scan(text) for text in scans)
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert items == [BarcodeRead(text, None) for text in scans]
