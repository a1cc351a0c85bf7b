"""Magnetic stripe readers on serial lines (ISO/IEC 7813 tracks 1 and 2 sent as ASCII), pure and incremental.

A reader sends a line per swipe: MagTek puts every track on one line (`%T1?;T2?+T3?` then CR), ID TECH one
track per line, and some readers wrap a line in STX ... ETX or end it with DLE. Track 1 starts `%`, track 2
`;`, track 3 `+` (skipped, never kept); each ends at its first `?`. The box keeps the PAN and nothing else
of the track data (PCI). See reference/devices.md sections 1 and 6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edge.devices.lines import LineSplitter
from edge.errors import FrameError
from protocol.cards import is_payment_number, luhn_valid, mask_pan

MAX_LINE = 256  # a MagTek line with all three tracks and their LRCs is about 230 bytes
MAX_PAN = 19
MAX_NAME = 26

# Digits could be a card number, letters a cardholder's name: an error's bytes keep only their shape.
_DIGIT_MASK = bytes.maketrans(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", b"*" * 10 + b"#" * 52)
_SENTINELS = {"%": 1, ";": 2, "+": 3}
_FIRST_SENTINEL = re.compile(r"[%;+]")
# Parity-stripped character values: track 1 is 6 bits above 0x20, tracks 2 and 3 are 4 bits above 0x30.
_CHARSET = {1: (0x20, 0x3F), 2: (0x30, 0x0F), 3: (0x30, 0x0F)}
# MagTek's sign-on at power-up, `210888xxAnn` (part number, revision, firmware). Only this shape is a
# notice: a reader set to strip sentinels sends bare numbers and names, which must stay errors (masked).
_SIGN_ON = re.compile(r"\d{6}[0-9A-Za-z]{2}[A-Z][0-9A-Za-z]{2}")
_TRACK1_NAME = re.compile(r"[\x20-\x5f]*")  # the track 1 character set: upper case only


def _mask(data: bytes) -> bytes:
    return data.translate(_DIGIT_MASK)


def lrc_char(track: int, text: str) -> str:
    """The LRC character a reader sends after `text` (start sentinel through end sentinel) of `track` (1-3)."""
    base, mask = _CHARSET[track]
    value = 0
    for char in text:
        value ^= (ord(char) - base) & mask
    return chr(value + base)


@dataclass(frozen=True, slots=True)
class MagstripeRead:
    """One swipe: the PAN (never shown by repr/str/fields) and what a technician may see about it."""

    pan: str = field(repr=False)
    payment: bool
    tracks: tuple[int, ...]
    format_code: str | None

    @property
    def masked_pan(self) -> str:
        """The PAN as it may be shown or logged."""
        return mask_pan(self.pan)

    def fields(self) -> dict[str, object]:
        """JSON-safe fields for a technician's tool; never the PAN."""
        return {"masked_pan": self.masked_pan, "payment": self.payment, "tracks": list(self.tracks),
                "format_code": self.format_code, "pan_length": len(self.pan)}

    def __repr__(self) -> str:
        return (f"MagstripeRead(masked_pan={self.masked_pan!r}, payment={self.payment!r}, "
                f"tracks={self.tracks!r}, format_code={self.format_code!r})")

    def __str__(self) -> str:
        return self.masked_pan


@dataclass(frozen=True, slots=True)
class ReaderNotice:
    """A line from the reader that is not a card, such as MagTek's sign-on line at power-up."""

    text: str

    def fields(self) -> dict[str, object]:
        """The line as the reader sent it."""
        return {"text": self.text}


MagstripeItem = MagstripeRead | ReaderNotice | FrameError


def encode_swipe(
    pan: str,
    *,
    name: str = "",
    expiry: str = "3012",
    service_code: str = "201",
    tracks: tuple[int, ...] = (1, 2),
    lrc: bool = False,
    end: bytes = b"\r",
    failed: tuple[int, ...] = (),
) -> bytes:
    """What a MagTek-style reader sends for a swipe: `tracks` on one line, `failed` ones as `E`, then `end`.

    Track 3, which the box ignores, carries the PAN and expiry in track 2's character set.
    """
    if not pan.isascii() or not pan.isdigit() or len(pan) > MAX_PAN:
        raise ValueError(f"a PAN is 1 to {MAX_PAN} digits")
    if len(name) > MAX_NAME or not _TRACK1_NAME.fullmatch(name) or any(c in "%^?" for c in name):
        raise ValueError(f"a name is at most {MAX_NAME} upper-case track 1 characters, without % ^ ?")
    if len(expiry) != 4 or not expiry.isascii() or not expiry.isdigit():
        raise ValueError("an expiry is 4 digits, YYMM")
    if len(service_code) != 3 or not service_code.isascii() or not service_code.isdigit():
        raise ValueError("a service code is 3 digits")
    if not tracks or list(tracks) != sorted(set(tracks)) or not set(tracks) <= {1, 2, 3}:
        raise ValueError("tracks are some of 1, 2, 3, in order, each once")
    if not set(failed) <= set(tracks):
        raise ValueError("failed tracks must be among the tracks sent")
    if not end or any(byte not in b"\r\n\x03\x10" for byte in end):
        raise ValueError("a line ends with CR, LF, ETX or DLE bytes")
    data = {1: f"B{pan}^{name}^{expiry}{service_code}", 2: f"{pan}={expiry}{service_code}", 3: f"{pan}={expiry}"}
    out = []
    for track in tracks:
        sentinel = "%;+"[track - 1]
        if track in failed:
            out.append(f"{sentinel}E?")  # the reader sends no LRC of its own over a failed track
            continue
        text = f"{sentinel}{data[track]}?"
        out.append(text + (lrc_char(track, text) if lrc else ""))
    return "".join(out).encode("ascii") + end


class MagstripeParser:
    """Bytes in, one `MagstripeRead`, `ReaderNotice` or `FrameError` per line out; never raises.

    Holds at most MAX_LINE (256) bytes. A line ends at CR, LF, STX, ETX or DLE; empty lines are ignored, so
    CRLF, STX ... ETX CR and a trailing DLE all make one line end. Error kinds, each with `data` = the line
    with every digit masked as `*`:
      unreadable  every track 1 or 2 on the line is `E` (or empty)
      partial     a track with no end sentinel (partial swipe, or a line cut short)
      format      bad layout, a non-digit in a PAN or a PAN over 19 digits, tracks 1 and 2 disagreeing,
                  a line with no start sentinel that is not a sign-on line (once per run of such lines)
      garbage     bytes before the first start sentinel of a line with tracks (skipped; the line's item follows)
      lrc         with lrc=True, a track 1 or 2 LRC missing or wrong
      luhn        a payment card whose PAN fails the Luhn check
      length      a line over MAX_LINE bytes (dropped up to its end)
      timeout     flush() while a partial line was held

    The read comes from track 2 when it read well, else from track 1; a track the reader says it read (not
    `E`) but that is malformed, or a track 1 (format B) and track 2 with different PANs, refuses the whole
    line: the two tracks come from one card, so either may be the corrupt one and guessing could credit the
    wrong card. MagTek's own example `%B123^...?;112222333333444444444?` (a 21-digit track 2) is so refused.
    Track 1 format codes other than B are proprietary (gift and loyalty cards): their layout is only read
    when track 2 failed. A line holding only track 3 yields nothing (ID TECH sends each track on a line).
    With lrc=True an LRC follows every track that read; one after an `E` track is taken but not checked.
    An LRC error on any track refuses the line: the serial link, not the stripe, corrupted it.
    A swipe read twice (or by ID TECH as two lines) gives two reads: the agent deduplicates, not the parser.
    """

    def __init__(self, lrc: bool = False) -> None:
        self._lrc = lrc
        # STX, ETX, DLE, CR, LF: each ends a line.
        self._lines = LineSplitter(MAX_LINE, ends=b"\x02\x03\x10\r\n", mask=_mask,
                                   length_detail=f"line longer than {MAX_LINE} bytes dropped")
        self._garbage_run = False  # the previous line was sentinel-less junk, already reported

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet ended (at most MAX_LINE)."""
        return self._lines.pending

    def flush(self) -> FrameError | None:
        """The line went silent: drop a partial line ("timeout" error if one was held) and start afresh."""
        self._garbage_run = False
        return self._lines.flush()

    def feed(self, data: bytes) -> list[MagstripeItem]:
        """Consume `data` and return what it completed, in order."""
        out: list[MagstripeItem] = []
        for line in self._lines.feed(data):
            if isinstance(line, FrameError):  # an over-long line, dropped: it ends a run of junk lines
                self._garbage_run = False
                out.append(line)
            else:
                out.extend(self._parse_line(line))
        return out

    def _parse_line(self, raw: bytes) -> list[MagstripeItem]:
        text = raw.decode("latin-1")  # one char per byte; anything outside ASCII fails the checks below
        if not text.strip(" \t"):
            return []
        first = _FIRST_SENTINEL.search(text)
        if first is None:
            return self._no_sentinel(text.strip(" \t"), raw)
        self._garbage_run = False
        out: list[MagstripeItem] = []
        if text[: first.start()].strip(" \t"):
            out.append(FrameError("garbage", "bytes before the first start sentinel skipped",
                                  _mask(raw[: first.start()])))
        result = self._parse_tracks(text, first.start())
        if isinstance(result, str):
            kind, _, detail = result.partition(":")
            out.append(FrameError(kind, detail, _mask(raw)))
        elif result is not None:
            out.append(result)
        return out

    def _no_sentinel(self, body: str, raw: bytes) -> list[MagstripeItem]:
        if _SIGN_ON.fullmatch(body):
            self._garbage_run = False
            return [ReaderNotice(body)]
        if self._garbage_run:
            return []
        self._garbage_run = True
        return [FrameError("format", "line without a start sentinel", _mask(raw))]

    def _parse_tracks(self, text: str, pos: int) -> MagstripeRead | str | None:
        """The read of a line, None for a line with only track 3, or "kind:detail" for an error."""
        tracks: dict[int, str | None] = {}  # None: the reader sent `E` (or nothing) for it
        last = 0
        while pos < len(text):
            track = _SENTINELS.get(text[pos])
            if track is None:
                return f"format:unexpected byte after track {last} (does the reader send an LRC?)"
            if track in tracks:
                return f"format:track {track} appears twice"
            stop = text.find("?", pos + 1)
            if stop < 0:
                return f"partial:track {track} has no end sentinel"
            data = text[pos + 1 : stop]
            failed = data in ("", "E")
            if track != 3 and not all(" " <= char <= "~" for char in data):
                return f"format:a control or non-ASCII byte in track {track}"
            start, pos, last = pos, stop + 1, track
            tracks[track] = None if failed else data
            if not self._lrc:
                continue
            if failed or track == 3:
                # Not checked: ISO defines no LRC over `E`, and track 3 layouts vary.
                if pos < len(text) and ((track == 3 and not failed) or text[pos] not in _SENTINELS):
                    pos += 1
            elif pos >= len(text):
                return f"lrc:no LRC after track {track}"
            elif text[pos] != lrc_char(track, text[start : stop + 1]):
                return f"lrc:track {track} LRC does not match"
            else:
                pos += 1
        if 1 not in tracks and 2 not in tracks:
            return None
        return self._read(tracks)

    def _read(self, tracks: dict[int, str | None]) -> MagstripeRead | str:
        track1, track2 = tracks.get(1), tracks.get(2)
        if track1 is None and track2 is None:
            return "unreadable:no track read"
        format_code = pan1 = None
        if track1 is not None:
            format_code = track1[0]
            if not "A" <= format_code <= "Z":
                return "format:track 1 has no format code"
            parts = track1[1:].split("^", 2)
            problem = _pan_problem(1, parts[0])
            if len(parts) < (3 if format_code == "B" else 2):
                problem = "format:track 1 lacks its field separators"
            if format_code == "B" and problem:
                return problem
            if track2 is None and problem:
                return f"{problem}, in format {format_code}"
            pan1 = None if problem else parts[0]
        pan = pan1
        if track2 is not None:
            pan = track2.split("=", 1)[0]
            problem = _pan_problem(2, pan)
            if problem:
                return problem
            if format_code == "B" and pan1 != pan:
                return "format:tracks 1 and 2 carry different card numbers"
        if pan is None:  # unreachable: a track that read either gave a PAN or returned an error above
            return "format:no card number on the line"
        # By the number alone (protocol.cards), as the card id decides: the same card is a payment card
        # whichever track read, and a typed number is classified the same way.
        payment = is_payment_number(pan)
        if payment and not luhn_valid(pan):
            return "luhn:payment card number fails the Luhn check"
        return MagstripeRead(pan, payment, tuple(sorted(t for t, data in tracks.items() if data)), format_code)


def _pan_problem(track: int, pan: str) -> str:
    """"format:..." when `pan` is not 1 to 19 digits, else ""."""
    if not pan:
        return f"format:track {track} has no card number"
    if not pan.isascii() or not pan.isdigit():
        return f"format:a non-digit in the card number of track {track}"
    if len(pan) > MAX_PAN:
        return f"format:track {track} card number has {len(pan)} digits, over {MAX_PAN}"
    return ""
