"""One card identity: the canonical card id of every card family, and the token the chain keeps for it.

The same physical card must reach the same token whichever reader reads it (an RDM6300 sees 40 bits of an
EM4100 fob, a Wiegand-26 converter 24 of them) and when its number is typed from what is printed on it (the
hub's member import and search). Each reader's read is turned into a `CardId` here; the token is an HMAC
of the id's text under the chain's pepper. docs/cards.md is the page for integrators.

Families and their canonical values (the text hashed is ``family:value``):

- ``em4100``: 125 kHz proximity (EM4100 fobs on RDM6300 modules, cards behind Wiegand converters), in the
  chain's form (`CardScheme.em4100`): ``tag32`` = the 10-digit decimal of the tag's low 32 bits
  (``0003887558``), ``wiegand24`` = facility and number of its low 24 bits (``059,20934``).
- ``nfc``: 13.56 MHz UID, upper-case hex in the order the card sends it (4, 7 or 10 bytes).
- ``pan``: a payment card number (13-19 digits, MII 2-6, Luhn-valid); shown only as first 6 + last 4.
- ``mag``: any other magnetic stripe number (loyalty and gift cards), its digits.
- ``member``: a member QR or barcode ``M`` + digits ending in a Luhn check digit; the digits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from protocol.errors import ProtocolError

Family = Literal["em4100", "nfc", "pan", "mag", "member"]
Em4100Form = Literal["tag32", "wiegand24"]
PrintedKind = Literal["em4100", "wiegand", "nfc", "magstripe", "member"]
PRINTED_KINDS: tuple[PrintedKind, ...] = ("em4100", "wiegand", "nfc", "magstripe", "member")
NFC_UID_LENGTHS = (4, 7, 10)
MAX_PAN_DIGITS = 19

_SEPARATORS = re.compile(r"[\s:.-]+")
# Facility and number as printed, digits all there: FFF (8 bits) or 4-5 digits (16 bits), then CCCCC.
_FACILITY_NUMBER = re.compile(r"^(\d{3,5})\s*[,/ -]\s*(\d{5})$")
_MEMBER_CODE = re.compile(r"^M(\d{6,19})$")


class CardIdError(ProtocolError):
    """A read or a typed number that gives no card id under the chain's scheme; the message says why.

    Messages never carry the number itself.
    """


class CardScheme(BaseModel):
    """The chain-wide choices that decide a card's id; every box and the hub must hold the same."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    em4100: Em4100Form = "tag32"
    """tag32: RDM6300, Wiegand-34 and the printed 10-digit number agree; Wiegand-26 readers cannot be used.
    wiegand24: every reader and both printed forms agree, on the low 24 bits of the tag."""


@dataclass(frozen=True, slots=True)
class CardId:
    """A card's canonical id; `text` is what the token is made of, `display` what a technician may see."""

    family: Family
    value: str = field(repr=False)

    @property
    def text(self) -> str:
        """``family:value``, the HMAC's message; never logged, never stored."""
        return f"{self.family}:{self.value}"

    @property
    def display(self) -> str:
        """The id for a technician's screen: a payment card shows only its first 6 and last 4 digits."""
        if self.family == "pan":
            return f"pan:{mask_pan(self.value)}"
        return self.text

    @property
    def masked(self) -> str:
        """The id for logs and receipts: family and the last 4 characters."""
        return f"{self.family}:{'*' * max(0, len(self.value) - 4)}{self.value[-4:]}"

    def __repr__(self) -> str:
        return f"CardId({self.masked!r})"


def card_token(pepper: bytes, card: CardId) -> str:
    """The chain-wide token of a card: HMAC-SHA256 of its canonical text under the pepper, in hex."""
    return hmac.new(pepper, card.text.encode("ascii"), hashlib.sha256).hexdigest()


def mask_pan(digits: str) -> str:
    """First 6 and last 4 digits of a number of 13 or more; of a shorter one at most the last 4, and never
    fewer than 4 hidden, so a short loyalty number is never shown whole."""
    if len(digits) >= 13:
        return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]
    shown = max(0, min(4, len(digits) - 4))
    return "*" * (len(digits) - shown) + digits[len(digits) - shown :]


def luhn_valid(digits: str) -> bool:
    """True when `digits` (ASCII digits only) ends in a correct Luhn check digit."""
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_payment_number(digits: str) -> bool:
    """A number shaped like a payment card's: 13-19 digits whose first (the ISO 7812 MII) is 2 to 6."""
    return 13 <= len(digits) <= MAX_PAN_DIGITS and digits[:1] in ("2", "3", "4", "5", "6")


# ------------------------------------------------------------------ from readers


def em4100_id(tag: int, tag_bits: Literal[24, 32, 40], scheme: CardScheme) -> CardId:
    """The id of a 125 kHz tag of which a reader saw the low `tag_bits` bits (RDM6300 40, Wiegand 32 or 24)."""
    if tag < 0 or tag >= 1 << tag_bits:
        raise CardIdError(f"a {tag_bits}-bit tag value is out of range")
    if scheme.em4100 == "tag32":
        if tag_bits < 32:
            raise CardIdError(
                "24 bits of the tag (a Wiegand-26 read, a FFF,CCCCC number) cannot give the chain's em4100 "
                "form tag32, which needs 32; use a 40-bit or Wiegand-34 reader, or the wiegand24 form chain-wide"
            )
        return CardId("em4100", f"{tag & 0xFFFFFFFF:010d}")
    low = tag & 0xFFFFFF
    return CardId("em4100", f"{low >> 16:03d},{low & 0xFFFF:05d}")


def wiegand_id(bits: Literal[26, 34], data: int, scheme: CardScheme) -> CardId:
    """The id of a Wiegand read: its 24 (26-bit frame) or 32 (34-bit frame) data bits as a 125 kHz tag."""
    return em4100_id(data, 24 if bits == 26 else 32, scheme)


def nfc_id(uid: bytes) -> CardId:
    """The id of a 13.56 MHz card from its UID, in the order the card sends it.

    A 4-byte UID starting 0x08 is a random ID (ISO/IEC 14443-3): phone wallets and privacy cards give a
    new one at every tap, so it cannot stand for a member; it is refused rather than given a new account.
    """
    if len(uid) not in NFC_UID_LENGTHS:
        raise CardIdError(f"an NFC UID has 4, 7 or 10 bytes, not {len(uid)}")
    if len(uid) == 4 and uid[0] == 0x08:
        raise CardIdError("this card shows a random UID, new at every tap (a phone wallet or a privacy card); "
                          "it cannot be a member card")
    return CardId("nfc", uid.hex().upper())


def magstripe_id(pan: str) -> CardId:
    """The id of a magnetic stripe number: `pan` for payment cards (Luhn checked), `mag` for the others."""
    if not pan.isascii() or not pan.isdigit() or len(pan) > MAX_PAN_DIGITS:
        raise CardIdError("a card number is 1 to 19 digits")
    if is_payment_number(pan):
        if not luhn_valid(pan):
            raise CardIdError("a payment card number fails its Luhn check")
        return CardId("pan", pan)
    return CardId("mag", pan)


def member_code_id(text: str) -> CardId:
    """The id of a member code (QR or barcode) ``M`` + digits whose last is a Luhn check digit."""
    match = _MEMBER_CODE.match(text.strip().upper())
    if match is None:
        raise CardIdError("a member code is M followed by 6 to 19 digits")
    digits = match.group(1)
    if not luhn_valid(digits):
        raise CardIdError("a member code fails its Luhn check digit")
    return CardId("member", digits)


# ------------------------------------------------------------------ from printed numbers


def printed_id(kind: PrintedKind, text: str, scheme: CardScheme) -> CardId:
    """The id of a card from the number printed on it, as a person types it (member import, search).

    em4100/wiegand: the 10-digit decimal of the 32-bit tag, or ``FFF,CCCCC`` (facility, number; a facility
    above 255 is the 16-bit facility of a 34-bit card; 8 digits are FFF and CCCCC without the comma);
    nfc: the UID in hex, separators allowed; magstripe: the digits (spaces and dashes allowed);
    member: ``M`` + digits, the ``M`` optional.
    """
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 64:
        raise CardIdError("a printed card number is 1 to 64 characters")
    if kind in ("em4100", "wiegand"):
        return _printed_proximity(cleaned, scheme)
    if kind == "nfc":
        hex_text = _SEPARATORS.sub("", cleaned)
        if len(hex_text) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", hex_text):
            raise CardIdError("an NFC UID is printed as hex digits, two per byte")
        return nfc_id(bytes.fromhex(hex_text))
    if kind == "magstripe":
        digits = re.sub(r"[\s-]+", "", cleaned)
        return magstripe_id(digits)
    if kind == "member":
        code = cleaned.upper()
        return member_code_id(code if code.startswith("M") else f"M{code}")
    raise CardIdError(f"unknown card kind {kind[:20]!r}; one of {', '.join(PRINTED_KINDS)}")


def _printed_proximity(text: str, scheme: CardScheme) -> CardId:
    pair = _FACILITY_NUMBER.match(text)
    if pair is not None:
        facility, number = int(pair.group(1)), int(pair.group(2))
        if number > 0xFFFF or facility > 0xFFFF:
            raise CardIdError("a printed facility and number are at most 65535 each")
        if facility > 0xFF:
            return em4100_id(facility << 16 | number, 32, scheme)
        # Eight bits of facility: what is printed is the low 24 bits of the tag, whatever the card holds.
        return em4100_id(facility << 16 | number, 24, scheme)
    if re.fullmatch(r"\d{10}", text):
        value = int(text)
        if value > 0xFFFFFFFF:
            raise CardIdError("a printed tag number is at most 4294967295")
        return em4100_id(value, 32, scheme)
    if re.fullmatch(r"\d{8}", text):
        # FFF,CCCCC typed without its comma: 3 digits of facility, 5 of number.
        return _printed_proximity(f"{text[:3]},{text[3:]}", scheme)
    # Any other length is a typo, not a shorter number: guessing could attach the wrong fob to a member.
    raise CardIdError("a 125 kHz card number is printed as 10 digits (all of them, leading zeros too) or as "
                      "FFF,CCCCC")
