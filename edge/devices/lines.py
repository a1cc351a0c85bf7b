"""The line splitting every line-based reader shares (barcode, Wiegand converter, NFC hex line, magstripe).

Pure and incremental: bytes in, completed lines out, whatever the chunking. It knows line ends, a length
limit and how to mask a line in an error, nothing of what a line means; each reader's parser decodes lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edge.errors import FrameError


class LineSplitter:
    """Bytes in, completed lines (and "length" errors) out, in order; never raises, holds at most `max_line` bytes.

    A line ends at any byte of `ends` (CR or LF by default). The end byte is removed and empty lines are
    dropped, so CRLF is one end even when split across feeds, and so are STX ... ETX CR and the like.
    `wrap` (two bytes, opener and closer, e.g. b"\\x02\\x03") makes the closer end a line too, but only a
    line that began with the opener; the opener stays in the line for the parser to see, the closer goes.

    A line over `max_line` bytes (end excluded) is one FrameError("length", `length_detail`) as soon as its
    excess byte arrives, with `data` = `mask` of its first `max_line` bytes; the rest of it, up to its end,
    is skipped. `mask` is given at most FrameError.MAX_DATA bytes (all an error keeps), so it must mask byte
    by byte, as every reader's does: a masked prefix is then the prefix of the masked line.
    """

    __slots__ = ("max_line", "_split", "_opener", "_closer", "_mask", "_length_detail", "_keep", "_held",
                 "_skipping", "_skip_wrapped")

    def __init__(
        self,
        max_line: int,
        *,
        ends: bytes = b"\r\n",
        wrap: bytes = b"",
        mask: Callable[[bytes], bytes],
        length_detail: str = "",
    ) -> None:
        if max_line < 1:
            raise ValueError("max_line is at least 1")
        if not ends:
            raise ValueError("at least one byte must end a line")
        if wrap and (len(wrap) != 2 or wrap[0] == wrap[1] or wrap[0] in ends or wrap[1] in ends):
            raise ValueError("wrap is two distinct bytes, opener and closer, neither of them a line end")
        self.max_line = max_line
        self._split = re.compile(b"[" + re.escape(ends) + b"]").split
        self._opener, self._closer = (wrap[0], wrap[1]) if wrap else (-1, -1)  # -1: lines are not wrapped
        self._mask = mask
        self._length_detail = length_detail or f"line longer than {max_line} bytes"
        self._keep = min(max_line, FrameError.MAX_DATA)  # bytes of an over-long line its error shows
        self._held = bytearray()  # the line begun and not yet ended
        self._skipping = False  # in the rest of an over-long line, already reported
        self._skip_wrapped = False  # the line being skipped began with the opener, so the closer ends it

    @property
    def pending(self) -> int:
        """Bytes held for a line not yet ended (at most `max_line`)."""
        return len(self._held)

    def flush(self) -> FrameError | None:
        """The line went silent: drop a partial line ("timeout" error if one was held) and start afresh."""
        held = bytes(self._held)
        self._held.clear()
        self._skipping = self._skip_wrapped = False
        if not held:
            return None
        return FrameError("timeout", f"partial line of {len(held)} bytes dropped after silence",
                          data=self._mask(held[: FrameError.MAX_DATA]))

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Consume `data`; return the lines it completed (ends removed, none empty) and "length" errors, in order."""
        pieces = self._split(data)  # pieces[0] ends the line held from before, pieces[-1] begins the next one
        closer = self._closer
        wrapped = closer >= 0 and closer in data  # else no closer ends a line in `data`
        if len(pieces) == 1 and not wrapped:  # no end at all: the line goes on (bytes trickling in)
            if data and not self._skipping:
                if len(self._held) + len(data) > self.max_line:
                    return self._overflow(data, [])
                self._held += data
            return []
        out: list[bytes | FrameError] = []
        tail = pieces.pop()
        if pieces:
            first = self._unwrap(pieces[0], out) if wrapped else pieces[0]
            if self._skipping:
                self._skipping = False
            else:
                if self._held:
                    self._held += first
                    first = bytes(self._held)
                    self._held.clear()
                if first:
                    self._line(first, out)
            del pieces[0]  # whole lines from here on: nothing held or skipped before each
            if not wrapped and (not pieces or max(map(len, pieces)) <= self.max_line):
                out.extend(filter(None, pieces))  # the usual case, at C speed; empty lines dropped
            else:
                for piece in pieces:
                    if wrapped:
                        piece = self._unwrap(piece, out)
                    if piece:
                        self._line(piece, out)
        if wrapped:
            tail = self._unwrap(tail, out)
        if tail and not self._skipping:
            if len(self._held) + len(tail) > self.max_line:
                return self._overflow(tail, out)
            self._held += tail
        return out

    def _overflow(self, more: bytes, out: list[bytes | FrameError]) -> list[bytes | FrameError]:
        """`more` bytes take the held line over `max_line`: report it, and skip the rest of it."""
        held = self._held
        self._skip_wrapped = (held[0] if held else more[0]) == self._opener
        self._too_long(bytes(held[: self._keep]) + more[: self._keep], out)
        held.clear()
        self._skipping = True
        return out

    def _line(self, line: bytes, out: list[bytes | FrameError]) -> None:
        """A whole non-empty line, end removed."""
        if len(line) > self.max_line:
            self._too_long(line, out)
        else:
            out.append(line)

    def _too_long(self, line: bytes, out: list[bytes | FrameError]) -> None:
        out.append(FrameError("length", self._length_detail, data=self._mask(line[: self._keep])))

    def _unwrap(self, piece: bytes, out: list[bytes | FrameError]) -> bytes:
        """End the wrapped lines of `piece` (bytes with no line end) at their closers; return the rest of it."""
        opener, closer = self._opener, self._closer
        pos = 0
        while True:
            if self._skipping:
                wrapped = self._skip_wrapped
            elif self._held:
                wrapped = self._held[0] == opener
            else:
                wrapped = pos < len(piece) and piece[pos] == opener
            stop = piece.find(closer, pos) if wrapped else -1
            if stop < 0:
                return piece[pos:] if pos else piece
            if self._skipping:
                self._skipping = False
            else:
                line = bytes(self._held) + piece[pos:stop]
                self._held.clear()
                if line:
                    self._line(line, out)
            pos = stop + 1
