"""docs/pos-protocol.md says what a vendor codes against: its worked examples must be what the box does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.devices.pos import (
    EOT,
    NAK,
    PosControl,
    PosFrame,
    PosFrameParser,
    encode_answer,
    encode_frame,
    lrc,
    parse_answer,
    parse_request,
)
from edge.errors import FrameError
from tests.support.pos_doc import doc_text, example_hex, example_json, examples

FIXTURES = Path(__file__).parents[2] / "fixtures" / "serial"


def test_every_marked_example_is_read() -> None:
    assert set(examples()) == {
        "sale", "request-hex", "answer-hex", "conflict", "empty", "wrong-till", "no-card",
        "redeem", "authorised", "declined", "sale-with-hold", "answer-redeemed", "cancel", "sale-benefits",
        "answer-benefits", "sale-held", "refund", "refund-answer", "sale-feedback", "answer-feedback",
    }


def test_the_worked_lrc_example() -> None:
    frame_line = re.search(r"^frame:\s+((?:[0-9A-F]{2} ?)+)$", doc_text(), re.M)
    assert frame_line is not None
    assert bytes.fromhex(frame_line.group(1)) == encode_frame(b"PING")
    assert "`02 50 49 4E 47 03 13`" in doc_text()  # the checklist quotes the same frame
    assert lrc(b"PING\x03") == 0x13


def test_the_sale_example_is_the_contract_fixture_and_its_stated_size() -> None:
    sale = example_json("sale")
    assert len(sale) == 298 and "Example (298 bytes)" in doc_text()
    assert sale == (FIXTURES / "pos_request.json").read_bytes()
    assert parse_request(sale).sale_id == "S-000123"


def test_the_request_hex_dump_is_one_good_frame_of_the_stated_size_and_lrc() -> None:
    stated = re.search(r"(\d+)-byte payload, LRC `0x([0-9A-F]{2})`", doc_text())
    assert stated is not None
    frame = example_hex("request-hex")
    (item,) = PosFrameParser().feed(frame)
    assert isinstance(item, PosFrame)
    assert len(item.payload) == int(stated.group(1)) and frame[-1] == int(stated.group(2), 16)
    request = parse_request(item.payload)
    assert (request.sale_id, request.till, request.total) == ("S-000124", "t1", 1250)


def test_the_answer_hex_dump_is_byte_for_byte_what_the_box_encodes() -> None:
    stated = re.search(r"fob is printed `0003887558` \(LRC `0x([0-9A-F]{2})`\)", doc_text())
    assert stated is not None
    frame = example_hex("answer-hex")
    (item,) = PosFrameParser().feed(frame)
    assert isinstance(item, PosFrame)
    assert encode_answer(parse_answer(item.payload)) == frame
    assert frame[-1] == int(stated.group(1), 16)


def test_the_damaged_lrc_example_is_a_checksum_fault_and_the_cut_one_is_not() -> None:
    frame = example_hex("request-hex")
    assert "`... 7d 5d 7d 03 3b`" in doc_text() and frame[-5:-2] == bytes.fromhex("7d5d7d")
    (damaged,) = PosFrameParser().feed(frame[:-1] + b"\x3b")
    assert isinstance(damaged, FrameError) and damaged.kind == "checksum"  # the one fault the box NAKs
    cut = PosFrameParser()
    assert cut.feed(frame[:-2]) == [] and cut.pending == len(frame) - 2
    timeout = cut.flush()
    assert timeout is not None and timeout.kind == "timeout"


@pytest.mark.parametrize("name", ["conflict", "empty", "wrong-till", "no-card", "answer-feedback"])
def test_each_answer_example_is_in_the_exact_form_the_box_writes(name: str) -> None:
    payload = example_json(name)
    assert encode_answer(parse_answer(payload))[1:-2] == payload


def test_the_empty_frame_and_the_control_bytes_of_the_page() -> None:
    assert "`02 03 03`" in doc_text() and encode_frame(b"") == bytes.fromhex("020303")
    assert PosFrameParser().feed(bytes([EOT, NAK])) == [PosControl(EOT), PosControl(NAK)]
    assert "| EOT | `0x04` |" in doc_text() and "| NAK | `0x15` |" in doc_text()
