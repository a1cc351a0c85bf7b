"""Wiegand converter lines: devices.md vectors, the three outputs, parity, line ends, errors, hypothesis streams."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.wiegand import MAX_LINE, WiegandParser, WiegandRead, encode_wiegand
from edge.errors import FrameError

Output = Literal["bits", "hex", "decimal"]

JESS = b"00101101000000001010001000"  # [JESS]: FC 90, CN 324
CIV_BITS = b"1" + b"11010100" + b"0001101110000001" + b"0"  # [CIV]: data D4 1B 81, FC 212, CN 7041

# A 34-bit H10306 frame built by hand: FC 1001 = 0x03E9, CN 54320 = 0xD430. Both parity bits are 1, so a
# parser that ignored or inverted parity would not pass: FC has 7 ones (even parity needs a 1), CN has 6
# ones (odd parity needs a 1).
FC34 = "0000001111101001"
CN34 = "1101010000110000"
H10306 = ("1" + FC34 + CN34 + "1").encode()

fast = settings(max_examples=200, deadline=None)

outputs = st.sampled_from(["bits", "hex", "decimal"])
ends = st.sampled_from([b"\r", b"\n", b"\r\n"])
cards26 = st.tuples(st.just(26), st.integers(0, 0xFF), st.integers(0, 0xFFFF))
cards34 = st.tuples(st.just(34), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))


def one(parser: WiegandParser, data: bytes) -> WiegandRead | FrameError:
    (item,) = parser.feed(data)
    return item


def kind_of(parser: WiegandParser, data: bytes) -> str:
    item = one(parser, data)
    assert isinstance(item, FrameError), item
    return item.kind


def test_the_34_bit_vector_is_built_right() -> None:
    # Independent of the code under test: the layout of devices.md section 4 applied by hand.
    assert int(FC34, 2) == 1001 and int(CN34, 2) == 54320
    assert len(H10306) == 34
    assert H10306[1:17] == FC34.encode() and H10306[17:33] == CN34.encode()
    assert H10306[0:17].count(b"1") % 2 == 0  # b0 even over b1-16
    assert H10306[17:34].count(b"1") % 2 == 1  # b33 odd over b17-32


class TestVectors:
    def test_jess_26_bit(self) -> None:
        read = one(WiegandParser(), JESS + b"\r")
        assert read == WiegandRead(26, 90, 324)
        assert isinstance(read, WiegandRead)
        assert read.fields() == {"bits": 26, "facility": 90, "card_number": 324, "data_hex": "5A0144"}
        assert read.data == 90 << 16 | 324

    def test_all_zeros_fails_the_odd_parity_check(self) -> None:
        item = one(WiegandParser(), b"0" * 26 + b"\r")
        assert isinstance(item, FrameError) and item.kind == "parity"
        assert "odd" in item.detail and "even" not in item.detail

    def test_civ_data_bytes_from_the_wie232a(self) -> None:
        read = one(WiegandParser("hex"), b"D41B81\r")
        assert isinstance(read, WiegandRead)
        assert read.fields() == {"bits": 26, "facility": 212, "card_number": 7041, "data_hex": "D41B81"}

    def test_civ_as_bits(self) -> None:
        assert one(WiegandParser(), CIV_BITS + b"\r\n") == WiegandRead(26, 212, 7041)

    def test_h10306_by_hand(self) -> None:
        read = one(WiegandParser("bits"), H10306 + b"\n")
        assert isinstance(read, WiegandRead)
        assert read.fields() == {"bits": 34, "facility": 1001, "card_number": 54320, "data_hex": "03E9D430"}

    def test_encoder_reproduces_the_vectors(self) -> None:
        assert encode_wiegand(90, 324) == JESS + b"\r"
        assert encode_wiegand(212, 7041) == CIV_BITS + b"\r"
        assert encode_wiegand(212, 7041, output="hex") == b"D41B81\r"
        assert encode_wiegand(1001, 54320, bits=34, end=b"\r\n") == H10306 + b"\r\n"
        assert encode_wiegand(1001, 54320, bits=34, output="hex") == b"03E9D430\r"
        assert encode_wiegand(90, 324, output="decimal", end=b"\r\n") == b"0005898564\r\n"
        assert encode_wiegand(1001, 54320, bits=34, output="decimal") == b"%010d\r" % (1001 << 16 | 54320)


class TestOutputs:
    def test_hex_is_case_insensitive(self) -> None:
        assert one(WiegandParser("hex"), b"d41b81\r") == WiegandRead(26, 212, 7041)

    def test_hex_32_data_bits_are_a_34_bit_read(self) -> None:
        assert one(WiegandParser("hex"), b"03E9D430\r") == WiegandRead(34, 1001, 54320)

    @pytest.mark.parametrize("frame", [JESS, CIV_BITS, H10306])
    def test_hex_whole_frame_right_aligned_is_parity_checked(self, frame: bytes) -> None:
        width = 7 if len(frame) == 26 else 9
        line = b"%0*X\r" % (width, int(frame, 2))
        assert one(WiegandParser("hex"), line) == one(WiegandParser(), frame + b"\r")
        broken = b"%0*X\r" % (width, int(frame, 2) ^ 1)  # the trailing parity bit flipped
        assert kind_of(WiegandParser("hex"), broken) == "parity"

    @pytest.mark.parametrize("line", [b"4000000\r", b"400000000\r"])  # bit 26 / bit 34 set: not a frame
    def test_hex_whole_frame_too_large_is_a_range_error(self, line: bytes) -> None:
        assert kind_of(WiegandParser("hex"), line) == "range"

    def test_decimal_26(self) -> None:
        assert one(WiegandParser("decimal"), b"0005898564\r\n") == WiegandRead(26, 90, 324)

    def test_decimal_34(self) -> None:
        line = b"%010d\r\n" % (1001 << 16 | 54320)
        assert one(WiegandParser("decimal", bits=34), line) == WiegandRead(34, 1001, 54320)

    def test_decimal_without_padding_is_accepted(self) -> None:
        assert one(WiegandParser("decimal"), b"5898564\r") == WiegandRead(26, 90, 324)

    @pytest.mark.parametrize(("bits", "value"), [(26, 1 << 24), (34, 1 << 32), (26, 9999999999)])
    def test_decimal_too_large_for_the_data_bits_is_a_range_error(self, bits: Literal[26, 34], value: int) -> None:
        assert kind_of(WiegandParser("decimal", bits), b"%010d\r" % value) == "range"

    def test_largest_decimal_values_fit(self) -> None:
        assert one(WiegandParser("decimal"), b"0016777215\r") == WiegandRead(26, 0xFF, 0xFFFF)
        assert one(WiegandParser("decimal", 34), b"4294967295\r") == WiegandRead(34, 0xFFFF, 0xFFFF)

    def test_bits_length_decides_the_format_whatever_the_default(self) -> None:
        parser = WiegandParser("bits", bits=34)
        assert parser.feed(JESS + b"\r" + H10306 + b"\r") == [WiegandRead(26, 90, 324), WiegandRead(34, 1001, 54320)]


class TestErrors:
    def test_leading_parity_failure_says_even(self) -> None:
        item = one(WiegandParser(), b"1" + JESS[1:] + b"\r")
        assert isinstance(item, FrameError) and item.kind == "parity"
        assert "even" in item.detail and "odd" not in item.detail

    def test_both_parity_failures_are_named(self) -> None:
        item = one(WiegandParser(), b"0" + H10306[1:-1] + b"0\r")  # both parity bits of H10306 are 1
        assert isinstance(item, FrameError) and item.kind == "parity"
        assert "even" in item.detail and "odd" in item.detail

    @pytest.mark.parametrize(
        "line",
        [
            JESS[:-1],  # a missed pulse
            JESS + b"0",  # a noise pulse
            JESS + JESS,  # two reads merged under 50 ms: 52 bits
            b"0" * 30,
            b"1",
        ],
    )
    def test_wrong_bit_counts(self, line: bytes) -> None:
        assert kind_of(WiegandParser(), line + b"\r") == "bit_count"

    @pytest.mark.parametrize("line", [b"D41B8", b"D41B81D41B81", b"0"])
    def test_wrong_hex_digit_counts(self, line: bytes) -> None:
        assert kind_of(WiegandParser("hex"), line + b"\r") == "bit_count"

    @pytest.mark.parametrize(
        ("output", "line"),
        [
            ("bits", b"0010110100000000101000100" + b"2"),
            ("bits", b"0010110100000 0001010001000"),  # a space inside the line
            ("hex", b"D41G81"),
            ("hex", b"0xD41B81"),
            ("decimal", b"-005898564"),
            ("decimal", b"0005898564.0"),
            ("decimal", b"00058985\xff4"),
        ],
    )
    def test_characters_not_of_the_output_are_format_errors(self, output: Output, line: bytes) -> None:
        assert kind_of(WiegandParser(output), line + b"\r") == "format"

    def test_an_overlong_line_is_one_length_error_then_the_next_line_reads(self) -> None:
        parser = WiegandParser()
        items = parser.feed(b"01" * 300 + b"\r" + JESS + b"\r")
        assert [item.kind if isinstance(item, FrameError) else item for item in items] == [
            "length", WiegandRead(26, 90, 324)]

    def test_a_line_of_exactly_the_maximum_is_decoded_not_a_length_error(self) -> None:
        padded = JESS.center(MAX_LINE)
        assert len(padded) == MAX_LINE
        assert one(WiegandParser(), padded + b"\r") == WiegandRead(26, 90, 324)
        assert kind_of(WiegandParser(), b" " + padded + b"\r") == "length"

    def test_flush_drops_a_partial_line_with_a_timeout(self) -> None:
        parser = WiegandParser("hex")
        assert parser.feed(b"D41B") == []
        assert parser.pending == 4
        dropped = parser.flush()
        assert dropped is not None and dropped.kind == "timeout"
        assert parser.pending == 0 and parser.flush() is None
        # The tail after the silence is a line of its own, not the end of the dropped one.
        assert [item.kind for item in parser.feed(b"81\r") if isinstance(item, FrameError)] == ["bit_count"]
        assert parser.feed(b"D41B81\r") == [WiegandRead(26, 212, 7041)]

    def test_flush_with_nothing_pending_or_after_a_complete_line_reports_nothing(self) -> None:
        parser = WiegandParser()
        assert parser.flush() is None
        parser.feed(JESS + b"\r")
        assert parser.pending == 0 and parser.flush() is None

    def test_flush_ends_the_skip_of_an_overlong_line(self) -> None:
        parser = WiegandParser()
        assert [item.kind for item in parser.feed(b"0" * 100) if isinstance(item, FrameError)] == ["length"]
        assert parser.flush() is None  # nothing held: the overlong line was already reported
        assert parser.feed(JESS + b"\r") == [WiegandRead(26, 90, 324)]

    @pytest.mark.parametrize(
        ("output", "line"),
        [
            ("bits", b"1" + JESS[1:]),  # parity
            ("bits", JESS + JESS),  # bit_count
            ("hex", b"D41B8Z"),  # format
            ("hex", b"D41B"),  # bit_count
            ("decimal", b"9999999999"),  # range
        ],
    )
    def test_errors_never_show_the_card(self, output: Output, line: bytes) -> None:
        item = one(WiegandParser(output), line + b"\r")
        assert isinstance(item, FrameError)
        # The data keeps the shape of the line (its length, the offending byte) but no digit of it.
        assert len(item.data) == len(line)
        assert not any(byte in b"0123456789ABCDEFabcdef" for byte in item.data)
        for text in (item.detail, str(item)):
            assert line.decode() not in text and "5898564" not in text and "D41B" not in text

    def test_bad_configuration_is_refused(self) -> None:
        with pytest.raises(ValueError):
            WiegandParser("binary")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            WiegandParser("bits", 37)  # type: ignore[arg-type]


class TestLineEnds:
    @pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
    def test_every_end(self, end: bytes) -> None:
        parser = WiegandParser()
        assert parser.feed((JESS + end) * 3) == [WiegandRead(26, 90, 324)] * 3
        assert parser.pending == 0

    def test_crlf_split_across_feeds_is_one_end(self) -> None:
        parser = WiegandParser("hex")
        assert parser.feed(b"D41B81\r") == [WiegandRead(26, 212, 7041)]
        assert parser.feed(b"\n") == []
        assert parser.feed(b"\r") == []  # an empty line: ignored
        assert parser.feed(b"\nD41B81\r\n") == [WiegandRead(26, 212, 7041)]

    def test_lf_cr_and_blank_lines_are_ignored(self) -> None:
        assert WiegandParser("hex").feed(b"\n\r  \r\t\nD41B81\n\r\r\n") == [WiegandRead(26, 212, 7041)]

    def test_surrounding_spaces_are_tolerated(self) -> None:
        assert WiegandParser("decimal").feed(b"  0005898564 \t\r\n") == [WiegandRead(26, 90, 324)]


class TestEncoder:
    @pytest.mark.parametrize(
        ("args", "kwargs"),
        [
            ((256, 0), {}),  # an 8-bit facility in a 26-bit frame
            ((0, 65536), {}),
            ((-1, 0), {}),
            ((65536, 0), {"bits": 34}),
            ((0, 0), {"bits": 35}),
            ((0, 0), {"output": "octal"}),
            ((0, 0), {"end": b"\x03"}),
            ((0, 0), {"end": b""}),
            ((True, 0), {}),
            ((1.0, 0), {}),
        ],
    )
    def test_bad_input_is_a_value_error(self, args: tuple[object, object], kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            encode_wiegand(*args, **kwargs)  # type: ignore[arg-type]

    @fast
    @given(st.one_of(cards26, cards34), outputs, ends)
    def test_every_encoded_card_decodes_to_itself(
        self, card: tuple[Literal[26, 34], int, int], output: Output, end: bytes
    ) -> None:
        bits, facility, number = card
        line = encode_wiegand(facility, number, bits=bits, output=output, end=end)
        assert WiegandParser(output, bits).feed(line) == [WiegandRead(bits, facility, number)]


# ------------------------------------------------------------------ hypothesis streams

# A noise line: bytes without a line end, with at least one byte that is in no output's alphabet, so it
# can never decode as a card (it may be long enough to be a length error, which is fine).
noise_lines = st.tuples(st.binary(max_size=80), st.sampled_from(b"Zz?\x00\xff"), st.binary(max_size=10)).map(
    lambda parts: (parts[0] + bytes([parts[1]]) + parts[2]).replace(b"\r", b"").replace(b"\n", b""))


@fast
@given(st.lists(st.one_of(cards26, cards34), min_size=1, max_size=10), outputs, ends, st.data())
def test_a_stream_split_anywhere_gives_the_same_reads(
    cards: list[tuple[Literal[26, 34], int, int]], output: Output, end: bytes, data: st.DataObject
) -> None:
    bits = cards[0][0]
    if output == "decimal":  # one frame size per decimal converter
        cards = [card for card in cards if card[0] == bits]
    stream = b"".join(encode_wiegand(fc, cn, bits=b, output=output, end=end) for b, fc, cn in cards)
    whole = WiegandParser(output, bits).feed(stream)
    assert whole == [WiegandRead(*card) for card in cards]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = WiegandParser(output, bits)
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert [item for piece in pieces for item in parser.feed(piece)] == whole


@fast
@given(st.lists(st.tuples(noise_lines, cards26), max_size=12), noise_lines, outputs, ends)
def test_cards_between_noise_lines_are_all_found_in_order(
    pairs: list[tuple[bytes, tuple[Literal[26, 34], int, int]]], tail: bytes, output: Output, end: bytes
) -> None:
    stream = b"".join(
        junk + end + encode_wiegand(fc, cn, bits=bits, output=output, end=end) for junk, (bits, fc, cn) in pairs
    ) + tail
    items = WiegandParser(output).feed(stream)
    assert [item for item in items if isinstance(item, WiegandRead)] == [WiegandRead(*card) for _, card in pairs]
    # One error per noise line at most: a run of garbage is never an error per byte.
    assert sum(isinstance(item, FrameError) for item in items) <= len(pairs)


@fast
@given(st.binary(max_size=200), st.lists(st.one_of(cards26, cards34), max_size=8), st.integers(1, 40))
def test_after_a_flush_every_card_is_recovered_whatever_came_before(
    before: bytes, cards: list[tuple[Literal[26, 34], int, int]], chunk: int
) -> None:
    parser = WiegandParser()
    parser.feed(before)
    parser.flush()
    stream = b"".join(encode_wiegand(fc, cn, bits=bits) for bits, fc, cn in cards)
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert items == [WiegandRead(*card) for card in cards]


@fast
@given(st.one_of(cards26, cards34), st.data())
def test_any_single_flipped_bit_is_caught_by_parity(
    card: tuple[Literal[26, 34], int, int], data: st.DataObject
) -> None:
    bits, facility, number = card
    line = bytearray(encode_wiegand(facility, number, bits=bits))
    position = data.draw(st.integers(0, bits - 1))
    line[position] ^= 0x01  # "0" <-> "1"
    (item,) = WiegandParser().feed(bytes(line))
    assert isinstance(item, FrameError) and item.kind == "parity"
