"""PN532 host-link framing (HSU/UART): encode commands, parse the chip's frames, pure and incremental.

Normal information frame: ``00 | 00 FF | LEN | LCS | TFI | PD0..PDn | DCS | 00``, LEN counting TFI and
data, (LEN + LCS) & 0xFF == 0, (TFI + sum(PD) + DCS) & 0xFF == 0. Extended frames carry ``FF FF LENM LENL
LCS`` in place of LEN and LCS. TFI is D4 from host to chip and D5 back; PD0 of a reply is the command + 1.
ACK, NACK and the error frame are fixed byte strings. See reference/devices.md section 3 and
libnfc's libnfc/chips/pn53x.c.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge.devices.nfc_line import UID_LENGTHS, NfcRead
from edge.errors import FrameError

TFI_HOST = 0xD4  # host to chip
TFI_CHIP = 0xD5  # chip to host
TFI_ERROR = 0x7F  # the chip's application-level error frame

ACK = bytes.fromhex("00 00 FF 00 FF 00")
NACK = bytes.fromhex("00 00 FF FF 00 00")
ERROR_FRAME = bytes.fromhex("00 00 FF 01 FF 7F 81 00")

MAX_NORMAL_LEN = 255  # LEN is one byte
MAX_LEN = 265  # TFI plus 264 data bytes, the PN532's extended-frame limit (libnfc's DATA_MAX_LEN + TFI)
MAX_PENDING = 7 + MAX_LEN  # 00 FF FF FF LENM LENL LCS, then TFI and data, held until the DCS byte

# Commands the box uses (PN532 User Manual UM0701-02, chapter 7).
GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A

_HEADER_NORMAL = 4  # 00 FF LEN LCS
_HEADER_EXTENDED = 7  # 00 FF FF FF LENM LENL LCS


class Control(enum.Enum):
    """The chip's fixed frames: ACK (command accepted), NACK (resend), ERROR (application-level error)."""

    ACK = "ack"
    NACK = "nack"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Pn532Frame:
    """An information frame: `code` is PD0 (a command, or a command + 1 in a reply), `params` PD1..PDn."""

    code: int
    params: bytes


@dataclass(frozen=True, slots=True)
class FirmwareVersion:
    """GetFirmwareVersion's answer: IC (0x32 for a PN532), version, revision and supported-protocols mask."""

    ic: int
    version: int
    revision: int
    support: int

    def fields(self) -> dict[str, object]:
        """JSON-safe fields for a technician's tool."""
        return {"ic": f"{self.ic:02X}", "firmware": f"{self.version}.{self.revision}", "support": self.support}


def _checksum(data: bytes) -> int:
    """The byte that brings the sum of `data` and itself to 0 mod 256 (LCS and DCS alike)."""
    return -sum(data) & 0xFF


def encode_frame(tfi: int, data: bytes) -> bytes:
    """An information frame with `tfi` and `data` (PD0..PDn): normal when it fits, extended otherwise."""
    if tfi not in (TFI_HOST, TFI_CHIP):
        raise ValueError("TFI is D4 (host to chip) or D5 (chip to host)")
    length = len(data) + 1
    if not 2 <= length <= MAX_LEN:
        raise ValueError(f"a PN532 frame carries 1 to {MAX_LEN - 1} data bytes, not {len(data)}")
    if length <= MAX_NORMAL_LEN:
        header = bytes([0x00, 0x00, 0xFF, length, _checksum(bytes([length]))])
    else:
        size = bytes([length >> 8, length & 0xFF])
        header = bytes([0x00, 0x00, 0xFF, 0xFF, 0xFF]) + size + bytes([_checksum(size)])
    body = bytes([tfi]) + data
    return header + body + bytes([_checksum(body), 0x00])


def encode_command(command: int, params: bytes = b"") -> bytes:
    """The frame the host sends for `command` with `params` (TFI D4)."""
    if not 0 <= command <= 0xFF:
        raise ValueError("a command code is one byte")
    return encode_frame(TFI_HOST, bytes([command]) + params)


def encode_reply(command: int, params: bytes = b"") -> bytes:
    """The frame the chip sends in answer to `command` (TFI D5, code command + 1)."""
    if not 0 <= command < 0xFF:
        raise ValueError("a command code is one byte")
    return encode_frame(TFI_CHIP, bytes([command + 1]) + params)


def decode_firmware_version(frame: Pn532Frame) -> FirmwareVersion:
    """The GetFirmwareVersion reply's fields; ValueError if `frame` is not one."""
    if frame.code != GET_FIRMWARE_VERSION + 1 or len(frame.params) != 4:
        raise ValueError("not a GetFirmwareVersion reply")
    return FirmwareVersion(*frame.params)


def decode_passive_target(frame: Pn532Frame) -> NfcRead | None:
    """The first type A target of an InListPassiveTarget reply (None for NbTg 0); ValueError if malformed.

    Target data (106 kbps type A): Tg, SENS_RES (ATQA, 2 bytes), SEL_RES (SAK), NFCIDLength, NFCID1, [ATS].
    """
    if frame.code != IN_LIST_PASSIVE_TARGET + 1 or not frame.params:
        raise ValueError("not an InListPassiveTarget reply")
    params = frame.params
    if params[0] == 0:
        return None
    if len(params) < 6:
        raise ValueError("target data cut short")
    uid_length = params[5]
    if uid_length not in UID_LENGTHS:
        raise ValueError(f"NFCIDLength {uid_length} (expected 4, 7 or 10)")
    if len(params) < 6 + uid_length:
        raise ValueError("UID cut short")
    return NfcRead(uid=params[6 : 6 + uid_length], atqa=(params[2] << 8) | params[3], sak=params[4])


class Pn532FrameParser:
    """Bytes in, `Pn532Frame`s, `Control`s and `FrameError`s out; never raises, holds at most MAX_PENDING bytes.

    Any number of 00 bytes may precede the start code ``00 FF``; the postamble is one of them. `tfi` is the
    TFI accepted (D5 for what the chip sends, D4 for the chip's own side). Error kinds: "lcs" (LEN and LCS
    disagree), "dcs" (data checksum), "format" (wrong TFI, or no command code), "length" (LEN 0 or over
    MAX_LEN), "garbage" (bytes outside a frame, one per run), "timeout" (from `flush`). Errors carry the
    frame's header and code, never its parameters (they may hold a UID).
    """

    def __init__(self, tfi: int = TFI_CHIP) -> None:
        self.tfi = tfi
        self._frame = bytearray()  # from the start code 00 FF on
        self._length = 0  # LEN once the header is in, else 0
        self._total = 0  # the whole frame's size from the start code, once the header is in
        self._zero = False  # the last byte outside a frame was 00: an FF now starts a frame
        self._skipping = False  # inside a run of garbage already reported

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete, from its start code on (0 between frames)."""
        return len(self._frame)

    def reset(self) -> None:
        """Forget any partial frame without reporting it (the host flushes input before a fresh start)."""
        self._frame.clear()
        self._length = self._total = 0
        self._zero = False
        self._skipping = False

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial frame ("timeout" error if one was dropped) and start afresh."""
        held = len(self._frame)
        self.reset()
        return FrameError("timeout", f"partial frame of {held} bytes dropped after silence") if held else None

    def feed(self, data: bytes) -> list[Pn532Frame | Control | FrameError]:
        """Consume `data` and return what it completed, in order."""
        out: list[Pn532Frame | Control | FrameError] = []
        index, size = 0, len(data)
        while index < size:
            if self._length:
                # The header said how long the frame is: take its body in one slice, not byte by byte.
                chunk = data[index : index + self._total - len(self._frame)]
                self._frame += chunk
                index += len(chunk)
                if len(self._frame) == self._total:
                    self._finish(out)
                continue
            self._step(data[index], out)
            index += 1
        return out

    def _finish(self, out: list[Pn532Frame | Control | FrameError]) -> None:
        out.append(self._complete())
        self._frame.clear()
        self._length = self._total = 0
        self._zero = False

    def _step(self, byte: int, out: list[Pn532Frame | Control | FrameError]) -> None:
        if not self._frame:
            if byte == 0xFF and self._zero:
                self._frame += b"\x00\xff"
                self._skipping = False
            elif byte != 0x00 and not self._skipping:
                out.append(FrameError("garbage", "bytes outside a frame"))
                self._skipping = True
            self._zero = byte == 0x00
            return
        self._frame.append(byte)
        size = len(self._frame)
        if self._length:
            if size == self._total:
                self._finish(out)
            return
        if size == _HEADER_NORMAL:
            pair = (self._frame[2], self._frame[3])
            if pair in ((0x00, 0xFF), (0xFF, 0x00)):
                out.append(Control.ACK if pair == (0x00, 0xFF) else Control.NACK)
                self._frame.clear()
                self._zero = False
            elif pair != (0xFF, 0xFF):
                self._header(self._frame[2], self._frame[3], out)
        elif size == _HEADER_EXTENDED:
            self._header((self._frame[4] << 8) | self._frame[5], self._frame[6], out, extended=True)

    def _header(
        self, length: int, lcs: int, out: list[Pn532Frame | Control | FrameError], *, extended: bool = False
    ) -> None:
        sent = self._frame[-3:-1] if extended else self._frame[-2:-1]
        if (sum(sent) + lcs) & 0xFF:
            self._resync(FrameError("lcs", "LEN and LCS disagree", data=bytes(self._frame)), out)
        elif not 1 <= length <= MAX_LEN:
            self._resync(FrameError("length", f"LEN {length} (expected 1 to {MAX_LEN})", data=bytes(self._frame)), out)
        else:
            self._length = length
            self._total = len(self._frame) + length + 1  # TFI and data, then DCS

    def _resync(self, error: FrameError, out: list[Pn532Frame | Control | FrameError]) -> None:
        """A broken header: report it once, then look for a start code again in the bytes after the old one.

        A frame cut short by the next one is recovered this way; the bytes in between are the same fault.
        """
        out.append(error)
        rest = bytes(self._frame[2:])
        self._frame.clear()
        self._zero = False
        self._skipping = True
        for byte in rest:
            self._step(byte, out)

    def _complete(self) -> Pn532Frame | Control | FrameError:
        start = _header_size(self._frame)
        body = bytes(self._frame[start:])  # TFI, data, DCS
        header = bytes(self._frame[: start + 2])  # never beyond the code: the parameters may hold a UID
        if sum(body) & 0xFF:
            return FrameError("dcs", "data checksum mismatch", data=header)
        if body[0] == TFI_ERROR and len(body) == 2:
            return Control.ERROR
        if body[0] != self.tfi:
            return FrameError("format", f"TFI {body[0]:02X} (expected {self.tfi:02X})", data=header)
        if len(body) < 3:
            return FrameError("format", "frame without a command code", data=header)
        return Pn532Frame(code=body[1], params=body[2:-1])


def _header_size(frame: bytearray) -> int:
    return _HEADER_EXTENDED if frame[2:4] == b"\xff\xff" else _HEADER_NORMAL
