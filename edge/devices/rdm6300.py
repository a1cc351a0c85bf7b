"""RDM6300 (125 kHz EM4100) framing: 14-byte frames `02 | 10 hex | 2 hex checksum | 03`, pure and incremental.

The module sends the version byte and the 4-byte tag as ASCII hex; the checksum is the XOR of those five
decoded bytes. It repeats the frame for as long as the tag stays in the field, hence `Debouncer`.
See reference/devices.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import FrameError

STX = 0x02
ETX = 0x03
BODY_LEN = 12  # 10 hex chars of id + 2 hex chars of checksum
FRAME_LEN = BODY_LEN + 2

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card seen by the reader; `card_id` is the 10 upper-case hex chars (2 version + 8 tag)."""

    card_id: str

    @property
    def tag40(self) -> int:
        """The 40 bits the module read: version byte and 32-bit tag."""
        return int(self.card_id, 16)

    def fields(self) -> dict[str, object]:
        """Version, the 32-bit tag and its printed 10-digit form, for a technician."""
        tag = self.tag40 & 0xFFFFFFFF
        return {"hex": self.card_id, "version": self.tag40 >> 32, "tag": tag, "tag_printed": f"{tag:010d}",
                "facility_24": (tag >> 16) & 0xFF, "number_24": tag & 0xFFFF}


def _checksum(card_id: str) -> int:
    value = 0
    for byte in bytes.fromhex(card_id):
        value ^= byte
    return value


def encode_frame(card_id: str) -> bytes:
    """The 14 bytes an RDM6300 sends for `card_id` (10 hex chars, any case)."""
    if len(card_id) != 10 or not all(ord(c) in _HEX_DIGITS for c in card_id):
        raise ValueError("an RDM6300 card id is 10 hex characters")
    body = card_id.upper()
    return bytes([STX]) + f"{body}{_checksum(body):02X}".encode("ascii") + bytes([ETX])


class Rdm6300Parser:
    """Bytes in, `CardRead`s and `FrameError`s out; resyncs on STX, never raises, holds at most 13 bytes."""

    def __init__(self) -> None:
        self._body = bytearray()
        self._in_frame = False
        # True while we are discarding bytes whose fault was already reported, so a run of
        # garbage (or the tail of a broken frame) yields one error rather than one per byte.
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (bounded by the frame length)."""
        return len(self._body) + (1 if self._in_frame else 0)

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial frame ("timeout" error if one was dropped) and start afresh."""
        held = self.pending
        # After silence, bytes outside a frame are a new run (reported again), not the tail of the old one.
        self._abandon(skip=False)
        return FrameError("timeout", f"partial frame of {held} bytes dropped after silence") if held else None

    def feed(self, data: bytes) -> list[CardRead | FrameError]:
        """Consume `data` and return what it completed, in order."""
        out: list[CardRead | FrameError] = []
        for byte in data:
            if byte == STX:
                if self._in_frame:
                    out.append(FrameError("length", f"frame cut after {len(self._body)} bytes"))
                self._start_frame()
            elif not self._in_frame:
                if not self._skipping:
                    out.append(FrameError("garbage", "bytes outside a frame"))
                    self._skipping = True
            elif len(self._body) < BODY_LEN:
                if byte in _HEX_DIGITS:
                    self._body.append(byte)
                elif byte == ETX:
                    out.append(FrameError("length", f"ETX after {len(self._body)} bytes"))
                    self._abandon(skip=False)
                else:
                    out.append(FrameError("format", f"non-hex byte 0x{byte:02X} in frame"))
                    self._abandon(skip=True)
            elif byte == ETX:
                out.append(self._complete())
                self._abandon(skip=False)
            else:
                out.append(FrameError("length", "no ETX after 12 bytes"))
                self._abandon(skip=True)
        return out

    def _start_frame(self) -> None:
        self._body.clear()
        self._in_frame = True
        self._skipping = False

    def _abandon(self, *, skip: bool) -> None:
        self._body.clear()
        self._in_frame = False
        self._skipping = skip

    def _complete(self) -> CardRead | FrameError:
        text = self._body.decode("ascii").upper()
        card_id, sent = text[:10], int(text[10:], 16)
        if _checksum(card_id) != sent:
            return FrameError("checksum", f"sent {sent:02X}, computed {_checksum(card_id):02X}")
        return CardRead(card_id)


class Debouncer:
    """Suppresses the frames a module repeats while a tag stays in the field; time is an argument."""

    def __init__(self, window_s: float = 0.5) -> None:
        self.window_s = window_s
        self._last_id: str | None = None
        self._last_seen = 0.0

    def accept(self, card_id: str, now: float) -> bool:
        """True for a new presentation; False for a repeat within `window_s` of the previous sighting."""
        repeat = card_id == self._last_id and now - self._last_seen < self.window_s
        # Every sighting extends the window: a tag resting on the reader is one presentation.
        self._last_id = card_id
        self._last_seen = now
        return not repeat
