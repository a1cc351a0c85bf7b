"""13.56 MHz readers that print the card's UID as a line of hex, and the read type every NFC reader shares.

CDC/AT readers end replies with CRLF, Brady WavePoint sends ``xT<hex>\\r\\n``, keyboard-style firmware types
the hex and Enter; some print the bytes reversed ("Rotate Bytewise"). Whatever the reader prints, the read's
UID is in the order the card sends it, the form `protocol.cards.nfc_id` keys on.
See reference/devices.md section 3, "Simpler readers".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.devices.lines import LineSplitter
from edge.errors import FrameError

UID_LENGTHS = (4, 7, 10)
MAX_LINE = 64  # bytes before the terminator; a 10-byte UID with separators and a prefix needs 31
SEPARATORS = (":", "-", " ")
ENDINGS = (b"\r", b"\n", b"\r\n")

_CR, _LF = 0x0D, 0x0A
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_SEPARATOR_BYTES = frozenset(b":- \t")
_PREFIX = b"XT"  # Brady WavePoint's, compared upper-cased
_MASK = ord("*")


@dataclass(frozen=True, slots=True)
class NfcRead:
    """A 13.56 MHz card: its UID in the order the card sends it, plus ATQA and SAK when the reader gives them.

    The UID stays out of `repr()`, so a read that lands in a log line does not leak the card number.
    """

    uid: bytes = field(repr=False)
    atqa: int | None = None
    sak: int | None = None

    def fields(self) -> dict[str, object]:
        """JSON-safe decoded fields for a technician's tool: uid (upper-case hex), uid_length, atqa, sak."""
        out: dict[str, object] = {"uid": self.uid.hex().upper(), "uid_length": len(self.uid)}
        if self.atqa is not None:
            out["atqa"] = f"{self.atqa:04X}"
        if self.sak is not None:
            out["sak"] = f"{self.sak:02X}"
        return out


def encode_uid_line(uid: bytes, *, reverse: bool = False, sep: str = "", end: bytes = b"\r\n") -> bytes:
    """The line a hex-printing reader sends for `uid` (upper-case hex, bytes reversed if `reverse`)."""
    if len(uid) not in UID_LENGTHS:
        raise ValueError(f"an NFC UID has 4, 7 or 10 bytes, not {len(uid)}")
    if sep not in ("", *SEPARATORS):
        raise ValueError("the separator is one of '', ':', '-', ' '")
    if end not in ENDINGS:
        raise ValueError("a line ends with CR, LF or CRLF")
    printed = uid[::-1] if reverse else uid
    return sep.join(f"{byte:02X}" for byte in printed).encode("ascii") + end


def _mask(line: bytes | bytearray) -> bytes:
    """The line with every hex digit starred: its shape helps a technician, its digits could be a card number."""
    return bytes(_MASK if byte in _HEX_DIGITS else byte for byte in line)


class NfcLineParser:
    """Lines of hex in, `NfcRead`s and `FrameError`s out; never raises, holds at most `MAX_LINE` bytes.

    A line ends with CR, LF or CRLF; empty lines are ignored (so CRLF is one end, however it is split).
    Hex digits in either case, optionally separated by ':', '-' or spaces, optionally after ``xT``.
    `reverse=True` is for readers configured to print the bytes reversed.
    Error kinds: "length" (not 4, 7 or 10 bytes, or a line over `MAX_LINE` bytes, reported once and the rest
    of it ignored up to its terminator), "format" (not hex, or not whole bytes), "timeout" (from `flush`).
    """

    def __init__(self, reverse: bool = False) -> None:
        self.reverse = reverse
        self._lines = LineSplitter(MAX_LINE, ends=bytes([_CR, _LF]), mask=_mask)

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet ended (at most `MAX_LINE`)."""
        return self._lines.pending

    def flush(self) -> FrameError | None:
        """The line went silent: drop a partial line ("timeout" error if one was dropped) and start afresh."""
        dropped = self._lines.flush()
        # This family's timeout has never carried the partial line's bytes, masked or not.
        return FrameError(dropped.kind, dropped.detail) if dropped else None

    def feed(self, data: bytes) -> list[NfcRead | FrameError]:
        """Consume `data` and return what it completed, in order."""
        out: list[NfcRead | FrameError] = []
        for line in self._lines.feed(data):
            if isinstance(line, FrameError):
                out.append(line)
            elif line.strip(b" \t"):
                out.append(self._complete(line))
        return out

    def _complete(self, line: bytes) -> NfcRead | FrameError:
        text = line.strip(b" \t")
        if text[:2].upper() == _PREFIX:
            text = text[2:].lstrip(b" \t")
        digits = bytearray()
        groups: list[int] = []  # hex digits per separated group; all must be 2 when separators are used
        run = 0
        for position, byte in enumerate(text):
            if byte in _HEX_DIGITS:
                digits.append(byte)
                run += 1
            elif byte in _SEPARATOR_BYTES:
                if run:
                    groups.append(run)
                run = 0
            else:
                return FrameError("format", f"byte 0x{byte:02X} at position {position} is not hex", data=_mask(line))
        if run:
            groups.append(run)
        if len(digits) % 2 or (len(groups) > 1 and any(size != 2 for size in groups)):
            return FrameError("format", "hex digits do not form whole bytes", data=_mask(line))
        uid = bytes.fromhex(digits.decode("ascii"))
        if len(uid) not in UID_LENGTHS:
            return FrameError("length", f"a UID of {len(uid)} bytes (expected 4, 7 or 10)", data=_mask(line))
        return NfcRead(uid[::-1] if self.reverse else uid)
