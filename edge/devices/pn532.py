"""PN532 over HSU (UART): the driver that wakes the chip, configures it and polls for type A cards.

Unlike the other readers the PN532 speaks only when spoken to, so the box drives it (serial_line.Driver):
wake-up and SAMConfiguration (leaves LowVBat), RFConfiguration MaxRetries (so an empty field answers at
once), then InListPassiveTarget every `poll_interval`. One command is in flight at a time. Pure: `feed`
records what the chip said, `poll(now)` decides what to send. Framing lives in pn532_frame; see
reference/devices.md section 3 and libnfc's libnfc/drivers/pn532_uart.c.
"""

from __future__ import annotations

from edge.devices.nfc_line import NfcRead
from edge.devices.pn532_frame import (
    ACK,
    ERROR_FRAME,
    GET_FIRMWARE_VERSION,
    IN_LIST_PASSIVE_TARGET,
    MAX_PENDING,
    NACK,
    RF_CONFIGURATION,
    SAM_CONFIGURATION,
    Control,
    FirmwareVersion,
    Pn532Frame,
    Pn532FrameParser,
    decode_firmware_version,
    decode_passive_target,
    encode_command,
    encode_reply,
)
from edge.errors import FrameError

__all__ = [
    "ACK", "ERROR_FRAME", "GET_FIRMWARE_VERSION", "IN_LIST_PASSIVE_TARGET", "MAX_PENDING", "NACK",
    "RF_CONFIGURATION", "SAM_CONFIGURATION", "Control", "FirmwareVersion", "IN_LIST_PASSIVE_TARGET_106A",
    "MAX_NACKS", "NfcRead", "Pn532Driver", "Pn532Frame", "Pn532FrameParser", "RF_MAX_RETRIES",
    "SAM_NORMAL", "WAKE_UP", "decode_firmware_version", "decode_passive_target", "encode_command",
    "encode_reply",
]

# HSU wake-up: 0x55 bytes then zeros, which give the chip time to wake before the frame's own preamble
# (Adafruit's uart.py sends 55 55 and 15 zeros; libnfc's pn532_uart_wakeup sends 55 55 00 00 00).
WAKE_UP = b"\x55\x55" + bytes(15)
# SAMConfiguration: normal mode (0x01), virtual-card timeout 0x14 (x 50 ms), use the IRQ pin.
SAM_NORMAL = encode_command(SAM_CONFIGURATION, b"\x01\x14\x01")
# RFConfiguration item 0x05 (MaxRetries): MxRtyATR 0, MxRtyPSL 1, MxRtyPassiveActivation 2, libnfc's finite
# values (pn53x_RFConfiguration__MaxRetries); the default 0xFF would make InListPassiveTarget wait for a card.
RF_MAX_RETRIES = encode_command(RF_CONFIGURATION, b"\x05\x00\x01\x02")
# InListPassiveTarget: MaxTg 1, BrTy 0 (106 kbps type A).
IN_LIST_PASSIVE_TARGET_106A = encode_command(IN_LIST_PASSIVE_TARGET, b"\x01\x00")

MAX_NACKS = 3  # retransmits asked per reply before starting over

_SAM, _RF, _READY = "sam", "rf", "ready"


class Pn532Driver:
    """Drives a PN532 on a serial line; `feed` yields `NfcRead`s (one per poll while a card is in the field).

    The agent debounces; the driver reports every sighting. Memory: at most MAX_PENDING bytes of a frame.
    Error kinds: those of `Pn532FrameParser` ("lcs", "dcs", "format", "length", "garbage", "timeout"),
    "no_response" (no ACK and reply within `reply_timeout`; once per silence), "chip_error" (the chip's
    error frame), "unexpected" (a reply that does not answer the command in flight, or a malformed one).
    Errors found by `poll` (no_response) come out of the next `feed`, `feed(b"")` included.
    """

    def __init__(self, poll_interval: float = 0.15, reply_timeout: float = 1.0) -> None:
        if poll_interval <= 0 or reply_timeout <= 0:
            raise ValueError("poll_interval and reply_timeout must be positive")
        self.poll_interval = poll_interval
        self.reply_timeout = reply_timeout
        self._parser = Pn532FrameParser()
        self._errors: list[FrameError] = []  # found by poll(), handed out by the next feed()
        self._silent = False  # "no_response" already reported for the current silence
        self._begin()

    def _begin(self) -> None:
        """State for a fresh start: wake-up and SAMConfiguration in flight, sent at an unknown time."""
        self._parser.reset()  # what the chip said before is stale (libnfc flushes input before a send)
        self._stage = _SAM
        self._in_flight: int | None = SAM_CONFIGURATION
        self._sent_at: float | None = None  # set by the next poll(): start() is not told the time
        self._nacks = 0
        self._want_nack = False
        self._restart = False
        self._next_poll_at: float | None = None

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (0 between frames)."""
        return self._parser.pending

    @property
    def answering(self) -> bool:
        """False from a "no_response" until the chip sends an intact frame again."""
        return not self._silent

    def start(self) -> bytes:
        """The wake-up and SAMConfiguration, to send as soon as the port is open."""
        self._begin()
        return WAKE_UP + SAM_NORMAL

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial frame (FrameError "timeout" if one was dropped)."""
        return self._parser.flush()

    def poll(self, now: float) -> bytes:
        """Bytes to send at time `now` (b"" for none): the next command, a NACK, or a fresh start."""
        if self._restart:
            return self._start_over(now)
        if self._in_flight is not None:
            if self._sent_at is None:
                self._sent_at = now
            if self._want_nack:
                self._want_nack = False
                self._sent_at = now
                return NACK
            if now - self._sent_at < self.reply_timeout:
                return b""
            if not self._silent:
                self._silent = True
                self._errors.append(FrameError("no_response", f"no reply within {self.reply_timeout:g}s"))
            return self._start_over(now)
        if self._stage == _RF:
            return self._send(RF_CONFIGURATION, RF_MAX_RETRIES, now)
        if self._next_poll_at is None or now >= self._next_poll_at:
            self._next_poll_at = now + self.poll_interval
            return self._send(IN_LIST_PASSIVE_TARGET, IN_LIST_PASSIVE_TARGET_106A, now)
        return b""

    def feed(self, data: bytes) -> list[NfcRead | FrameError]:
        """Consume what the chip sent; return the reads and errors it completed, in order."""
        out: list[NfcRead | FrameError] = [*self._errors]
        self._errors.clear()
        for item in self._parser.feed(data):
            if isinstance(item, FrameError):
                out.append(item)
                if item.kind in ("lcs", "dcs"):
                    self._corrupted()
            elif not self._restart:  # once starting over, the rest of the old exchange is moot
                self._silent = False  # an intact frame: the chip is there
                self._received(item, out)
        return out

    def _received(self, item: Pn532Frame | Control, out: list[NfcRead | FrameError]) -> None:
        if item is Control.ACK:
            return  # the reply decides; an ACK lost on the way changes nothing
        if item is Control.ERROR:
            self._fail(FrameError("chip_error", "the chip sent its error frame"), out)
        elif isinstance(item, Pn532Frame) and self._in_flight is not None and item.code == self._in_flight + 1:
            self._answered(item, out)
        else:
            what = "a NACK" if item is Control.NACK else "a reply to no command in flight"
            self._fail(FrameError("unexpected", f"the chip sent {what}"), out)

    def _answered(self, frame: Pn532Frame, out: list[NfcRead | FrameError]) -> None:
        self._in_flight = None
        self._nacks = 0
        self._want_nack = False
        if self._stage == _SAM:
            self._stage = _RF
        elif self._stage == _RF:
            self._stage = _READY
        else:
            try:
                read = decode_passive_target(frame)
            except ValueError as exc:
                self._fail(FrameError("unexpected", f"malformed InListPassiveTarget reply: {exc}"), out)
                return
            if read is not None:
                out.append(read)

    def _corrupted(self) -> None:
        """A frame with a bad checksum: ask for it again (the chip resends its last reply), a few times."""
        if self._in_flight is None or self._restart:
            return
        if self._nacks < MAX_NACKS:
            self._nacks += 1
            self._want_nack = True
        else:
            self._restart = True

    def _fail(self, error: FrameError, out: list[NfcRead | FrameError]) -> None:
        out.append(error)
        self._restart = True

    def _send(self, command: int, frame: bytes, now: float) -> bytes:
        self._in_flight = command
        self._sent_at = now
        self._nacks = 0
        return frame

    def _start_over(self, now: float) -> bytes:
        self._begin()
        self._sent_at = now
        return WAKE_UP + SAM_NORMAL
