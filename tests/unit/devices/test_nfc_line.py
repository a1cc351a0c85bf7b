"""Hex-line NFC readers: line endings, separators, Brady's xT prefix, reversed byte order, errors, streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.nfc_line import MAX_LINE, NfcLineParser, NfcRead, encode_uid_line
from edge.devices.serial_line import Parser
from edge.errors import FrameError

UID4 = bytes.fromhex("B0864D25")  # the card of devices.md section 3
UID7 = bytes.fromhex("04A224E2B95C80")
UID10 = bytes.fromhex("0102030405060708090A")

uids = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
LineForm = tuple[str, bytes, bool]  # separator, line end, printed reversed
line_forms = st.tuples(
    st.sampled_from(["", ":", "-", " "]), st.sampled_from([b"\r", b"\n", b"\r\n"]), st.booleans()
)
# Noise between lines: junk that can neither end a line nor pass for a UID (no CR, LF, hex digit, xT prefix).
noise_lines = st.text(alphabet="ghijklmnopqrsuvwyzGHIJKLMNOPQRSUVWYZ!#%&", min_size=1, max_size=20).map(
    lambda text: text.encode("ascii") + b"\r\n"
)


def kinds(items: list[NfcRead | FrameError]) -> list[str]:
    return [item.fields()["uid"] if isinstance(item, NfcRead) else f"!{item.kind}" for item in items]  # type: ignore[misc]


def test_meets_the_serial_line_parser_protocol() -> None:
    parser: Parser = NfcLineParser()  # checked by mypy
    assert parser.pending == 0


def test_devices_md_uid_as_a_crlf_line() -> None:
    (read,) = NfcLineParser().feed(b"B0864D25\r\n")
    assert isinstance(read, NfcRead)
    assert read.uid == UID4
    assert read.fields() == {"uid": "B0864D25", "uid_length": 4}


@pytest.mark.parametrize(
    "line",
    [
        b"b0864d25\r", b"B0864D25\n", b"B0:86:4D:25\r\n", b"b0-86-4d-25\r\n", b"B0 86 4D 25\r\n",
        b"  B0864D25  \r\n", b"xTB0864D25\r\n", b"xTb0:86:4d:25\r\n", b"XT B0864D25\r\n",
    ],
)
def test_accepted_forms_all_give_the_card_order_uid(line: bytes) -> None:
    assert NfcLineParser().feed(line) == [NfcRead(UID4)]


def test_seven_and_ten_byte_uids() -> None:
    stream = b"04A224E2B95C80\r\n" + b"01:02:03:04:05:06:07:08:09:0a\r"
    reads = NfcLineParser().feed(stream)
    assert reads == [NfcRead(UID7), NfcRead(UID10)]
    assert [read.fields()["uid_length"] for read in reads if isinstance(read, NfcRead)] == [7, 10]


def test_reverse_normalises_rotated_byte_order() -> None:
    assert NfcLineParser(reverse=True).feed(b"254D86B0\r\n") == [NfcRead(UID4)]
    assert NfcLineParser(reverse=True).feed(encode_uid_line(UID7, reverse=True)) == [NfcRead(UID7)]


def test_crlf_is_one_end_even_split_across_feeds_and_empty_lines_are_ignored() -> None:
    parser = NfcLineParser()
    assert parser.feed(b"B0864D25\r") == [NfcRead(UID4)]
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r\n\n\r  \r\nB0864D25\n\r") == [NfcRead(UID4)]
    assert parser.pending == 0


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"B0864D\r\n", "length"),  # 3 bytes
        (b"B0864D2501\r\n", "length"),  # 5 bytes
        (b"0102030405060708090A0B\r\n", "length"),  # 11 bytes
        (b"xT\r\n", "length"),
        (b"B0864DZ5\r\n", "format"),
        (b"B0864D2\r\n", "format"),  # half a byte
        (b"B0:864:D25\r\n", "format"),  # separators splitting bytes
        (b"B0864D25;\r\n", "format"),
        (b"\x00\x01\x02\x03\r\n", "format"),
    ],
)
def test_broken_lines_give_one_typed_error_then_the_next_line_reads(line: bytes, kind: str) -> None:
    assert kinds(NfcLineParser().feed(line + b"B0864D25\r\n")) == [f"!{kind}", "B0864D25"]


def test_errors_never_show_the_digits() -> None:
    (error,) = NfcLineParser().feed(b"B0864D2501\r\n")
    assert isinstance(error, FrameError)
    assert b"B0" not in error.data and "B0864D2501" not in str(error)
    assert error.data == b"**********"


def test_an_over_long_line_is_one_error_and_its_tail_is_ignored() -> None:
    parser = NfcLineParser()
    items = parser.feed(b"A" * (MAX_LINE + 1))
    assert kinds(items) == ["!length"]
    assert parser.pending == 0
    assert parser.feed(b"B0864D25" * 40) == []  # still the same line
    assert parser.flush() is None  # reported already
    assert kinds(parser.feed(b"B0864D25\r\n")) == ["B0864D25"]
    items = parser.feed(b"7" * 500 + b"\r\nB0864D25\r\n")
    assert kinds(items) == ["!length", "B0864D25"]


def test_a_line_of_exactly_the_maximum_is_read() -> None:
    line = b" " * (MAX_LINE - 8) + b"B0864D25"
    assert NfcLineParser().feed(line + b"\n") == [NfcRead(UID4)]


def test_flush_drops_a_partial_line() -> None:
    parser = NfcLineParser()
    assert parser.flush() is None
    assert parser.feed(b"B0864") == []
    assert parser.pending == 5
    dropped = parser.flush()
    assert dropped is not None and dropped.kind == "timeout"
    assert parser.pending == 0 and parser.flush() is None
    items = parser.feed(b"D25\r\nB0864D25\r\n")
    assert items == [FrameError("format", "hex digits do not form whole bytes", data=b"***"), NfcRead(UID4)]


def test_read_repr_hides_the_uid() -> None:
    read = NfcRead(UID4, atqa=4, sak=8)
    assert "B0" not in repr(read).upper() and "b0" not in repr(read)
    assert read.fields() == {"uid": "B0864D25", "uid_length": 4, "atqa": "0004", "sak": "08"}


def test_encode_uid_line_forms() -> None:
    assert encode_uid_line(UID4) == b"B0864D25\r\n"
    assert encode_uid_line(UID4, sep=":", end=b"\r") == b"B0:86:4D:25\r"
    assert encode_uid_line(UID4, reverse=True, sep=" ", end=b"\n") == b"25 4D 86 B0\n"


@pytest.mark.parametrize(
    "kwargs", [{"uid": b"\x01\x02\x03"}, {"sep": "/"}, {"end": b"\x03"}, {"uid": bytes(11)}]
)
def test_encode_uid_line_refuses_bad_input(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"uid": UID4, **kwargs}
    with pytest.raises(ValueError):
        encode_uid_line(**args)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(uids, line_forms), max_size=12), st.data())
def test_a_stream_split_anywhere_gives_the_same_reads(cards: list[tuple[bytes, LineForm]], data: st.DataObject) -> None:
    stream = b"".join(encode_uid_line(uid, sep=sep, end=end) for uid, (sep, end, _) in cards)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = NfcLineParser()
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    items = [item for piece in pieces for item in parser.feed(piece)]
    assert items == NfcLineParser().feed(stream) == [NfcRead(uid) for uid, _ in cards]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(noise_lines, max_size=2), uids, line_forms), max_size=12),
       st.integers(min_value=1, max_value=13))
def test_lines_among_junk_lines_are_all_found_in_order(
    entries: list[tuple[list[bytes], bytes, LineForm]], chunk: int
) -> None:
    stream = b""
    for junk, uid, (sep, end, reverse) in entries:
        stream += b"".join(junk) + encode_uid_line(uid, reverse=reverse, sep=sep, end=end)
    # Reversed lines are read by a parser set to reverse: compare what each reader would store.
    parser = NfcLineParser()
    items = [item for i in range(0, len(stream), chunk) for item in parser.feed(stream[i : i + chunk])]
    reads = [item.uid for item in items if isinstance(item, NfcRead)]
    assert reads == [uid[::-1] if reverse else uid for _, uid, (_, _, reverse) in entries]
    assert all(isinstance(item, NfcRead) or item.kind == "format" for item in items)
