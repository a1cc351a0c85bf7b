"""A local HTTP receiver for webhooks (apprise's `json://`, chat tools' incoming hooks): it records every
request's JSON body, and can be told to fail (HTTP 500) the next N requests.

    with WebhookReceiver() as hook:
        url = f"json://127.0.0.1:{hook.port}/hook"
        hook.fail_next(3)
        ...
        [body] = hook.wait_for_bodies(1)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.support.waiting import wait_for


@dataclass(frozen=True)
class Received:
    """One request: its path, headers, the JSON body (None when it was not JSON) and what it was answered."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int


class WebhookReceiver:
    """An HTTP server on a free port of 127.0.0.1, in a thread of this test; a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures_left = 0
        self._received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                status = receiver._answer(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status < 300 else b'{"error": "told to fail"}')

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: pytest would show every request

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        """An apprise URL that posts apprise's JSON to this receiver."""
        return f"json://127.0.0.1:{self.port}{path}"

    def fail_next(self, count: int) -> None:
        """Answer the next `count` requests with HTTP 500."""
        with self._lock:
            self._failures_left = count

    def _answer(self, path: str, headers: dict[str, str], body: Any) -> int:
        with self._lock:
            status = 200
            if self._failures_left > 0:
                self._failures_left -= 1
                status = 500
            self._received.append(Received(path, headers, body, status))
            return status

    @property
    def received(self) -> list[Received]:
        """Every request so far, failed ones included, oldest first."""
        with self._lock:
            return list(self._received)

    def bodies(self) -> list[Any]:
        """The JSON bodies of the requests answered with success, oldest first."""
        return [each.body for each in self.received if each.status < 300]

    def wait_for_bodies(self, count: int, *, timeout: float = 15.0) -> list[Any]:
        """The successful bodies, once at least `count` arrived; AssertionError after `timeout` seconds."""
        return wait_for(lambda: (lambda got: got if len(got) >= count else [])(self.bodies()),
                        timeout=timeout, interval=0.02, what=f"{count} webhook request(s)")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="webhook-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
