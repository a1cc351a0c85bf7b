"""One card, one token: the devices.md vectors through each family's parser and the card identity."""

from __future__ import annotations

import pytest

from edge.devices.barcode import BarcodeParser
from edge.devices.families import card_id
from edge.devices.magstripe import MagstripeParser
from edge.devices.nfc_line import NfcLineParser
from edge.devices.rdm6300 import Rdm6300Parser
from edge.devices.wiegand import WiegandParser, encode_wiegand
from protocol.cards import CardIdError, CardScheme, card_token, printed_id

PEPPER = b"chain-pepper-0123456789"
TAG32, W24 = CardScheme(em4100="tag32"), CardScheme(em4100="wiegand24")
RDM6300_FRAME = bytes.fromhex("02 36 37 30 30 33 42 35 31 43 36 43 42 03")  # version 0x67, tag 3887558


def only(items: list[object]) -> object:
    assert len(items) == 1, items
    return items[0]


def test_one_fob_gives_one_token_through_the_rdm6300_the_wiegand26_converter_and_its_printed_numbers() -> None:
    rdm = only(Rdm6300Parser().feed(RDM6300_FRAME))
    # The same fob behind a WIE232-A converter on a Wiegand-26 reader: the low 24 bits, 3B51C6.
    w26 = only(WiegandParser(output="hex").feed(b"3B51C6\r"))
    w26_bits = only(WiegandParser().feed(encode_wiegand(0x3B, 0x51C6, bits=26)))
    cards = [card_id(rdm, W24), card_id(w26, W24), card_id(w26_bits, W24),
             printed_id("em4100", "0003887558", W24), printed_id("em4100", "059,20934", W24)]
    assert all(card is not None for card in cards), cards
    assert len({card_token(PEPPER, card) for card in cards if card is not None}) == 1


def test_under_tag32_the_rdm6300_and_the_printed_number_agree_and_a_wiegand26_read_is_refused() -> None:
    rdm = card_id(only(Rdm6300Parser().feed(RDM6300_FRAME)), TAG32)
    assert rdm is not None and rdm.text == "em4100:0003887558"
    assert rdm == printed_id("em4100", "0003887558", TAG32)
    with pytest.raises(CardIdError, match="wiegand24"):
        card_id(only(WiegandParser(output="hex").feed(b"3B51C6\r")), TAG32)


@pytest.mark.parametrize(
    ("parser", "stream", "text"),
    [
        (WiegandParser(), b"00101101000000001010001000\r", "em4100:090,00324"),  # [JESS] FC 90, CN 324
        (WiegandParser(output="hex"), b"D41B81\r", "em4100:212,07041"),  # [CIV] FC 212, CN 7041
        (NfcLineParser(), b"B0864D25\r\n", "nfc:B0864D25"),
        (NfcLineParser(reverse=True), b"25:4D:86:B0\r\n", "nfc:B0864D25"),
        (MagstripeParser(), b";326900002=98?\r", "mag:326900002"),
        (BarcodeParser(), bytes.fromhex("4D 31 32 33 34 35 36 37 38 39 37 0D 0A"), "member:1234567897"),
    ],
)
def test_the_reference_vectors_reach_their_canonical_ids(parser: object, stream: bytes, text: str) -> None:
    read = only(parser.feed(stream))  # type: ignore[attr-defined]
    card = card_id(read, W24)
    assert card is not None and card.text == text


def test_a_payment_card_is_a_pan_shown_as_first_six_and_last_four() -> None:
    read = only(MagstripeParser().feed(b"%B4111111111111111^TEST/CARD^3012201000000000000?\r"))
    card = card_id(read, TAG32)
    assert card is not None and card.display == "pan:411111******1111"
    assert "4111111111111111" not in repr(read) + repr(card) + str(read)


def test_a_scanned_code_that_is_no_member_code_gives_no_card() -> None:
    read = only(BarcodeParser().feed(b"TICKET-42\r\n"))
    with pytest.raises(CardIdError):
        card_id(read, TAG32)
