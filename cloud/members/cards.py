"""A card HQ is given (as read by a reader, or as printed on it) turned into the chain's token.

The number itself is never kept: only its token (HMAC under the chain's pepper, the boxes' own) and a
label of family and last 4 characters for the member's list of cards.
"""

from __future__ import annotations

import re

from cloud.errors import MemberError
from cloud.members.model import CardInput
from protocol.cards import (
    CardId,
    CardIdError,
    CardScheme,
    card_token,
    em4100_id,
    magstripe_id,
    member_code_id,
    nfc_id,
    printed_id,
)

_TAG32 = re.compile(r"^\d{10}$")
_WIEGAND24 = re.compile(r"^(\d{3}),(\d{5})$")


def read_card_id(text: str, scheme: CardScheme) -> CardId:
    """A canonical id as `marquee-edge read-cards` prints it (``family:value``), checked under `scheme`."""
    family, _, value = text.strip().partition(":")
    if family == "em4100":
        if scheme.em4100 == "tag32" and _TAG32.match(value):
            return em4100_id(int(value), 32, scheme)
        pair = _WIEGAND24.match(value)
        if scheme.em4100 == "wiegand24" and pair:
            return em4100_id(int(pair.group(1)) << 16 | int(pair.group(2)), 24, scheme)
        raise CardIdError(f"an em4100 id in the chain's {scheme.em4100} form is "
                          + ("10 digits" if scheme.em4100 == "tag32" else "FFF,CCCCC"))
    if family == "nfc" and re.fullmatch(r"(?:[0-9A-F]{2})+", value):
        return nfc_id(bytes.fromhex(value))
    if family in ("pan", "mag") and value.isascii() and value.isdigit():
        card = magstripe_id(value)
        if card.family != family:
            raise CardIdError(f"this number is a {card.family} number, not {family}")
        return card
    if family == "member":
        return member_code_id(f"M{value}")
    raise CardIdError("a card as read is family:value (em4100, nfc, pan, mag or member), "
                      "as `marquee-edge read-cards` prints it")


def card_of(card: CardInput, scheme: CardScheme) -> CardId:
    """The canonical id of a card given to HQ; MemberError(invalid) naming the reason, never the number."""
    try:
        if card.kind == "read":
            return read_card_id(card.number, scheme)
        return printed_id(card.kind, card.number, scheme)
    except CardIdError as exc:
        raise MemberError("invalid", f"card: {exc}") from exc


def token_and_label(card: CardInput, *, pepper: bytes, scheme: CardScheme) -> tuple[str, str]:
    """The card's token and its label (family and last 4)."""
    card_id = card_of(card, scheme)
    return card_token(pepper, card_id), card_id.masked[:40]
