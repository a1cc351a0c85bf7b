"""Magnetic stripe lines: devices.md vectors, loyalty layouts, error kinds, PAN privacy, hypothesis streams."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.magstripe import (
    MAX_LINE,
    MagstripeItem,
    MagstripeParser,
    MagstripeRead,
    ReaderNotice,
    encode_swipe,
    lrc_char,
    luhn_valid,
    mask_pan,
)
from edge.errors import FrameError

VISA = "4111111111111111"
TABLE_TRACK1 = b"%B4111111111111111^TEST/CARD^3012201000000000000?"
MAGTEK_EXAMPLE = b"%B123^Smith/Joann^9812101000?;112222333333444444444?\r"
WWS5_TRACK2 = b";326900002=98?\r"
WWS5_BOTH = b"%B6035718888880528923^^4912?;6035718888880528923=4912?\r"
AMIGO = b"%G5  GIFT OR LOYALTY CARD     10000105?;10000105?\r"
SIGN_ON = b"210888xxAnn\r"
TEST_PANS = ["4111111111111111", "4012888888881881", "4242424242424242", "4222222222222", "5555555555554444",
             "5105105105105100", "378282246310005", "371449635398431", "6011111111111117"]

pans = st.sampled_from(TEST_PANS)
# Noise that can neither end a line nor start a track.
noise = st.binary(max_size=30).map(lambda b: bytes(x for x in b if x not in b"\x02\x03\x10\r\n%;+"))


def feed_all(data: bytes, *, lrc: bool = False) -> list[MagstripeItem]:
    return MagstripeParser(lrc).feed(data)


def one(data: bytes, *, lrc: bool = False) -> MagstripeItem:
    (item,) = feed_all(data, lrc=lrc)
    return item


def kind(data: bytes, *, lrc: bool = False) -> str:
    item = one(data, lrc=lrc)
    assert isinstance(item, FrameError), item
    return item.kind


def read(data: bytes, *, lrc: bool = False) -> MagstripeRead:
    item = one(data, lrc=lrc)
    assert isinstance(item, MagstripeRead), item
    return item


def summary(items: list[MagstripeItem]) -> list[str]:
    return [item.pan if isinstance(item, MagstripeRead) else f"!{item.kind}" if isinstance(item, FrameError)
            else f"notice {item.text}" for item in items]


# ---------------------------------------------------------------- devices.md vectors


def test_the_table_track1_vector_with_its_lrc_decodes() -> None:
    card = read(TABLE_TRACK1 + b"C\r", lrc=True)
    assert card == MagstripeRead(VISA, True, (1,), "B")
    assert card.fields() == {"masked_pan": "411111******1111", "payment": True, "tracks": [1],
                             "format_code": "B", "pan_length": 16}


def test_lrc_vectors() -> None:
    assert lrc_char(1, "%AT3?") == "<"
    assert lrc_char(1, TABLE_TRACK1.decode()) == "C"
    assert kind(TABLE_TRACK1 + b"D\r", lrc=True) == "lrc"
    assert kind(b"%AT3?=\r", lrc=True) == "lrc"
    # `<` is right, so what remains is track 1 format A without the ISO layout (and no track 2).
    assert kind(b"%AT3?<\r", lrc=True) == "format"


def test_track2_lrc_may_itself_be_the_end_sentinel() -> None:
    line = encode_swipe(VISA, tracks=(2,), lrc=True)
    assert line == b";4111111111111111=3012201??\r"
    assert read(line, lrc=True).tracks == (2,)


def test_lrc_sent_to_a_parser_not_expecting_one_is_a_format_error() -> None:
    assert kind(TABLE_TRACK1 + b"C\r") == "format"


def test_missing_lrc_is_an_lrc_error() -> None:
    assert kind(TABLE_TRACK1 + b"\r", lrc=True) == "lrc"


def test_magtek_example_with_a_21_digit_track2_is_refused_whole() -> None:
    # Track 1 says 123, track 2 is malformed: trusting either could credit the wrong card.
    error = one(MAGTEK_EXAMPLE)
    assert isinstance(error, FrameError) and error.kind == "format"
    # Digits and letters masked: neither the card number nor the name travels in an error.
    assert error.data == b"%#***^#####/#####^**********?;*********************?"


def test_a_failed_track_beside_a_good_one_reads_from_the_good_one() -> None:
    line = b"%E?;" + VISA.encode() + b"=3012201?+E?\r"
    assert read(line) == MagstripeRead(VISA, True, (2,), None)
    assert read(encode_swipe(VISA, failed=(2,))) == MagstripeRead(VISA, True, (1,), "B")


@pytest.mark.parametrize("line", [b"%E?;E?+E?\r", b"%E?;E?\r", b";E?\r", b"%?;?\r", b"%E?+E?\r"])
def test_every_track_failed_is_unreadable(line: bytes) -> None:
    assert kind(line) == "unreadable"


@pytest.mark.parametrize("line", [b"+E?\r", b"+4111111111111111=3012?\r"])
def test_a_line_with_only_track3_yields_nothing(line: bytes) -> None:
    assert feed_all(line) == []


def test_wws5_loyalty_track2_without_expiry() -> None:
    card = read(WWS5_TRACK2)
    assert card == MagstripeRead("326900002", False, (2,), None)
    assert card.masked_pan == "*****0002"


def test_wws5_gift_card_with_format_b_passes_luhn_and_counts_as_payment() -> None:
    assert luhn_valid("6035718888880528923")
    assert read(WWS5_BOTH) == MagstripeRead("6035718888880528923", True, (1, 2), "B")


def test_amigo_gift_card_reads_from_track2_and_keeps_its_format_code() -> None:
    card = read(AMIGO)
    assert card == MagstripeRead("10000105", False, (1, 2), "G")
    assert card.fields()["masked_pan"] == "****0105"


def test_a_proprietary_track1_alone_gives_no_card() -> None:
    assert kind(AMIGO.replace(b";10000105?", b";E?")) == "format"


def test_track2_without_separator_runs_to_the_end_sentinel() -> None:
    assert read(b";10000105?\r").pan == "10000105"


def test_sign_on_line_is_a_notice_not_a_card() -> None:
    items = feed_all(SIGN_ON + encode_swipe(VISA))
    assert items == [ReaderNotice("210888xxAnn"), MagstripeRead(VISA, True, (1, 2), "B")]
    assert items[0].fields() == {"text": "210888xxAnn"}  # type: ignore[union-attr]


@pytest.mark.parametrize("line", [b"4111111111111111\r", b"12=3012201?\r", b"\x00\xff\x80\r", b"x" * 60 + b"\r"])
def test_a_line_without_sentinel_that_is_no_sign_on_is_a_format_error(line: bytes) -> None:
    assert kind(line) == "format"


def test_a_run_of_junk_lines_is_one_error_and_silence_starts_a_new_run() -> None:
    parser = MagstripeParser()
    assert summary(parser.feed(b"\xff\r\x00\r\x80\x81\r" + encode_swipe(VISA) + b"\xfe\r")) == [
        "!format", VISA, "!format"]
    assert parser.flush() is None
    assert summary(parser.feed(b"\xfd\r")) == ["!format"]


def test_missing_cr_waits_then_flush_reports_timeout_and_the_next_line_is_clean() -> None:
    parser = MagstripeParser()
    line = encode_swipe(VISA)
    assert parser.feed(line[:-1]) == []
    assert parser.pending == len(line) - 1
    dropped = parser.flush()
    assert dropped is not None and dropped.kind == "timeout"
    assert VISA[:6].encode() not in dropped.data and b"*" * 16 in dropped.data
    assert parser.pending == 0 and parser.flush() is None
    assert parser.feed(line) == [MagstripeRead(VISA, True, (1, 2), "B")]


@pytest.mark.parametrize("line", [b"%B4111111111111111^TE\r", encode_swipe(VISA)[:-8] + b"\r", b";4111\r"])
def test_partial_swipe(line: bytes) -> None:
    assert kind(line) == "partial"


# ---------------------------------------------------------------- layout and Luhn


@pytest.mark.parametrize(
    "line",
    [
        b";41111111111111x1=3012?\r",  # non-digit in the PAN
        b"%B41111111111111111111^X^3012?\r",  # 20 digits
        b";=3012?\r",  # no PAN
        b"%B4111111111111111?\r",  # no field separators
        b"%4111111111111111^X^3012?\r",  # no format code
        b"%B4111111111111111^X^3012?;4012888888881881=3012?\r",  # tracks disagree
        b";4111111111111111=3012?;4111111111111111=3012?\r",  # track 2 twice
        b";4111111111111111=30\x0012?\r",  # a control byte
        b";4111111111111111=3012?xyz\r",  # junk after a track
    ],
)
def test_bad_layout_is_a_format_error(line: bytes) -> None:
    assert kind(line) == "format"


@pytest.mark.parametrize(
    ("pan", "payment"),
    [("4111111111111111", True), ("4222222222222", True), ("6011111111111117", True), ("2223000048400011", True),
     ("7111111111111111", False), ("9111111111111", False), ("411111111111", False), ("1234", False)],
)
def test_payment_is_decided_by_the_mii_and_length(pan: str, payment: bool) -> None:
    assert read(encode_swipe(pan, tracks=(2,))).payment is payment


def test_payment_card_failing_luhn_is_refused() -> None:
    assert kind(encode_swipe("4111111111111112")) == "luhn"
    assert kind(encode_swipe("4111111111111112", tracks=(2,))) == "luhn"
    # The number decides, not the format code: the same card is classified alike whichever track read.
    assert read(b"%B123^X^3012?\r").payment is False
    assert read(b"%E?;123=3012?\r").payment is False


@pytest.mark.parametrize("line", [b"326900002\r", b"SMITH/JOANN 12345\r", b"TEST CARD\r"])
def test_bare_numbers_and_names_from_a_reader_without_sentinels_are_masked_errors_not_notices(line: bytes) -> None:
    (item,) = MagstripeParser().feed(line)
    assert isinstance(item, FrameError) and item.kind == "format"
    assert not any(char.isalnum() for char in item.data.decode())  # neither the number nor the name


def test_loyalty_numbers_are_not_luhn_checked() -> None:
    assert not luhn_valid("7111111111111112")
    assert read(encode_swipe("7111111111111112", tracks=(2,))).pan == "7111111111111112"


@pytest.mark.parametrize("pan", [*TEST_PANS, "79927398713", "6035718888880528923", "0"])
def test_luhn_valid_numbers(pan: str) -> None:
    assert luhn_valid(pan)


@pytest.mark.parametrize("digits", ["4111111111111112", "79927398710", "79927398714", "", "7992739871a", "４２"])
def test_luhn_invalid_numbers(digits: str) -> None:
    assert not luhn_valid(digits)


@pytest.mark.parametrize(
    ("pan", "masked"),
    [("4111111111111111", "411111******1111"), ("4222222222222", "422222***2222"),
     ("6035718888880528923", "603571*********8923"), ("326900002", "*****0002"), ("12345", "****5"),
     ("1234", "****"), ("1", "*")],
)
def test_mask_pan(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked
    assert MagstripeRead(pan, False, (2,), None).masked_pan == masked


# ---------------------------------------------------------------- line ends and framing


@pytest.mark.parametrize(
    "stream",
    [
        encode_swipe(VISA, end=b"\r"),
        encode_swipe(VISA, end=b"\n"),
        encode_swipe(VISA, end=b"\r\n"),
        b"\x02" + encode_swipe(VISA, end=b"\x03"),
        b"\x02" + encode_swipe(VISA, end=b"\x03\r\n"),
        b"\x02" + encode_swipe(VISA, tracks=(1,), end=b"\x10"),
    ],
)
def test_every_line_end_gives_one_read(stream: bytes) -> None:
    expected = MagstripeRead(VISA, True, (1,) if stream.endswith(b"\x10") else (1, 2), "B")
    assert feed_all(stream * 2) == [expected, expected]


def test_crlf_split_across_two_feeds_is_one_line_end() -> None:
    parser = MagstripeParser()
    assert len(parser.feed(encode_swipe(VISA, end=b"\r"))) == 1
    assert parser.feed(b"\n") == [] and parser.pending == 0


def test_id_tech_sends_one_track_per_line_each_a_read() -> None:
    text1, text2 = "%B4111111111111111^DOE/JANE^3012201?", ";4111111111111111=3012201?"
    stream = b"".join(b"\x02" + (t + lrc_char(n, t)).encode() + b"\x10" for n, t in ((1, text1), (2, text2)))
    assert feed_all(stream, lrc=True) == [MagstripeRead(VISA, True, (1,), "B"), MagstripeRead(VISA, True, (2,), None)]


def test_lrc_after_a_failed_track_is_optional() -> None:
    good = encode_swipe(VISA, tracks=(2,), lrc=True)
    assert read(b"%E?" + good, lrc=True).tracks == (2,)
    assert read(b"%E?_" + good, lrc=True).tracks == (2,)


def test_an_overlong_line_is_one_length_error_then_the_next_line_reads() -> None:
    parser = MagstripeParser()
    line = b";" + b"4" * 400 + b"?\r"
    items = [item for i in range(0, len(line), 7) for item in parser.feed(line[i : i + 7])]
    assert summary(items) == ["!length"]
    assert parser.pending == 0
    assert isinstance(items[0], FrameError) and set(items[0].data) <= set(b";*")
    assert parser.feed(encode_swipe(VISA)) == [MagstripeRead(VISA, True, (1, 2), "B")]


def test_a_line_of_exactly_max_bytes_is_parsed_and_one_more_is_not() -> None:
    line = b";" + VISA.encode() + b"=" + b"0" * (MAX_LINE - 19) + b"?"
    assert len(line) == MAX_LINE
    assert read(line + b"\r").pan == VISA
    assert kind(line[:-1] + b"0?\r") == "length"


def test_bytes_before_the_first_sentinel_are_garbage_then_the_read() -> None:
    # A stream that starts mid-line: the tail of track 1, then a whole track 2.
    line = encode_swipe(VISA)
    items = feed_all(line[20:])
    assert summary(items) == ["!garbage", VISA]
    assert isinstance(items[0], FrameError) and b"1111" not in items[0].data


# ---------------------------------------------------------------- encode_swipe


def test_encode_swipe_magtek_layout() -> None:
    assert encode_swipe(VISA, name="TEST/CARD") == b"%B4111111111111111^TEST/CARD^3012201?;4111111111111111=3012201?\r"
    assert encode_swipe(VISA, tracks=(1, 2, 3), failed=(1, 3)) == b"%E?;4111111111111111=3012201?+E?\r"
    assert encode_swipe("10000105", tracks=(2,), expiry="9912", service_code="000", end=b"\r\n") == (
        b";10000105=9912000?\r\n")


def test_encode_swipe_with_lrc_round_trips() -> None:
    line = encode_swipe(VISA, name="TEST/CARD", tracks=(1, 2, 3), lrc=True)
    assert read(line, lrc=True) == MagstripeRead(VISA, True, (1, 2, 3), "B")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pan": ""}, {"pan": "4111x"}, {"pan": "1" * 20}, {"name": "lower"}, {"name": "A^B"}, {"name": "X" * 27},
        {"expiry": "301"}, {"service_code": "2011"}, {"tracks": ()}, {"tracks": (2, 1)}, {"tracks": (4,)},
        {"tracks": (1, 1)}, {"failed": (3,)}, {"end": b""}, {"end": b"X"},
    ],
)
def test_encode_swipe_refuses_bad_input(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"pan": VISA, **kwargs}
    with pytest.raises(ValueError):
        encode_swipe(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------- PAN privacy


def test_a_read_never_shows_its_pan() -> None:
    card = read(encode_swipe(VISA, name="DOE/JANE"))
    for shown in (repr(card), str(card), repr(card.fields()), str(card.fields())):
        assert VISA not in shown and VISA[6:-4] not in shown
    assert "DOE" not in repr(card)


@pytest.mark.parametrize(
    "line",
    [
        b"%B4111111111111111^X^3012?;4111111111111111=3012?;4111111111111111=3012?\r",  # format
        b"%B4111111111111112^X^3012?;4111111111111112=3012?\r",  # luhn
        b"%B4111111111111111^X^3012?Z;4111111111111111=3012?Z\r",  # lrc
        b"%B4111111111111111^X^3012?;4111111111111111=3\r",  # partial
        b"4111111111111111\r",  # format, no sentinel
        b"xx4111111111111111^X^3012?;4111111111111111=3012?\r",  # garbage (then a read)
        b";" + b"4111111111111111" * 20 + b"?\r",  # length
        b"%B4111111111111111^X^3012?;4111111111111111",  # timeout
    ],
)
def test_no_error_carries_the_pan(line: bytes) -> None:
    parser = MagstripeParser(lrc=b"Z" in line)
    items: list[object] = [*parser.feed(line), parser.flush()]
    errors = [item for item in items if isinstance(item, FrameError)]
    assert errors
    for error in errors:
        for shown in (str(error), repr(error), error.detail, error.data.decode("latin-1")):
            assert not any(pan in shown or pan[6:-4] in shown for pan in ("4111111111111111", "4111111111111112"))
        assert not set(error.data) & set(b"0123456789")


# ---------------------------------------------------------------- hypothesis


@settings(max_examples=200, deadline=None)
@given(st.lists(pans, min_size=1, max_size=8), st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
def test_a_stream_split_anywhere_gives_the_same_items(cards: list[str], cuts: list[int]) -> None:
    for lrc in (False, True):
        stream = SIGN_ON + b"".join(
            encode_swipe(pan, tracks=(1, 2, 3), lrc=lrc, failed=(1,) if i % 3 == 2 else (), end=b"\r\n")
            + (b"%E?;E?\r" if i % 2 else b"") for i, pan in enumerate(cards))
        whole = MagstripeParser(lrc).feed(stream)
        assert [item.pan for item in whole if isinstance(item, MagstripeRead)] == cards
        parser = MagstripeParser(lrc)
        bounds = [0, *sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]
        assert [item for a, b in pairwise(bounds) for item in parser.feed(stream[a:b])] == whole


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(noise, noise, st.sampled_from(TEST_PANS)), max_size=10), st.integers(1, 40))
def test_swipes_among_noise_lines_and_prefixes_are_all_found_in_order(
    groups: list[tuple[bytes, bytes, str]], chunk: int
) -> None:
    stream = b"".join(line_noise + b"\r" + prefix + encode_swipe(pan) for line_noise, prefix, pan in groups)
    parser = MagstripeParser()
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    assert [item.pan for item in items if isinstance(item, MagstripeRead)] == [pan for _, _, pan in groups]
    assert parser.pending == 0


@settings(max_examples=300, deadline=None)
@given(pans, st.booleans(), st.data())
def test_one_corrupted_byte_never_yields_a_different_card(pan: str, lrc: bool, data: st.DataObject) -> None:
    line = bytearray(encode_swipe(pan, name="DOE/JANE", lrc=lrc))
    position = data.draw(st.integers(0, len(line) - 2))
    line[position] = data.draw(st.integers(0, 255))
    parser = MagstripeParser(lrc)
    items = [*parser.feed(bytes(line)), parser.flush()]
    assert all(item.pan == pan for item in items if isinstance(item, MagstripeRead))


@settings(max_examples=100, deadline=None)
@given(pans, st.sampled_from([(1,), (2,), (1, 2), (1, 2, 3)]), st.booleans(), st.sampled_from([b"\r", b"\n", b"\r\n"]))
def test_generated_swipes_decode_and_hide_their_pan(pan: str, tracks: tuple[int, ...], lrc: bool, end: bytes) -> None:
    card = read(encode_swipe(pan, name="DOE/JANE", tracks=tracks, lrc=lrc, end=end), lrc=lrc)
    assert card == MagstripeRead(pan, True, tracks, "B" if 1 in tracks else None)
    shown = repr(card) + str(card) + repr(card.fields())
    assert pan not in shown and not re.search(r"\d{7}", shown)  # at most the first 6 digits in a row
