"""A PN532 played from the chip's side, for the simulator and the tests: host bytes in, chip bytes out.

Pure: no port, no clock. It answers what the box's driver sends (SAMConfiguration, RFConfiguration,
GetFirmwareVersion, InListPassiveTarget at 106 kbps type A) with an ACK and the reply, resends its last
reply on a NACK, and sleeps (ignores everything) until the HSU wake-up, as the real chip does in LowVBat.
"""

from __future__ import annotations

from edge.devices.nfc_line import UID_LENGTHS
from edge.devices.pn532_frame import (
    ACK,
    ERROR_FRAME,
    GET_FIRMWARE_VERSION,
    IN_LIST_PASSIVE_TARGET,
    RF_CONFIGURATION,
    SAM_CONFIGURATION,
    TFI_HOST,
    Control,
    Pn532Frame,
    Pn532FrameParser,
    encode_reply,
)

WAKE_BYTE = 0x55
FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # IC PN532, version 1.6, ISO 14443 A and B plus ISO 18092


class Pn532Chip:
    """The chip's side of an HSU link, with one card (or none) in its field and a few faults to inject.

    `silent = True` is an unplugged chip: it answers nothing and, like a chip losing power, needs the
    wake-up again once `silent` is back to False.
    """

    def __init__(self) -> None:
        self._silent = False
        self.awake = False
        self.commands: list[int] = []  # every command code it accepted, in order, for tests to inspect
        self._parser = Pn532FrameParser(tfi=TFI_HOST)
        self._card: tuple[bytes, int, int] | None = None
        self._last_reply = b""
        self._corrupt = False

    @property
    def silent(self) -> bool:
        """True while the chip answers nothing (unplugged)."""
        return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        if value:
            self.awake = False  # power lost: back in LowVBat until the next wake-up
            self._parser.reset()
        self._silent = value

    def present(self, uid: bytes | None, atqa: int = 0x0004, sak: int = 0x08) -> None:
        """Put a card with `uid` (4, 7 or 10 bytes) in the field, or take it away with None."""
        if uid is None:
            self._card = None
            return
        if len(uid) not in UID_LENGTHS:
            raise ValueError(f"an NFC UID has 4, 7 or 10 bytes, not {len(uid)}")
        if not 0 <= atqa <= 0xFFFF or not 0 <= sak <= 0xFF:
            raise ValueError("ATQA is two bytes and SAK one")
        self._card = (bytes(uid), atqa, sak)

    def corrupt_next_reply(self) -> None:
        """Send the next reply with a bad DCS, once (a NACK then gets the intact one)."""
        self._corrupt = True

    def feed(self, host_bytes: bytes) -> bytes:
        """What the chip sends back for `host_bytes` (b"" when it has nothing to say)."""
        if self._silent:
            return b""
        if not self.awake:
            wake = host_bytes.find(bytes([WAKE_BYTE]))
            if wake < 0:
                return b""
            self.awake = True
            host_bytes = host_bytes[wake:]
        out = bytearray()
        for item in self._parser.feed(host_bytes):
            if item is Control.NACK:
                out += self._last_reply
            elif isinstance(item, Pn532Frame):
                out += ACK + self._reply(item)
            # An ACK from the host aborts a command; ours finish at once. Broken frames get no answer.
        return bytes(out)

    def _reply(self, frame: Pn532Frame) -> bytes:
        self.commands.append(frame.code)
        if frame.code == GET_FIRMWARE_VERSION:
            reply = encode_reply(GET_FIRMWARE_VERSION, FIRMWARE)
        elif frame.code in (SAM_CONFIGURATION, RF_CONFIGURATION):
            reply = encode_reply(frame.code)
        elif frame.code == IN_LIST_PASSIVE_TARGET and frame.params[1:2] == b"\x00":
            reply = encode_reply(IN_LIST_PASSIVE_TARGET, self._targets())
        else:
            reply = ERROR_FRAME
        self._last_reply = reply
        if self._corrupt:
            self._corrupt = False
            reply = reply[:-2] + bytes([reply[-2] ^ 0xFF]) + reply[-1:]
        return reply

    def _targets(self) -> bytes:
        if self._card is None:
            return b"\x00"
        uid, atqa, sak = self._card
        return bytes([1, 1, atqa >> 8, atqa & 0xFF, sak, len(uid)]) + uid
