"""Wiegand 26 (H10301) and 34 (H10306) read through a serial converter: one text line per card, pure, incremental.

A converter turns the reader's Wiegand pulses into a line in the output it is configured for: the frame's
bits as `0`/`1`, its data bits as hex (the WIE232-A sends `D41B81\\r`), or their value as a 10-digit decimal.
See reference/devices.md section 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge.devices.lines import LineSplitter
from edge.errors import FrameError

Output = Literal["bits", "hex", "decimal"]
FrameBits = Literal[26, 34]

MAX_LINE = 64  # bytes between two line ends; a converter's longest line is 34 bits plus a few spaces
CR, LF = 0x0D, 0x0A
ENDS = (b"\r", b"\n", b"\r\n")

_NUMBER_BITS = 16  # the card number is 16 bits in both formats
_FACILITY_BITS = {26: 8, 34: 16}
_DIGITS = {
    "bits": frozenset(b"01"),
    "hex": frozenset(b"0123456789abcdefABCDEF"),
    "decimal": frozenset(b"0123456789"),
}
_DIGIT_NAMES = {"bits": "a bit", "hex": "a hex digit", "decimal": "a decimal digit"}
_HEX_DATA = {6: 26, 8: 34}  # hex digits of the data bits only (the converter checked parity) -> frame bits
_HEX_FRAME = {7: 26, 9: 34}  # hex digits of a whole frame, parity bits included, right-aligned -> frame bits
_MASKED = _DIGITS["hex"]


@dataclass(frozen=True, slots=True)
class WiegandRead:
    """A card read: the frame's length in bits (26 or 34), its facility code and its card number."""

    bits: int
    facility: int
    number: int

    @property
    def data(self) -> int:
        """The frame's data bits (24 or 32) without the parity bits: facility << 16 | number."""
        return self.facility << _NUMBER_BITS | self.number

    def fields(self) -> dict[str, object]:
        """JSON-safe decoded fields for a technician's tool."""
        return {
            "bits": self.bits,
            "facility": self.facility,
            "card_number": self.number,
            "data_hex": f"{self.data:0{(self.bits - 2) // 4}X}",
        }


def _parity(bits: int, data: int) -> tuple[int, int]:
    """(leading, trailing) parity bits: even over the first half of the data bits, odd over the second."""
    half = (bits - 2) // 2
    return (data >> half).bit_count() & 1, 1 - ((data & ((1 << half) - 1)).bit_count() & 1)


def _read(bits: int, data: int) -> WiegandRead:
    return WiegandRead(bits, data >> _NUMBER_BITS, data & ((1 << _NUMBER_BITS) - 1))


def _mask(line: bytes | bytearray) -> bytes:
    """The line with every digit masked: the length and the offending characters stay, the card does not."""
    return bytes(0x2A if byte in _MASKED else byte for byte in line)


def _check_frame(frame: int, bits: int, line: bytes) -> WiegandRead | FrameError:
    """Decode a whole frame (`frame` < 2**bits), checking both parity bits."""
    data = (frame >> 1) & ((1 << (bits - 2)) - 1)
    leading, trailing = _parity(bits, data)
    failed = []
    if frame >> (bits - 1) != leading:
        failed.append("even (leading)")
    if frame & 1 != trailing:
        failed.append("odd (trailing)")
    if failed:
        return FrameError("parity", f"{' and '.join(failed)} parity check failed ({bits} bits)", data=_mask(line))
    return _read(bits, data)


def encode_wiegand(
    facility: int, number: int, *, bits: FrameBits = 26, output: Output = "bits", end: bytes = b"\r"
) -> bytes:
    """The line a converter configured for `output` sends for this card, parity computed, ending `end`."""
    if bits not in _FACILITY_BITS:
        raise ValueError("a Wiegand frame here is 26 or 34 bits")
    if output not in _DIGITS:
        raise ValueError("output is 'bits', 'hex' or 'decimal'")
    if end not in ENDS:
        raise ValueError("a converter line ends with CR, LF or CRLF")
    for name, value, width in (("facility", facility, _FACILITY_BITS[bits]), ("number", number, _NUMBER_BITS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << width:
            raise ValueError(f"a {bits}-bit frame's {name} is an integer from 0 to {(1 << width) - 1}")
    data = facility << _NUMBER_BITS | number
    if output == "bits":
        leading, trailing = _parity(bits, data)
        text = f"{leading << (bits - 1) | data << 1 | trailing:0{bits}b}"
    elif output == "hex":
        text = f"{data:0{(bits - 2) // 4}X}"
    else:
        text = f"{data:010d}"
    return text.encode("ascii") + end


class WiegandParser:
    """Converter lines in, `WiegandRead`s and `FrameError`s out; never raises, holds at most 64 bytes.

    `output` is the converter's configured output; `bits` says 26 or 34 for the decimal output (in the
    other two the length of the line says which). Lines end CR, LF or CRLF; spaces around them are ignored,
    and so are empty lines. Error kinds: "bit_count" (not 26 or 34 bits: noise, a missed pulse, two reads
    merged), "parity", "format" (a character not of the output), "range" (a value too large for the frame),
    "length" (a line over 64 bytes), "timeout" (a partial line dropped by `flush`). Error data is masked.
    """

    def __init__(self, output: Output = "bits", bits: FrameBits = 26) -> None:
        if output not in _DIGITS:
            raise ValueError("output is 'bits', 'hex' or 'decimal'")
        if bits not in _FACILITY_BITS:
            raise ValueError("bits is 26 or 34")
        self.output: Output = output
        self.bits: FrameBits = bits
        self._lines = LineSplitter(MAX_LINE, ends=bytes([CR, LF]), mask=_mask)

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet ended (at most MAX_LINE)."""
        return self._lines.pending

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial line ("timeout" error if one was dropped) and start afresh."""
        return self._lines.flush()

    def feed(self, data: bytes) -> list[WiegandRead | FrameError]:
        """Consume `data` and return what it completed, in order."""
        out: list[WiegandRead | FrameError] = []
        for line in self._lines.feed(data):
            item = line if isinstance(line, FrameError) else self._decode(line)
            if item is not None:
                out.append(item)
        return out

    def _decode(self, line: bytes) -> WiegandRead | FrameError | None:
        """One line, terminator removed; None for a blank line."""
        text = line.strip(b" \t")
        if not text:
            return None
        digits = _DIGITS[self.output]
        bad = next((byte for byte in text if byte not in digits), None)
        if bad is not None:
            detail = f"byte 0x{bad:02X} is not {_DIGIT_NAMES[self.output]}"
            return FrameError("format", detail, data=_mask(line))
        count = len(text)
        if self.output == "bits":
            if count not in _FACILITY_BITS:
                return FrameError("bit_count", f"{count} bits, expected 26 or 34", data=_mask(line))
            return _check_frame(int(text, 2), count, line)
        if self.output == "hex":
            if count in _HEX_DATA:
                return _read(_HEX_DATA[count], int(text, 16))
            if count in _HEX_FRAME:
                bits = _HEX_FRAME[count]
                frame = int(text, 16)
                if frame >> bits:
                    return FrameError("range", f"{count} hex digits hold more than {bits} bits", data=_mask(line))
                return _check_frame(frame, bits, line)
            detail = f"{count} hex digits, expected 6 or 8 (data bits) or 7 or 9 (whole frame)"
            return FrameError("bit_count", detail, data=_mask(line))
        value = int(text)
        if value >> (self.bits - 2):
            detail = f"decimal value too large for the {self.bits - 2} data bits of a {self.bits}-bit frame"
            return FrameError("range", detail, data=_mask(line))
        return _read(self.bits, value)
