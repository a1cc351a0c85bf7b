"""The box's devices: each till's POS line (serial, or TCP through one listener) and every card reader.

Wiring only: a reader's read becomes the chain's canonical card id (edge/devices/families.py) and goes
to `on_card`; a POS item goes to `on_pos` with the connection to answer on. Health per device, for the
heartbeat and `marquee-edge status`, is kept here.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from edge.devices.families import FAMILIES, card_id
from edge.devices.pos import PosFrameParser
from edge.devices.pos_link import TcpTill
from edge.devices.pos_tcp import PosListener
from edge.devices.serial_line import SerialLine
from edge.errors import FrameError
from edge.logthrottle import LogThrottle
from edge.settings import EdgeSettings, ReaderSettings
from protocol.cards import CardId, CardIdError
from protocol.messages import PeripheralHealth

log = logging.getLogger(__name__)


class Writer(Protocol):
    """Where a POS answer goes: a serial line or a till's TCP connection."""

    @property
    def name(self) -> str: ...

    def write(self, data: bytes) -> bool: ...


OnCard = Callable[[str, CardId, str, float], bool]
"""(till_id, card, reader name, debounce window) -> True when it counted as a new presentation."""
OnPos = Callable[[str, Writer, object], None]
"""(till_id, where to answer, PosFrame | PosControl | FrameError)."""


@dataclass
class _Reader:
    name: str
    settings: ReaderSettings
    line: SerialLine
    debounce_s: float
    reads: int = 0
    card_errors: int = 0
    last_read_at: datetime | None = None


class Peripherals:
    """Opens, reads and closes every configured device; `health()` says how each is doing."""

    def __init__(self, settings: EdgeSettings, *, on_card: OnCard, on_pos: OnPos) -> None:
        self.settings = settings
        self._on_card = on_card
        self._on_pos = on_pos
        self._lock = threading.Lock()
        self._pos_lines: dict[str, SerialLine] = {}
        self._readers: list[_Reader] = []
        self._card_log: dict[str, LogThrottle] = {}
        self.listener: PosListener | None = None
        tcp_tills = [till for till in settings.tills if till.pos_transport == "tcp"]
        if tcp_tills and settings.pos_tcp is not None:
            self.listener = PosListener(
                host=settings.pos_tcp.host, port=settings.pos_tcp.port, box_id=settings.device_id,
                tills=[TcpTill(till.till_id, tuple(till.pos_peers)) for till in tcp_tills],
                on_item=lambda till_id, conn, item: self._on_pos(till_id, conn, item),
                inter_byte_timeout=max(till.pos_inter_byte_timeout_s for till in tcp_tills),
                hello_timeout=settings.pos_tcp.hello_timeout_s,
            )
        for till in settings.tills:
            if till.pos_transport != "serial" or till.pos_port is None:
                continue
            till_id = till.till_id
            self._pos_lines[till_id] = SerialLine(
                name=f"{till_id}-pos", url=till.pos_port, baudrate=till.pos_baudrate, parity=till.pos_parity,
                parser_factory=PosFrameParser, inter_byte_timeout=till.pos_inter_byte_timeout_s,
                on_item=lambda line, item, till_id=till_id: self._on_pos(till_id, line, item),  # type: ignore[misc]
            )
        for name, reader in settings.named_readers():
            family = FAMILIES[reader.kind]
            holder: list[_Reader] = []
            line = SerialLine(
                name=name, url=reader.port, baudrate=reader.baudrate, parity=reader.parity,
                bytesize=reader.bytesize, stopbits=reader.stopbits,
                parser_factory=lambda reader=reader, family=family: family.make_parser(reader),  # type: ignore[misc]
                inter_byte_timeout=family.inter_byte_timeout_s,
                on_item=lambda _line, item, holder=holder: self._reader_item(holder[0], item),  # type: ignore[misc]
            )
            holder.append(_Reader(name=name, settings=reader, line=line, debounce_s=family.debounce_s))
            self._readers.append(holder[0])

    def start(self) -> None:
        """Open every port and start listening for TCP tills (DeviceError if the listen address is unusable)."""
        if self.listener is not None:
            self.listener.start()
        for line in self._pos_lines.values():
            line.start()
        for reader in self._readers:
            reader.line.start()

    def stop(self) -> None:
        """Close everything; returns within a second or so."""
        if self.listener is not None:
            self.listener.stop()
        for line in [*self._pos_lines.values(), *(reader.line for reader in self._readers)]:
            line.stop()

    # ------------------------------------------------------------ reads

    def _reader_item(self, reader: _Reader, item: object) -> None:
        if isinstance(item, FrameError):
            return  # counted by kind on the line
        try:
            card = card_id(item, self.settings.cards)
        except CardIdError as exc:
            with self._lock:
                reader.card_errors += 1
            # A reader wired for another card form fails every card: one line, then a summary a minute.
            self._card_log.setdefault(reader.name, LogThrottle(log)).warning(
                "reader %s read a card that has no id under this chain's card settings: %s", reader.name, exc)
            return
        if card is None:
            # A reader announcing itself (a sign-on line at power-up): its text is not logged, since a
            # misconfigured reader's "notice" could be a card number.
            log.info("reader %s announced itself (a sign-on line: it was powered up or reset)", reader.name)
            return
        if self._on_card(reader.settings.till, card, reader.name, reader.debounce_s):
            with self._lock:
                reader.reads += 1
                reader.last_read_at = datetime.now(UTC)

    # ------------------------------------------------------------ health

    def health(self) -> dict[str, PeripheralHealth]:
        """Every device by name, for the heartbeat."""
        out: dict[str, PeripheralHealth] = {}
        for till_id, line in self._pos_lines.items():
            out[line.name] = _health("pos", till_id, line.state, line.counters)
        if self.listener is not None:
            for till in self.settings.tills:
                if till.pos_transport == "tcp":
                    counters = self.listener.counters(till.till_id)
                    out[f"{till.till_id}-pos"] = _health("pos-tcp", till.till_id, self.listener.state(till.till_id),
                                                         counters)
        for reader in self._readers:
            with self._lock:
                reads, card_errors, last = reader.reads, reader.card_errors, reader.last_read_at
            health = _health(reader.settings.kind, reader.settings.till, reader.line.state, reader.line.counters,
                             reads=reads, last_read_at=last)
            if card_errors:
                health = health.model_copy(update={"errors": {**health.errors, "card_id": card_errors}})
            out[reader.name] = health
        return out


def _health(kind: str, till: str, state: str, counters: dict[str, Any], *, reads: int = 0,
            last_read_at: datetime | None = None) -> PeripheralHealth:
    return PeripheralHealth(
        kind=kind, till=till, state=state if state in ("starting", "up", "down", "stopped") else "down",
        frames=counters.get("items", 0), reads=reads,
        errors={_kind(key): value for key, value in counters.get("errors", {}).items()},
        reopens=max(0, counters.get("opens", 0) - 1), last_read_at=last_read_at,
    )


def _kind(key: str) -> str:
    # Error kinds are the parsers' short words; anything else is made to fit the status schema, not dropped.
    return re.sub(r"[^a-z0-9_-]", "_", str(key).lower())[:64].lstrip("_-") or "unknown"
