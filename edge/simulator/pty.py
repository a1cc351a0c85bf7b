"""Virtual serial ports: a pseudo-terminal whose slave side is published at a stable path (a symlink).

The simulator plays the device on the master side; the agent opens the link like any /dev/tty*.
"""

from __future__ import annotations

import logging
import os
import select
import time
import tty
from pathlib import Path

logger = logging.getLogger(__name__)


class PtyEnd:
    """The device side of a pty published at `link`; `close()` hangs up the line and removes the link."""

    def __init__(self, master_fd: int, slave_fd: int, link: Path) -> None:
        self.master_fd = master_fd
        self._slave_fd = slave_fd
        self.link = link
        self.slave_name = os.ttyname(slave_fd)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes, timeout: float = 1.0) -> int:
        """Write `data` to the line; returns the bytes written (fewer if nobody drains it in `timeout`)."""
        view = memoryview(data)
        written = 0
        deadline = time.monotonic() + timeout
        while written < len(data):
            try:
                written += os.write(self.master_fd, view[written:])
                continue
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.debug("pty %s: dropped %d bytes nobody read", self.link, len(data) - written)
                break
            select.select([], [self.master_fd], [], min(remaining, 0.05))
        return written

    def read_available(self, timeout: float) -> bytes:
        """Bytes the other side wrote, waiting up to `timeout` for the first one; b"" if none came."""
        ready, _, _ = select.select([self.master_fd], [], [], max(timeout, 0))
        if not ready:
            return b""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(self.master_fd, 65536)
            except (BlockingIOError, OSError):
                # EIO means no slave is open; we hold one open, so this is only the race at close().
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close both ends (readers of the slave see a hang-up) and remove the link if it is still ours."""
        if self._closed:
            return
        self._closed = True
        try:
            if os.path.islink(self.link) and os.readlink(self.link) == self.slave_name:
                self.link.unlink()
        except OSError as exc:
            logger.debug("pty %s: could not remove link: %s", self.link, exc)
        for fd in (self.master_fd, self._slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def create_pty_link(link: Path) -> PtyEnd:
    """Open a raw pty and point `link` at its slave (atomically replacing an existing link)."""
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(master_fd)
        tty.setraw(slave_fd)
        os.set_blocking(master_fd, False)
        slave_name = os.ttyname(slave_fd)
        link = Path(link)
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f".{link.name}.{os.getpid()}.{master_fd}.tmp")
        if os.path.lexists(temporary):
            temporary.unlink()
        os.symlink(slave_name, temporary)
        os.replace(temporary, link)  # rename(2) is atomic: an opener sees the old link or the new one
    except BaseException:
        os.close(master_fd)
        os.close(slave_fd)
        raise
    logger.debug("pty %s -> %s", link, slave_name)
    # The slave fd stays open with us: without it, reads on the master fail with EIO until the agent opens it.
    return PtyEnd(master_fd, slave_fd, link)
