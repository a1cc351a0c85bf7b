"""The real programs as a user runs them: `marquee-hub serve` and `marquee-edge run` in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.brokers import free_port
from tests.support.waiting import wait_for

BIN = Path(sys.executable).parent


@dataclass
class Program:
    """A CLI process whose output goes to a log file, stopped with SIGTERM (or killed) at the end."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env})

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode


@dataclass
class Hub:
    """`marquee-hub serve` on a free port, with an admin login, talking to `mqtt_port`."""

    workdir: Path
    mqtt_port: int
    database_url: str
    http_port: int = field(default_factory=free_port)
    username: str = "admin"
    password: str = "correct-horse-battery"
    program: Program | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "MARQUEE_HUB_DATABASE_URL": self.database_url,
            "MARQUEE_HUB_MQTT_PORT": str(self.mqtt_port),
            "MARQUEE_HUB_HTTP_PORT": str(self.http_port),
            "MARQUEE_HUB_OFFLINE_AFTER_SECONDS": "60",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        hub = str(BIN / "marquee-hub")
        env = {**os.environ, **self.env}
        subprocess.run([hub, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([hub, "user", "add", self.username, "--role", "admin", "--password-stdin"],
                       input=self.password.encode(), env=env, check=True, capture_output=True)
        self.program = Program([hub, "serve"], self.env, self.workdir / "hub.log")
        self.program.start()
        try:
            wait_for(self._healthy, timeout=30, what="the hub's /healthz")
        except BaseException:
            self.program.stop()
            raise

    def _healthy(self) -> bool:
        assert self.program is not None and self.program.alive(), self.program.log() if self.program else ""
        try:
            response = httpx.get(f"{self.url}/healthz", timeout=1)
        except httpx.HTTPError:
            return False
        # "up" means the database answers and ingest is connected to the broker.
        return response.status_code == 200 and response.json() == {"status": "up"}

    def register(self, config: Path, *, site_id: str, device_id: str) -> str:
        """Provision a box as a technician does: `marquee-edge init`, then its public key registered here."""
        edge = str(BIN / "marquee-edge")
        subprocess.run([edge, "init", "--config", str(config)], check=True, capture_output=True)
        key = subprocess.run([edge, "identity", "--config", str(config)], check=True, capture_output=True,
                             text=True).stdout.strip()
        subprocess.run([str(BIN / "marquee-hub"), "devices", "add", "--site", site_id, "--device", device_id,
                        "--public-key", key], env={**os.environ, **self.env}, check=True, capture_output=True)
        return key

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, auth=(self.username, self.password), timeout=5)
        response.raise_for_status()
        return response.json()

    def counters(self) -> dict[str, int]:
        """The ingest counters the health API reports (behind the login)."""
        return dict(self.get("/api/v1/health")["counters"])

    def stop(self) -> None:
        if self.program is not None:
            self.program.stop()


def edge_program(config: Path, workdir: Path, name: str = "edge") -> Program:
    """`marquee-edge run --config CONFIG`, not yet started."""
    return Program([str(BIN / "marquee-edge"), "run", "--config", str(config)], {}, workdir / f"{name}.log")


def edge_status(config: Path) -> dict[str, int]:
    """What `marquee-edge status --json` says of the journal."""
    out = subprocess.run([str(BIN / "marquee-edge"), "status", "--config", str(config), "--json"],
                         check=True, capture_output=True, text=True)
    import json

    return dict(json.loads(out.stdout))
