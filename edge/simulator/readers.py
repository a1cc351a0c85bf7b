"""Virtual card readers of every family, played on pseudo-terminals, with the faults real lines have.

Each simulated member carries one card per family (a 125 kHz fob, an NFC card, a magnetic loyalty card and
a QR code in an app); a reader presents the one it takes. Faults: line noise, partial frames, damaged
frames (a bad checksum, parity, LRC or check digit, so the box can tell), and the port unplugged and
plugged back. A customer whose card did not read presents it again, as at a real till.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from edge.devices import barcode, magstripe, nfc_line, rdm6300, wiegand
from edge.simulator.pn532_chip import Pn532Chip
from edge.simulator.pty import PtyEnd, create_pty_link

logger = logging.getLogger(__name__)

KINDS = ("rdm6300", "magstripe", "nfc-line", "pn532", "wiegand", "barcode")


def _luhn_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # doubled: these sit at odd places once the check digit is appended
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class SimCard:
    """One member's cards, one per family."""

    fob: int
    """40 bits of an EM4100 fob (version byte and 32-bit tag), as an RDM6300 reads it."""
    uid: bytes
    """A 7-byte NFC UID (NTAG and DESFire cards have 7)."""
    loyalty: str
    """A magnetic loyalty card number: 16 digits starting 9 (never a payment card), Luhn-valid."""
    member_code: str
    """The member QR code: M, 9 digits and a Luhn check digit."""

    @property
    def fob_hex(self) -> str:
        return f"{self.fob:010X}"


def member_cards(seed: int | None, members: int) -> list[SimCard]:
    """The simulated members' cards, distinct, the same for the same seed."""
    rng = random.Random(f"marquee-members-{seed}" if seed is not None else secrets.randbits(64))
    cards: dict[int, SimCard] = {}
    while len(cards) < members:
        fob = rng.choice((0x1A, 0x3C, 0x67, 0x84)) << 32 | rng.getrandbits(32)
        if fob & 0xFFFFFF in cards:  # distinct even to a Wiegand-26 reader, which sees 24 bits
            continue
        number = f"{rng.randrange(10**8, 10**9)}"
        # MII 9 (not a payment card); Luhn-valid, since readers send track 1 with format code B.
        loyalty = f"9{rng.randrange(10**13, 10**14)}"
        cards[fob & 0xFFFFFF] = SimCard(
            fob=fob, uid=bytes([0x04]) + rng.randbytes(6), loyalty=loyalty + _luhn_digit(loyalty),
            member_code=f"M{number}{_luhn_digit(number)}")
    return list(cards.values())


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """How the real reader at this port is configured (mirrors the box's reader settings)."""

    lrc: bool = False
    reverse_uid: bool = False
    wiegand_output: str = "bits"
    wiegand_bits: int = 26


class VirtualReader:
    """A card reader of `kind` at `link`; `present` plays one presentation, faults included."""

    def __init__(self, kind: str, link: Path, *, rng: random.Random, options: ReaderOptions | None = None,
                 pace: float = 1.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown reader kind {kind!r}")
        self.kind = kind
        self.link = Path(link)
        self.options = options or ReaderOptions()
        self._rng = rng
        self._pace = pace
        self._end: PtyEnd | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.chip = Pn532Chip() if kind == "pn532" else None
        self._chip_thread: threading.Thread | None = None
        self.faults = 0
        self.frames_sent = 0  # clean frames (each repeat of a resting fob counts)

    @property
    def plugged(self) -> bool:
        return self._end is not None

    def open(self) -> None:
        """Create the pty link (plug the reader in)."""
        with self._lock:
            if self._end is None:
                self._end = create_pty_link(self.link)
        if self.chip is not None and self._chip_thread is None:
            self._stop.clear()
            self._chip_thread = threading.Thread(target=self._serve_chip, name=f"pn532-{self.link.name}",
                                                 daemon=True)
            self._chip_thread.start()

    def unplug(self) -> None:
        """Hang the line up and remove the link, as when a USB reader is pulled out."""
        with self._lock:
            end, self._end = self._end, None
        if end is not None:
            end.close()
        if self.chip is not None:
            self.chip.silent = True  # power lost: it needs the wake-up again

    def replug(self) -> None:
        """Plug it back in (a new pty at the same link)."""
        if self.chip is not None:
            self.chip.silent = False
        self.open()

    def close(self) -> None:
        """Stop for good."""
        self._stop.set()
        if self._chip_thread is not None:
            self._chip_thread.join(2)
            self._chip_thread = None
        self.unplug()

    def present(self, card: SimCard, *, fault_rate: float, wait: threading.Event) -> str | None:
        """Present `card`; with probability `fault_rate` a fault first (then the clean read). The fault's name."""
        fault = None
        if fault_rate > 0 and self._rng.random() < fault_rate:
            fault = self._rng.choice(("noise", "partial", "damaged"))
            self.faults += 1
            self._fault(fault, card, wait)
        self._present_clean(card, wait)
        return fault

    # ------------------------------------------------------------ the families

    def frame(self, card: SimCard) -> bytes:
        """The bytes this reader sends for `card` (one frame or line; PN532 has none: it answers polls)."""
        opts = self.options
        if self.kind == "rdm6300":
            return rdm6300.encode_frame(card.fob_hex)
        if self.kind == "magstripe":
            return magstripe.encode_swipe(card.loyalty, tracks=(1, 2), lrc=opts.lrc)
        if self.kind == "nfc-line":
            return nfc_line.encode_uid_line(card.uid, reverse=opts.reverse_uid)
        if self.kind == "wiegand":
            bits = 26 if opts.wiegand_bits == 26 else 34
            data = card.fob & (0xFFFFFF if bits == 26 else 0xFFFFFFFF)
            return wiegand.encode_wiegand(data >> 16, data & 0xFFFF, bits=bits, output=opts.wiegand_output)  # type: ignore[arg-type]
        if self.kind == "barcode":
            return barcode.encode_scan(card.member_code)
        raise ValueError("a PN532 answers the box's polls; it sends no frame of its own")

    def _present_clean(self, card: SimCard, wait: threading.Event) -> None:
        if self.chip is not None:
            self.chip.present(card.uid)
            self.frames_sent += 1
            wait.wait(max(0.4, 0.8 * self._pace))  # in the field for a few polls
            self.chip.present(None)
            return
        frame = self.frame(card)
        repeats = self._rng.randint(2, 4) if self.kind == "rdm6300" else 1  # the module repeats while in the field
        for _ in range(repeats):
            self._write(frame)
            self.frames_sent += 1
            wait.wait(0.05 * self._pace)

    def _fault(self, fault: str, card: SimCard, wait: threading.Event) -> None:
        if self.chip is not None:
            if fault == "damaged":
                self.chip.corrupt_next_reply()
            return  # noise and partial frames on a PN532 line come from the chip's own replies: skip
        frame = self.frame(card)
        line_based = self.kind != "rdm6300"
        if fault == "noise":
            garbage = bytes(self._rng.choice(b"\x00\x7f\x80\x95\xaa\xfe\xff") for _ in range(self._rng.randint(1, 8)))
            self._write(garbage + (b"\r\n" if line_based else b""))
        elif fault == "partial":
            self._write(frame[: max(1, len(frame) // 2)])
            wait.wait(0.7)  # past the reader's inter-byte timeout: the box drops the partial frame
        else:
            self._write(self._damaged(frame, card))
            wait.wait(0.05)

    def _damaged(self, frame: bytes, card: SimCard) -> bytes:
        """The frame with a fault its family detects: checksum, parity, LRC, Luhn or a non-hex character."""
        if self.kind == "rdm6300":
            return frame[:11] + (b"0" if frame[11:12] != b"0" else b"1") + frame[12:]  # wrong checksum digit
        if self.kind == "wiegand" and self.options.wiegand_output == "bits":
            flip = frame.index(b"1") if b"1" in frame else 0
            return frame[:flip] + (b"0" if frame[flip:flip + 1] == b"1" else b"1") + frame[flip + 1:]  # parity
        if self.kind == "barcode":
            wrong = str((int(card.member_code[-1]) + 1) % 10)
            return barcode.encode_scan(card.member_code[:-1] + wrong)  # fails the Luhn check digit
        # Line formats without a check of their own: a character no such line may hold.
        cut = self._rng.randint(1, max(1, len(frame.rstrip(b"\r\n")) - 1))
        return frame[:cut] + b"#" + frame[cut + 1:]

    def _write(self, data: bytes) -> None:
        with self._lock:
            end = self._end
        if end is not None:
            end.write(data)

    def _serve_chip(self) -> None:
        assert self.chip is not None
        while not self._stop.is_set():
            with self._lock:
                end = self._end
            if end is None:
                self._stop.wait(0.05)
                continue
            try:
                host = end.read_available(0.05)
            except OSError:
                continue
            if host:
                reply = self.chip.feed(host)
                if reply:
                    self._write(reply)
