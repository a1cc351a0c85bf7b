"""Canonical card ids and tokens: one card, one token, whatever reads it or types it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.cards import (
    CardId,
    CardIdError,
    CardScheme,
    card_token,
    em4100_id,
    luhn_valid,
    magstripe_id,
    mask_pan,
    member_code_id,
    nfc_id,
    printed_id,
    wiegand_id,
)

TAG32 = CardScheme(em4100="tag32")
W24 = CardScheme(em4100="wiegand24")
PEPPER = b"chain-pepper-0123456789"
# devices.md section 2: "67003B51C6" = version 0x67, tag 0x003B51C6 = 3887558, printed 0003887558;
# its low 24 bits: 0x3B=59, 0x51C6=20934.
FOB40 = 0x67003B51C6


def test_the_devices_md_fob_under_each_form() -> None:
    assert em4100_id(FOB40, 40, TAG32) == CardId("em4100", "0003887558")
    assert em4100_id(FOB40, 40, W24) == CardId("em4100", "059,20934")


def test_tag32_the_rdm6300_the_wiegand34_and_the_printed_number_agree() -> None:
    from_rdm = em4100_id(FOB40, 40, TAG32)
    from_w34 = wiegand_id(34, 0x003B51C6, TAG32)
    typed = printed_id("em4100", "0003887558", TAG32)
    assert card_token(PEPPER, from_rdm) == card_token(PEPPER, from_w34) == card_token(PEPPER, typed)


def test_wiegand24_every_reader_and_both_printed_forms_agree() -> None:
    ids = {
        em4100_id(FOB40, 40, W24),
        wiegand_id(26, 0x3B51C6, W24),
        wiegand_id(34, 0x003B51C6, W24),
        printed_id("em4100", "0003887558", W24),
        printed_id("em4100", "059,20934", W24),
        printed_id("wiegand", "059/20934", W24),
    }
    assert len({card_token(PEPPER, card) for card in ids}) == 1


def test_tag32_refuses_24_bits_and_says_what_to_do() -> None:
    with pytest.raises(CardIdError, match="wiegand24"):
        wiegand_id(26, 0x3B51C6, TAG32)
    with pytest.raises(CardIdError, match="tag32"):
        printed_id("em4100", "059,20934", TAG32)


def test_a_34_bit_facility_above_255_is_printed_with_its_16_bits() -> None:
    assert printed_id("wiegand", "1000,20934", TAG32) == wiegand_id(34, 1000 << 16 | 20934, TAG32)


def test_the_printed_forms_without_separators() -> None:
    assert printed_id("em4100", "05920934", W24) == printed_id("em4100", "059,20934", W24)


@pytest.mark.parametrize("text", ["4294967296", "12345678901", "256x", "70000,00001", "001,70000", "", "3887558",
                                  "592093", "059,2093", "5,9", "59,20934"])
def test_impossible_printed_proximity_numbers_are_refused(text: str) -> None:
    with pytest.raises(CardIdError):
        printed_id("em4100", text, TAG32)


def test_nfc_uid_in_any_printed_spelling() -> None:
    card = nfc_id(bytes.fromhex("B0864D25"))
    assert card.text == "nfc:B0864D25"
    for spelling in ("b0864d25", "B0:86:4D:25", "b0 86 4d 25", "B0-86-4D-25"):
        assert printed_id("nfc", spelling, TAG32) == card
    assert nfc_id(bytes(range(7))).value == "00010203040506"
    with pytest.raises(CardIdError):
        nfc_id(b"\x01\x02\x03")
    with pytest.raises(CardIdError, match="random UID"):
        nfc_id(bytes.fromhex("08A1B2C3"))  # a phone wallet: a new UID at every tap
    with pytest.raises(CardIdError):
        printed_id("nfc", "B0864D2", TAG32)


@pytest.mark.parametrize(
    "pan",
    ["4111111111111111", "4012888888881881", "4242424242424242", "4222222222222", "5555555555554444",
     "5105105105105100", "378282246310005", "371449635398431", "6011111111111117"],
)
def test_the_published_test_pans_are_payment_cards(pan: str) -> None:
    assert luhn_valid(pan)
    card = magstripe_id(pan)
    assert card.family == "pan"
    assert card.display == f"pan:{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}"
    assert card.masked == f"pan:{'*' * (len(pan) - 4)}{pan[-4:]}" and repr(card) == f"CardId({card.masked!r})"


def test_luhn_vectors() -> None:
    assert not luhn_valid("4111111111111112")
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert luhn_valid("78949") and not luhn_valid("7894")
    assert not luhn_valid("") and not luhn_valid("12a4")


def test_a_payment_shaped_number_that_fails_luhn_is_no_card() -> None:
    with pytest.raises(CardIdError, match="Luhn") as caught:
        magstripe_id("4111111111111112")
    assert "4111111111111112" not in str(caught.value)


def test_loyalty_numbers_are_not_payment_cards_and_are_not_luhn_checked() -> None:
    assert magstripe_id("326900002") == CardId("mag", "326900002")
    assert magstripe_id("10000105") == CardId("mag", "10000105")
    assert printed_id("magstripe", "3269-0000 2", TAG32) == CardId("mag", "326900002")
    assert mask_pan("326900002") == "*****0002"


def test_member_codes() -> None:
    assert member_code_id("M1234567897") == CardId("member", "1234567897")
    assert printed_id("member", "1234567897", TAG32) == printed_id("member", "m1234567897", TAG32)
    with pytest.raises(CardIdError, match="Luhn"):
        member_code_id("M1234567890")
    with pytest.raises(CardIdError):
        member_code_id("X1234567897")


def test_tokens_depend_on_pepper_and_family() -> None:
    card = CardId("mag", "12345678")
    assert card_token(PEPPER, card) == card_token(PEPPER, CardId("mag", "12345678"))
    assert card_token(PEPPER, card) != card_token(b"another-pepper-0123456", card)
    assert card_token(PEPPER, card) != card_token(PEPPER, CardId("member", "12345678"))
    assert len(card_token(PEPPER, card)) == 64


@settings(max_examples=300, deadline=None)
@given(tag=st.integers(0, (1 << 40) - 1))
def test_every_fob_reaches_one_token_through_every_path(tag: int) -> None:
    low32, low24 = tag & 0xFFFFFFFF, tag & 0xFFFFFF
    tag32 = {em4100_id(tag, 40, TAG32), wiegand_id(34, low32, TAG32), printed_id("em4100", f"{low32:010d}", TAG32)}
    assert len(tag32) == 1
    w24 = {
        em4100_id(tag, 40, W24), wiegand_id(26, low24, W24), wiegand_id(34, low32, W24),
        printed_id("em4100", f"{low32:010d}", W24),
        printed_id("em4100", f"{low24 >> 16:03d},{low24 & 0xFFFF:05d}", W24),
    }
    assert len(w24) == 1
