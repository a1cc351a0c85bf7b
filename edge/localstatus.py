"""The running agent's live status for `marquee-edge status`, served on a Unix socket in the data folder.

Nothing is rewritten on disk every few seconds (SD cards wear) and nothing listens on the network: the
socket sits in the agent's 0700 data folder, so only the agent's own user (and root) can ask. It answers
each connection with the heartbeat the hub gets (no card number, no personal data) and closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.logthrottle import LogThrottle

log = logging.getLogger(__name__)

SOCKET_NAME = "agent.sock"
MAX_PATH = 100  # sun_path holds 108 bytes on Linux; stay clear of it


class StatusSocket:
    """Serves `status()` (JSON bytes) to whoever connects, one answer per connection."""

    def __init__(self, path: Path, status: Callable[[], bytes]) -> None:
        self.path = path
        self._status = status
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failures = LogThrottle(log)

    def start(self) -> bool:
        """Bind and serve in a daemon thread; False (logged once) when the socket cannot be made."""
        if len(os.fsencode(self.path)) > MAX_PATH:
            log.warning("status socket path %s is too long for a Unix socket; `marquee-edge status` will show "
                        "journal figures only", self.path)
            return False
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # left by an agent that was killed
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o077)
            try:
                server.bind(str(self.path))
            finally:
                os.umask(old_umask)
            server.listen(4)
            server.settimeout(0.2)
        except OSError as exc:
            log.warning("cannot serve the status socket %s: %s; `marquee-edge status` will show journal figures "
                        "only", self.path, exc)
            return False
        self._server = server
        self._thread = threading.Thread(target=self._serve, name="status-socket", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("status socket failed; it stops serving")
                return
            with conn:
                try:
                    conn.settimeout(1.0)
                    conn.sendall(self._status())
                except OSError:
                    log.debug("status socket: the client hung up", exc_info=True)
                except Exception:  # a status that failed to build: the agent goes on, the operator hears once
                    self._failures.exception("status socket: the status could not be built")


def read_status(path: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """The running agent's status, or None when no agent answers at `path`.

    PermissionError when one runs but this user may not ask it (run as the agent's user, or root).
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(str(path))
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
    except PermissionError:
        raise
    except OSError:
        return None
    try:
        document = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
