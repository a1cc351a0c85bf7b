"""Serial barcode and QR scanners: one line of printable ASCII per scan, pure and incremental.

Scanners end a scan with CR, LF or CRLF (vendors differ), may wrap it in STX ... ETX and may put an AIM
symbology identifier (`]Q1`, `]C0`, ...) in front of it. See reference/devices.md section 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.devices.lines import LineSplitter
from edge.errors import FrameError

MAX_LINE = 1024  # bytes of one scan before its end, STX and AIM identifier included
STX, ETX, CR, LF = 0x02, 0x03, 0x0D, 0x0A
ENDS = (b"\r", b"\n", b"\r\n")

_PRINTABLE = frozenset(range(0x20, 0x7F))
_MASKED = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class BarcodeRead:
    """A scan: its text, and its AIM identifier (e.g. "]Q1") when the scanner sends them."""

    text: str
    symbology: str | None

    def fields(self) -> dict[str, object]:
        """JSON-safe decoded fields for a technician's tool."""
        return {"text": self.text, "symbology": self.symbology}


def _is_aim(prefix: str) -> bool:
    """`]`, a symbology letter, a modifier character (ISO/IEC 15424)."""
    return len(prefix) == 3 and prefix[0] == "]" and prefix[1].isalpha() and prefix[2].isalnum()


def _mask(line: bytes | bytearray) -> bytes:
    """Letters and digits masked (a scan may be a member code); punctuation and bad bytes stay visible."""
    return bytes(0x2A if byte in _MASKED else byte for byte in line)


def encode_scan(text: str, *, end: bytes = b"\r\n", aim: str | None = None, stx_etx: bool = False) -> bytes:
    """The bytes a scanner sends for `text`: [STX] [AIM identifier] text [ETX] end (b"" only with STX/ETX)."""
    if not text or not all(0x20 <= ord(char) <= 0x7E for char in text):
        raise ValueError("a scan is non-empty printable ASCII")
    if aim is not None and not _is_aim(aim):
        raise ValueError("an AIM identifier is ']', a letter and a modifier character, e.g. ']Q1'")
    if end not in ENDS and not (stx_etx and end == b""):
        raise ValueError("a scan ends with CR, LF or CRLF (or nothing after ETX)")
    body = ((aim or "") + text).encode("ascii")
    if len(body) + stx_etx > MAX_LINE:
        raise ValueError(f"a scan line is at most {MAX_LINE} bytes")
    if stx_etx:
        body = bytes([STX]) + body + bytes([ETX])
    return body + end


class BarcodeParser:
    """Scanner bytes in, `BarcodeRead`s and `FrameError`s out; never raises, holds at most 1024 bytes.

    A line ends at CR, LF or CRLF (one end, even split across feeds), or at ETX when it began with STX;
    empty lines are ignored. With `aim=True` a leading AIM identifier goes to `symbology` (off by default,
    since `]` can be payload). Error kinds: "format" (a byte that is not printable ASCII, or nothing after
    the STX or AIM identifier), "length" (a line over 1024 bytes), "timeout" (a partial line dropped by
    `flush`). Error data is masked.
    """

    def __init__(self, *, aim: bool = False) -> None:
        self.aim = aim
        # A line's first byte is the STX when it began with one; ETX then ends it.
        self._lines = LineSplitter(MAX_LINE, ends=bytes([CR, LF]), wrap=bytes([STX, ETX]), mask=_mask)

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet ended (at most MAX_LINE)."""
        return self._lines.pending

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial line ("timeout" error if one was dropped) and start afresh."""
        return self._lines.flush()

    def feed(self, data: bytes) -> list[BarcodeRead | FrameError]:
        """Consume `data` and return what it completed, in order."""
        out: list[BarcodeRead | FrameError] = []
        for line in self._lines.feed(data):
            item = line if isinstance(line, FrameError) else self._decode(line)
            if item is not None:
                out.append(item)
        return out

    def _decode(self, line: bytes) -> BarcodeRead | FrameError | None:
        """One line, terminator removed; None for an empty line."""
        if not line:
            return None
        payload = line[1:] if line[0] == STX else line
        if not payload:
            return FrameError("format", "nothing between STX and the end of the line", data=line)
        bad = next((byte for byte in payload if byte not in _PRINTABLE), None)
        if bad is not None:
            # STX or ETX inside a line, ACK/NAK, line noise: none of them is part of a scan.
            return FrameError("format", f"byte 0x{bad:02X} is not printable ASCII", data=_mask(line))
        text = payload.decode("ascii")
        if self.aim and _is_aim(text[:3]):
            if len(text) == 3:
                return FrameError("format", "an AIM identifier with no data", data=_mask(line))
            return BarcodeRead(text[3:], text[:3])
        return BarcodeRead(text, None)
