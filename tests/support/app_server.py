"""The hub's app served by a real uvicorn on a thread of the test process: real HTTP (streams included, which
TestClient buffers to the end) without the start-up of a separate `marquee-hub serve`."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from tests.support.brokers import free_port
from tests.support.waiting import wait_for


class AppServer:
    """`with AppServer(app) as server:` serves `app` (its lifespan included) on 127.0.0.1:`server.port`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        # A stream still open at the end is cut after 2 s rather than waited for.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="app-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), timeout=30, what="uvicorn to start")
        assert self.server.started, "uvicorn did not start (see the log)"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
