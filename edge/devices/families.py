"""Every card reader family the box reads, in one table: its parser, its pace, and how a read becomes a card.

A reader's items are reads (a card), notices (a reader talking about itself) or FrameErrors; `card_id`
turns a read into the chain's canonical card id (protocol/cards.py), the only form the box hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.devices.barcode import BarcodeParser, BarcodeRead
from edge.devices.magstripe import MagstripeParser, MagstripeRead
from edge.devices.nfc_line import NfcLineParser, NfcRead
from edge.devices.pn532 import Pn532Driver
from edge.devices.rdm6300 import CardRead, Rdm6300Parser
from edge.devices.serial_line import Parser
from edge.devices.wiegand import WiegandParser, WiegandRead
from edge.settings import ReaderSettings
from protocol.cards import CardId, CardScheme, em4100_id, magstripe_id, member_code_id, nfc_id, wiegand_id

Read = CardRead | MagstripeRead | NfcRead | WiegandRead | BarcodeRead
READ_TYPES = (CardRead, MagstripeRead, NfcRead, WiegandRead, BarcodeRead)


@dataclass(frozen=True, slots=True)
class Family:
    """How the box treats one kind of reader."""

    kind: str
    make_parser: Callable[[ReaderSettings], Parser]
    debounce_s: float
    """Sightings of one card closer than this are one presentation (modules repeat, people double-swipe)."""
    inter_byte_timeout_s: float | None
    """Silence that drops a partial frame; None where the frame itself says when it is complete."""


FAMILIES: dict[str, Family] = {
    # The module repeats its frame every ~65 ms while the tag is in the field.
    "rdm6300": Family("rdm6300", lambda _r: Rdm6300Parser(), 0.5, 0.2),
    # MagTek sends a swipe in 5-6 ms bursts with 10 ms gaps; a double swipe comes a second or two later.
    "magstripe": Family("magstripe", lambda r: MagstripeParser(lrc=r.lrc), 2.0, 0.5),
    "nfc-line": Family("nfc-line", lambda r: NfcLineParser(reverse=r.reverse_uid), 1.0, 0.5),
    # The driver polls every 0.15 s and reads a resting card each time.
    "pn532": Family("pn532", lambda _r: Pn532Driver(), 0.5, 0.5),
    "wiegand": Family("wiegand", lambda r: WiegandParser(output=r.wiegand_output, bits=r.wiegand_bits), 1.0, 0.5),
    "barcode": Family("barcode", lambda _r: BarcodeParser(), 2.0, 0.5),
}


def card_id(read: object, scheme: CardScheme) -> CardId | None:
    """The canonical id of a read; None for an item that is no card read. CardIdError when it gives none."""
    if isinstance(read, CardRead):
        return em4100_id(read.tag40, 40, scheme)
    if isinstance(read, MagstripeRead):
        return magstripe_id(read.pan)
    if isinstance(read, NfcRead):
        return nfc_id(read.uid)
    if isinstance(read, WiegandRead):
        return wiegand_id(26 if read.bits == 26 else 34, read.data, scheme)
    if isinstance(read, BarcodeRead):
        return member_code_id(read.text)
    return None


def fields_of(read: object) -> dict[str, object]:
    """The family's decoded fields of a read (never a full payment card number)."""
    fields = getattr(read, "fields", None)
    return dict(fields()) if callable(fields) else {}
