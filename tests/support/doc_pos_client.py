"""A till-side client for the Marquee POS line, written from docs/pos-protocol.md alone.

Nothing here was taken from the box's code (edge/, protocol/, cloud/): every rule below is quoted from,
or derived from, the page a POS vendor is given. Where the page leaves room, the choice made is written
next to the code ("doc:" comments) so that the tests can check the page, not the implementation.

What the page tells a till to do (sections 2, 3 and 6):

- frame a request as ``STX payload ETX LRC``, the LRC being the XOR of every byte after STX up to and
  including ETX; the payload is compact UTF-8 JSON of at most 4096 bytes with no byte below 0x20;
- send each frame in one go;
- wait at most 500 ms, after it finished sending, for an answer frame to have fully arrived; on silence
  sell without loyalty ("fail open") and do not resend;
- on NAK resend the same frame, byte for byte, at most 3 times, then give up (and it may send EOT);
- after a good answer it may send ACK; after an answer with a bad LRC it may send NAK once, within the
  same 500 ms budget;
- treat any late answer for another ``sale_id`` as void.

The client works on a file descriptor (an ``int``, or anything with ``fileno()``, such as the master side
of a pseudo-terminal or a pyserial port) with ``os.read``/``os.write`` and ``select``.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

STX = 0x02
ETX = 0x03
EOT = 0x04
ACK = 0x06
NAK = 0x15

MAX_PAYLOAD = 4096
ANSWER_TIMEOUT_S = 0.5
MAX_RESENDS = 3

_UNSET: Any = object()


class HasFileno(Protocol):
    def fileno(self) -> int: ...


# --------------------------------------------------------------------------------------------- framing


def lrc(payload: bytes) -> int:
    """The doc's LRC: XOR of every byte after STX, up to and including ETX (PP791, starting from 0)."""
    value = 0
    for b in payload + bytes([ETX]):
        value ^= b
    return value


def check_payload(payload: bytes) -> None:
    """Raise ValueError if `payload` breaks the doc's rules for what a till may send."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD}")
    bad = [b for b in payload if b < 0x20]
    if bad:
        raise ValueError(f"payload contains control byte(s) {bytes(bad).hex(' ')}")


def build_frame(payload: bytes, *, check: bool = True) -> bytes:
    """``STX payload ETX LRC``. `check=False` builds frames the doc forbids, for line tests."""
    if check:
        check_payload(payload)
    return bytes([STX]) + payload + bytes([ETX, lrc(payload)])


def encode_request(request: Mapping[str, Any]) -> bytes:
    """Compact, one-line UTF-8 JSON. JSON escapes control characters, so no byte below 0x20 appears."""
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_HEX_LINE = re.compile(r"^[0-9a-fA-F]{4}\s+((?:[0-9a-fA-F]{2}\s)*[0-9a-fA-F]{2})")


def parse_hexdump(text: str) -> bytes:
    """Bytes of a hexdump as printed in the doc (``0000  02 7b 22 ...   |.{"...|``)."""
    out = bytearray()
    for line in text.splitlines():
        m = _HEX_LINE.match(line.strip())
        if m:
            out += bytes.fromhex(m.group(1))
    return bytes(out)


# ----------------------------------------------------------------------------------------- reception


@dataclass(frozen=True)
class Received:
    """One thing read from the line: a single control byte, or a complete frame."""

    kind: Literal["control", "frame"]
    control: int | None = None
    payload: bytes = b""
    lrc: int | None = None

    @property
    def lrc_ok(self) -> bool:
        return self.kind == "frame" and self.lrc == lrc(self.payload)


class FrameReader:
    """Splits bytes from the box into control bytes and frames, by the doc's rules (section 2).

    - Between frames, ACK, NAK and EOT are single-byte controls; other bytes are ignored.
    - STX starts a frame; an STX inside a payload abandons the partial frame and starts a new one.
    - The byte after ETX is the LRC, whatever its value.
    - A frame longer than 4096 bytes, or with a control byte in its payload, is dropped through its LRC.
    """

    def __init__(self) -> None:
        self._state: Literal["idle", "payload", "drop", "lrc", "drop_lrc"] = "idle"
        self._buf = bytearray()
        self.ignored = 0

    def feed(self, data: bytes) -> list[Received]:
        out: list[Received] = []
        for b in data:
            if self._state == "idle":
                if b == STX:
                    self._state, self._buf = "payload", bytearray()
                elif b in (ACK, NAK, EOT):
                    out.append(Received("control", control=b))
                else:
                    self.ignored += 1
            elif self._state in ("payload", "drop"):
                if b == STX:
                    self.ignored += 1
                    self._state, self._buf = "payload", bytearray()
                elif b == ETX:
                    self._state = "lrc" if self._state == "payload" else "drop_lrc"
                elif self._state == "payload" and (b < 0x20 or len(self._buf) >= MAX_PAYLOAD):
                    self.ignored += 1
                    self._state = "drop"
                elif self._state == "payload":
                    self._buf.append(b)
            elif self._state == "lrc":
                out.append(Received("frame", payload=bytes(self._buf), lrc=b))
                self._state, self._buf = "idle", bytearray()
            else:  # drop_lrc: the byte after ETX of a dropped frame is its LRC, whatever it is
                self._state, self._buf = "idle", bytearray()
        return out

    def reset(self) -> None:
        self._state, self._buf = "idle", bytearray()


# ------------------------------------------------------------------------------------------ outcomes


@dataclass(frozen=True)
class Outcome:
    """What the till knows at the end of one sale exchange.

    `result`:
      - ``"answered"``: an answer frame for this sale arrived within the budget (`answer` is set);
      - ``"no_answer"``: nothing usable arrived in time: sell without loyalty (fail open);
      - ``"gave_up"``: the box NAKed every send (1 + 3 resends): sell without loyalty.
    """

    result: Literal["answered", "no_answer", "gave_up"]
    sale_id: str | None
    answer: dict[str, Any] | None = None
    frame_sent: bytes = b""
    sends: int = 0
    naks_received: int = 0
    naks_sent: int = 0
    damaged_answers: int = 0
    void_answers: tuple[dict[str, Any], ...] = ()
    elapsed_s: float = 0.0
    raw: bytes = b""
    eot_sent: bool = False

    @property
    def answered(self) -> bool:
        return self.result == "answered"

    @property
    def status(self) -> str | None:
        return None if self.answer is None else self.answer.get("status")

    @property
    def sell_without_loyalty(self) -> bool:
        """Checklist item 5: anything but an ``"ok"`` answer means the sale goes ahead without loyalty."""
        return self.status != "ok"


@dataclass
class _Exchange:
    sends: int = 0
    naks_received: int = 0
    naks_sent: int = 0
    damaged: int = 0
    void: list[dict[str, Any]] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)


# -------------------------------------------------------------------------------------------- client


class DocPosClient:
    """The till's end of one POS line.

    `line` is a file descriptor, or an object with ``fileno()``. The client does not own it.
    """

    def __init__(
        self,
        line: int | HasFileno,
        *,
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
        max_resends: int = MAX_RESENDS,
        send_ack: bool = True,
        send_eot_on_give_up: bool = True,
        nak_damaged_answer: bool = True,
    ) -> None:
        self.fd = line if isinstance(line, int) else line.fileno()
        self.answer_timeout_s = answer_timeout_s
        self.max_resends = max_resends
        self.send_ack = send_ack
        self.send_eot_on_give_up = send_eot_on_give_up
        self.nak_damaged_answer = nak_damaged_answer

    # -- raw line ------------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Write every byte of `data` at once (doc: "send each frame in one go")."""
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.fd], [], 5.0)
            if not writable:
                raise TimeoutError("the line would not take our bytes for 5 s")
            n = os.write(self.fd, view)
            view = view[n:]

    def read_for(self, seconds: float) -> bytes:
        """Everything the box sends during the next `seconds` (to prove silence, or collect bytes)."""
        deadline = time.monotonic() + seconds
        out = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out)
            chunk = self._read_some(left)
            if chunk:
                out += chunk

    def drain(self) -> bytes:
        """Whatever is already waiting on the line, without waiting."""
        out = bytearray()
        while chunk := self._read_some(0.0):
            out += chunk
        return bytes(out)

    def _read_some(self, timeout: float) -> bytes:
        readable, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not readable:
            return b""
        try:
            return os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return b""

    # -- one exchange --------------------------------------------------------------------------------

    def sale(self, request: Mapping[str, Any], *, sale_id: str | None = _UNSET) -> Outcome:
        """Send a sale request and wait for its answer as the doc says. Never raises for a box fault."""
        if sale_id is _UNSET:
            sid = request.get("sale_id")
            sale_id = sid if isinstance(sid, str) else None
        return self.exchange(encode_request(request), sale_id=sale_id)

    def exchange(self, payload: bytes, *, sale_id: str | None, check: bool = True) -> Outcome:
        """Frame `payload`, send it, and wait for the answer whose ``sale_id`` is `sale_id`.

        `sale_id=None` expects an answer with ``"sale_id": null`` (a request whose id the box cannot read,
        doc 3.3). Answers carrying any other ``sale_id`` are void (doc 3, "Timeout, fail open").
        """
        return self.exchange_frame(build_frame(payload, check=check), sale_id=sale_id)

    def exchange_frame(self, frame: bytes, *, sale_id: str | None) -> Outcome:
        """Send a ready-made `frame` (resent unchanged on NAK) and wait for the answer for `sale_id`."""
        ex = _Exchange()
        reader = FrameReader()

        while True:
            self.send_raw(frame)
            ex.sends += 1
            # doc: "500 ms after the till finished sending". Each resend is a new send, so the budget
            # starts again; a NAK the till sends for a damaged answer does not restart it.
            started = time.monotonic()
            deadline = started + self.answer_timeout_s
            nak_for_answer_sent = False
            got_nak = False
            while not got_nak:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._outcome("no_answer", sale_id, frame, ex, elapsed=time.monotonic() - started)
                chunk = self._read_some(left)
                if not chunk:
                    continue
                ex.raw += chunk
                for item in reader.feed(chunk):
                    if item.kind == "control":
                        if item.control == NAK:
                            got_nak = True
                            ex.naks_received += 1
                            break
                        continue  # ACK/EOT from the box: the doc never has the box send them
                    if not item.lrc_ok:
                        ex.damaged += 1
                        if self.nak_damaged_answer and not nak_for_answer_sent:
                            # doc: "the till may send NAK once to ask for it again, within the same budget"
                            self.send_raw(bytes([NAK]))
                            ex.naks_sent += 1
                            nak_for_answer_sent = True
                        continue
                    answer = _decode_answer(item.payload)
                    if answer is None or answer.get("sale_id") != sale_id:
                        if answer is not None:
                            ex.void.append(answer)
                        continue
                    if self.send_ack:
                        self.send_raw(bytes([ACK]))
                    return self._outcome(
                        "answered", sale_id, frame, ex, answer=answer, elapsed=time.monotonic() - started
                    )
            if ex.sends > self.max_resends:
                eot = False
                if self.send_eot_on_give_up:
                    self.send_raw(bytes([EOT]))
                    eot = True
                return self._outcome("gave_up", sale_id, frame, ex, elapsed=time.monotonic() - started, eot=eot)
            # doc: "the till resends the same frame, byte for byte"

    @staticmethod
    def _outcome(
        result: Literal["answered", "no_answer", "gave_up"],
        sale_id: str | None,
        frame: bytes,
        ex: _Exchange,
        *,
        answer: dict[str, Any] | None = None,
        elapsed: float,
        eot: bool = False,
    ) -> Outcome:
        return Outcome(
            result=result,
            sale_id=sale_id,
            answer=answer,
            frame_sent=frame,
            sends=ex.sends,
            naks_received=ex.naks_received,
            naks_sent=ex.naks_sent,
            damaged_answers=ex.damaged,
            void_answers=tuple(ex.void),
            elapsed_s=elapsed,
            raw=bytes(ex.raw),
            eot_sent=eot,
        )


def _decode_answer(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(value, dict) or value.get("type") != "answer":
        return None
    return value


# ------------------------------------------------------------------------------ over TCP (doc section 7)
#
# Written from section 7 of the page alone: the box listens, the till connects, sends a hello frame first
# and waits for a welcome (or a refused frame) before its first sale; then the line is as on serial.

WELCOME_TIMEOUT_S = 2.0  # doc 7.2: "if neither ... has arrived within 2 s, close the connection and redial"


def build_hello(till: str) -> bytes:
    """doc 7.2: the hello frame, ``{"type":"hello","till":"<till id>"}``, framed as any frame (section 2)."""
    return build_frame(encode_request({"type": "hello", "till": till}))


@dataclass(frozen=True)
class TcpHello:
    """How a hello went.

    `result`: ``"welcome"`` (sell on this connection), ``"refused"`` (`message` says why; the box closes the
    connection), ``"closed"`` (the box closed the connection without a word) or ``"no_answer"`` (nothing
    within `WELCOME_TIMEOUT_S`).
    """

    result: Literal["welcome", "refused", "closed", "no_answer"]
    message: dict[str, Any] | None = None
    raw: bytes = b""


def tcp_hello(sock: socket.socket, till: str, *, timeout_s: float = WELCOME_TIMEOUT_S) -> TcpHello:
    """Send the hello on a connected socket and wait for the box's welcome or refused frame (doc 7.2)."""
    sock.sendall(build_hello(till))
    reader = FrameReader()
    raw = bytearray()
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(4096)
        except OSError:
            return TcpHello("closed", raw=bytes(raw))
        if not chunk:
            return TcpHello("closed", raw=bytes(raw))
        raw += chunk
        for item in reader.feed(chunk):
            if item.kind != "frame" or not item.lrc_ok:
                continue
            try:
                message = json.loads(item.payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            if isinstance(message, dict) and message.get("type") in ("welcome", "refused"):
                return TcpHello(message["type"], message, bytes(raw))
    return TcpHello("no_answer", raw=bytes(raw))


def tcp_connect(
    host: str, port: int, till: str, *, timeout_s: float = WELCOME_TIMEOUT_S
) -> tuple[socket.socket, TcpHello]:
    """doc 7.1 and 7.2: connect to the box, set TCP_NODELAY, say hello. Close the socket unless welcomed."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)  # DocPosClient does its own waiting with select
    hello = tcp_hello(sock, till, timeout_s=timeout_s)
    if hello.result != "welcome":
        sock.close()
    return sock, hello
