"""A till's side of the POS line over TCP: it dials the box, says hello, and redials when the line drops.

Same interface as a pty end (`write`, `read_available`, `close`), so the simulated till sells the same way
on either transport (docs/pos-protocol.md, "Over TCP").
"""

from __future__ import annotations

import logging
import select
import socket
import time

from edge.devices.pos import PosFrame, PosFrameParser
from edge.devices.pos_link import encode_hello

logger = logging.getLogger(__name__)


class TcpTillEnd:
    """One till's connection to the box at (host, port); connects on first use and after a drop."""

    def __init__(self, host: str, port: int, till_id: str, *, connect_timeout: float = 2.0) -> None:
        self.host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.port = port
        self.till_id = till_id
        self._timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._backoff = 0.2
        self.connects = 0
        self.refusals = 0

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> bool:
        """Dial and say hello; True once the box welcomed this till (False: try again later)."""
        if self._sock is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one frame, one segment, no Nagle wait
            sock.sendall(encode_hello(self.till_id))
            welcome = self._await_frame(sock)
        except OSError as exc:
            logger.debug("till %s cannot reach the box at %s:%d: %s", self.till_id, self.host, self.port, exc)
            welcome = None
            if sock is not None:
                sock.close()
            sock = None
        if sock is None or welcome is None or b'"welcome"' not in welcome:
            if welcome is not None:
                self.refusals += 1
                logger.warning("till %s was refused by the box: %s", self.till_id,
                               welcome[:200].decode(errors="replace"))
            if sock is not None:
                sock.close()
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(30.0, self._backoff * 2)
            return False
        sock.setblocking(False)
        self._sock = sock
        self._backoff = 0.2
        self.connects += 1
        return True

    def _await_frame(self, sock: socket.socket) -> bytes | None:
        parser = PosFrameParser()
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = sock.recv(4096)
            if not chunk:
                return None
            for item in parser.feed(chunk):
                if isinstance(item, PosFrame):
                    return item.payload
        return None

    def write(self, data: bytes, timeout: float = 1.0) -> int:
        """Send `data`; 0 when the box cannot be reached (the till redials on its next sale)."""
        if not self.connect():
            return 0
        assert self._sock is not None
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(data)
            self._sock.setblocking(False)
        except OSError:
            self._drop()
            return 0
        return len(data)

    def read_available(self, timeout: float) -> bytes:
        """Bytes from the box, waiting up to `timeout` for the first; b"" if none (or the line dropped)."""
        sock = self._sock
        if sock is None:
            return b""
        try:
            ready, _, _ = select.select([sock], [], [], max(timeout, 0))
            if not ready:
                return b""
            chunk = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            self._drop()
            return b""
        if not chunk:
            self._drop()
        return chunk

    def close(self) -> None:
        """Hang up."""
        self._drop()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
