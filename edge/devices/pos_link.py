"""A till's TCP connection: the hello that says which till it is, and the socket the agent answers on.

The listener (edge/devices/pos_tcp.py) accepts connections and runs one thread per connection; this
module holds what each connection is and says (docs/pos-protocol.md, section 7).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from edge.devices.pos import ID_PATTERN, PosFrameParser, encode_frame

logger = logging.getLogger(__name__)

# One timeout serves reads (how soon stop() and the inter-byte timeout are noticed) and writes: an
# answer of at most 4 KB only waits when the till has left its receive buffer unread for a long time.
READ_TIMEOUT = 0.1
# A till whose cable was pulled sends no FIN: probe after 10 s of silence, every 5 s, 6 times (about 40 s).
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 6
USER_TIMEOUT_MS = 40_000  # sent data unacknowledged this long: the connection is dead

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class TcpTill:
    """A till that may connect over TCP; `peers`: the networks it may connect from (empty: any address)."""

    till_id: str
    peers: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def allows(self, address: IpAddress) -> bool:
        """True if a connection from `address` may be this till."""
        return not self.peers or any(address in network for network in self.peers)


# ---------------------------------------------------------------- messages


class _Message(BaseModel):
    # Unknown fields are ignored, as for sales: a till may send more than we read.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Hello(_Message):
    """The first frame a till sends on a new connection: which till it is."""

    type: Literal["hello"]
    till: Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class Welcome(_Message):
    """The box's answer to an accepted hello; sales follow on the same connection."""

    type: Literal["welcome"] = "welcome"
    till: str
    box: str


class Refused(_Message):
    """The box's answer to a connection it will not serve, sent just before it closes the connection."""

    type: Literal["refused"] = "refused"
    message: Annotated[str, StringConstraints(max_length=200)]


def encode_message(message: Hello | Welcome | Refused) -> bytes:
    """A full frame carrying `message` as compact JSON."""
    return encode_frame(message.model_dump_json().encode("utf-8"))


def encode_hello(till_id: str) -> bytes:
    """The hello frame a till sends first (for the simulator and tests); ValueError for a bad till id."""
    try:
        return encode_message(Hello(type="hello", till=till_id))
    except ValidationError as exc:
        raise ValueError(f"not a till id: {till_id!r}") from exc


def parse_hello(payload: bytes) -> Hello | str:
    """The hello in a frame's payload, or a short reason why it is not one."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "not JSON"
    if not isinstance(document, dict) or document.get("type") != "hello":
        kind = document.get("type") if isinstance(document, dict) else None
        return f"a {str(kind)[:20]!r} frame" if isinstance(kind, str) else "a frame without a type"
    try:
        return Hello.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"


# ---------------------------------------------------------------- connections


def peer_of(address: Any) -> tuple[IpAddress | None, str]:
    """The peer's IP address (IPv4-mapped IPv6 unwrapped) and its printable `host:port`."""
    host, port = str(address[0]), int(address[1])
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None, f"{host}:{port}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


class PosConnection:
    """One till's TCP connection as the agent sees it: `name` and `write`, like a SerialLine."""

    def __init__(self, sock: socket.socket, peer: str, on_written: Callable[[str, int], None]) -> None:
        self.name = "unidentified-pos"
        self.peer = peer
        self._sock = sock
        self._on_written = on_written
        self._lock = threading.Lock()  # one writer at a time; close and shutdown never race a send
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the connection was shut down (by either side, or by a failed write)."""
        return self._closed

    def write(self, data: bytes) -> bool:
        """Send `data`; False (never an exception) when the connection is closed or the send fails."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._sock.sendall(data)
            except OSError as exc:
                # Part of a frame may have gone: the stream is no longer framed, so end it; the reader
                # thread then sees the connection drop and reports it.
                logger.debug("POS connection %s (%s): write failed: %s", self.name, self.peer, exc)
                self._on_written("write_failures", 1)
                self._shutdown_locked()
                return False
        self._on_written("bytes_written", len(data))
        return True

    def shutdown(self) -> None:
        """End the connection from any thread; its reader sees end-of-file and its thread exits."""
        with self._lock:
            self._shutdown_locked()

    def _shutdown_locked(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already reset by the peer: nothing left to end

    def _read(self) -> bytes | str | None:
        """Bytes read (b"" at end of file), None when nothing came within READ_TIMEOUT, or why the read failed."""
        try:
            return self._sock.recv(4096)
        except TimeoutError as exc:
            if exc.errno is None:  # our own read timeout; errno ETIMEDOUT is the keepalive giving up
                return None
            return "no reply to keepalive probes (cable or network down?)"
        except ConnectionResetError:
            return "connection reset by the till"
        except OSError as exc:
            return f"read failed: {exc.strerror or exc}" if exc.errno != errno.EBADF else "connection closed"

    def _configure(self) -> None:
        """Per-connection socket options: short reads, no Nagle delay, keepalive that notices a pulled cable."""
        self._sock.settimeout(READ_TIMEOUT)
        # Nagle holds a small answer back until the till's delayed ACK: about 88 ms per exchange otherwise.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE_S), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
                              ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
            if hasattr(socket, option):  # Linux names; elsewhere the system defaults apply
                self._sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            # Keepalive stays quiet while an answer waits unacknowledged; without this the kernel retries for
            # ~15 minutes, and a till redialling from another allowed address is refused all that time.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)

    def _close(self) -> None:
        """Release the socket (its own thread only, so no other thread can use a reused descriptor)."""
        with self._lock:
            self._closed = True
            self._sock.close()


@dataclass(eq=False)
class Session:
    """One accepted connection and its thread, before and after its hello."""

    conn: PosConnection
    ip: IpAddress | None
    accepted_at: float
    till_id: str | None = None
    received: int = 0  # bytes read before the hello was accepted, counted for the till afterwards
    parser: PosFrameParser = field(default_factory=PosFrameParser)
    backlog: list[object] = field(default_factory=list)  # items that arrived in the hello's read
    thread: threading.Thread | None = None
