"""The technician's commands on real ptys: `read-cards` prints each read as it happens, `status` shows
each device of a running agent."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.agent import Agent
from edge.cli import main
from edge.devices.magstripe import encode_swipe
from edge.devices.rdm6300 import encode_frame as fob_frame
from edge.devices.wiegand import encode_wiegand
from edge.simulator.pty import PtyEnd, create_pty_link
from protocol.cards import CardScheme, card_token, printed_id
from tests.edge_support import PEPPER, edge_settings, new_journal, write_config
from tests.support.waiting import wait_for

EDGE = str(Path(sys.executable).parent / "marquee-edge")
W24 = CardScheme(em4100="wiegand24")


class Tool:
    """A CLI process whose stdout lines are read as they come."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([EDGE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_json(self, timeout: float = 10) -> dict[str, object]:
        try:
            return dict(json.loads(self.lines.get(timeout=timeout)))
        except queue.Empty:
            raise AssertionError(f"no line within {timeout}s") from None

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self._pump_thread.join(5)
        stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, stderr


@pytest.fixture
def port(tmp_path: Path) -> Iterator[PtyEnd]:
    end = create_pty_link(tmp_path / "reader")
    yield end
    end.close()


def test_read_cards_prints_the_canonical_id_the_token_and_the_fields(tmp_path: Path, port: PtyEnd) -> None:
    config = write_config(tmp_path / "edge.toml", edge_settings(tmp_path, cards={"em4100": "wiegand24"}))
    tool = Tool(["read-cards", "--kind", "wiegand", "--port", str(port.link), "--json", "--config", str(config)])
    try:
        assert tool.next_json()["state"] == "up"
        port.write(encode_wiegand(59, 20934, bits=26))
        read = tool.next_json()
        card = printed_id("em4100", "0003887558", W24)
        assert read["kind"] == "wiegand" and read["card_id"] == "em4100:059,20934"
        assert read["token"] == card_token(PEPPER.encode(), card)
        assert read["fields"] == {"bits": 26, "facility": 59, "card_number": 20934, "data_hex": "3B51C6"}
        port.write(b"0" * 26 + b"\r")  # all zeros fails the odd parity check
        error = tool.next_json()
        assert error["error"] == "parity" and "0" * 26 not in json.dumps(error)
    finally:
        code, stderr = tool.stop()
    assert code == 0 and "1 read(s), 1 error(s)" in stderr


def test_read_cards_masks_a_payment_card_even_for_the_technician(tmp_path: Path, port: PtyEnd) -> None:
    pan = "4111111111111111"
    tool = Tool(["read-cards", "--kind", "magstripe", "--port", str(port.link)])
    try:
        wait_for(lambda: "is up" in tool.lines.get(timeout=10), timeout=10, what="the port up")
        port.write(encode_swipe(pan, name="TEST/CARD"))
        line = tool.lines.get(timeout=10)
    finally:
        code, stderr = tool.stop()
    assert "pan:411111******1111" in line and "(no pepper: no token)" in line
    assert pan not in line + stderr and "TEST/CARD" not in line + stderr and code == 0


def test_status_shows_each_device_of_the_running_agent(tmp_path: Path, port: PtyEnd) -> None:
    pos = create_pty_link(tmp_path / "pos")
    settings = edge_settings(tmp_path, tills=[{"till_id": "t1", "pos_port": str(pos.link)}],
                             readers=[{"till": "t1", "kind": "rdm6300", "port": str(port.link)}], mqtt={"port": 1})
    config = write_config(tmp_path / "edge.toml", settings)
    agent = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    agent.start()
    try:
        wait_for(lambda: set(agent.status(True).peripherals.values()) == {"up"}, timeout=10, what="ports up")
        port.write(b"\xff\xfe" + fob_frame("67003B51C6"))
        wait_for(lambda: agent.counters["cards"] == 1, timeout=10, what="the card read")
        shown = json.loads(subprocess.run([EDGE, "status", "--config", str(config), "--json"], check=True,
                                          capture_output=True, text=True).stdout)
        text = subprocess.run([EDGE, "status", "--config", str(config)], check=True, capture_output=True,
                              text=True).stdout
    finally:
        agent.stop()
        pos.close()
    assert shown["agent_running"] is True
    reader = shown["devices"]["t1-rdm6300"]
    assert (reader["state"], reader["reads"], reader["errors"]) == ("up", 1, {"garbage": 1})
    assert reader["frames"] >= 1 and reader["last_read_at"] and shown["devices"]["t1-pos"]["state"] == "up"
    assert "t1-rdm6300" in text and "garbage 1" in text and "67003B51C6" not in text
    after = subprocess.run([EDGE, "status", "--config", str(config)], check=True, capture_output=True, text=True)
    assert "agent: not running" in after.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the command as another user")
def test_status_as_another_user_says_whose_command_it_is_without_a_traceback() -> None:
    base = Path(tempfile.mkdtemp(prefix="marquee-status-"))
    try:
        base.chmod(0o755)  # the config is readable; the data folder, made by init, is the agent's alone
        settings = edge_settings(base)
        config = base / "edge.toml"
        config.write_text(f'site_id = "riverside"\ndevice_id = "riverside-box1"\ndata_dir = "{settings.data_dir}"\n')
        config.chmod(0o644)
        env = {**os.environ, "MARQUEE_EDGE_PEPPER": PEPPER}
        subprocess.run([EDGE, "init", "--config", str(config)], check=True, capture_output=True, env=env)
        os.seteuid(65534)  # in this process: the project's files need not be readable by that user
        try:
            shown = CliRunner().invoke(main, ["status", "--config", str(config)], env=env)
        finally:
            os.seteuid(0)
    finally:
        shutil.rmtree(base)
    assert shown.exit_code == 1 and isinstance(shown.exception, SystemExit)  # a clear error, no traceback
    assert "run as the agent's user or root" in shown.output
