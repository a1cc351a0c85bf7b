"""A real Mosquitto process per test, on a free port with a generated config."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_for

# Under pytest-xdist each worker hands out ports from its own block below Linux's ephemeral range (32768 and up),
# so two workers never pick the same port between its probe and the process that binds it, and no outgoing
# connection's ephemeral port takes it either.
_BLOCK = 2500
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 5
_next_port = itertools.count(20000 + _WORKER * _BLOCK + random.randrange(_BLOCK))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now, from this test worker's own block."""
    base = 20000 + _WORKER * _BLOCK
    for _ in range(_BLOCK):
        port = base + (next(_next_port) - base) % _BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this test worker's block")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Mosquitto:
    """A Mosquitto broker this test owns; `restart()` keeps the port and the persistence file."""

    port: int
    workdir: Path
    extra_config: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def config_text(self) -> str:
        return "\n".join(
            [
                f"listener {self.port} 127.0.0.1",
                # As root, Mosquitto would drop to its own user, which cannot read this test's private folder.
                *(["user root"] if os.geteuid() == 0 else []),
                *([] if any(line.startswith("allow_anonymous") for line in self.extra_config)
                  else ["allow_anonymous true"]),
                "set_tcp_nodelay true",
                "max_queued_messages 100000",
                "persistence true",
                f"persistence_location {self.workdir}/",
                f"log_dest file {self.workdir}/mosquitto.log",
                *self.extra_config,
                "",
            ]
        )

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: port_open(self.port), timeout=10, what=f"mosquitto on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()
