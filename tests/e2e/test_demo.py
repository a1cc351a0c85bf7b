"""`make demo`'s launcher: three sites' sales reach the hub, it prints a login and the rules the tills run, says
at the end what the tills showed of them, and it leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import free_port

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_LINE = ("  Bundle:    3 tiers (Regular, Silver, Gold), CinePass (2 films a week), birthday ticket, "
               "member discount, campaign 'Paper Astronauts: double points' (sponsor Northlight Pictures)")
# What the tills showed of the rules, at the end: numbers vary with the run, the shape does not.
RULES_LINE = re.compile(
    r"^  Rules:     3 tiers \(members seen: regular \d+, silver \d+, gold \d+\), campaign 'Paper Astronauts: "
    r"double points' paid [\d,]+ bonus points \(sponsor Northlight Pictures\), \d+ pass tickets \(\d+ passes "
    r"bought\), \d+ member discounts, \d+ birthday tickets; [\d,]+\.\d\d EUR off in all$", re.MULTILINE)


def processes_of(workdir: Path) -> list[int]:
    """Processes whose command line names the demo's folder or that run inside it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(workdir) in cmdline or cwd.startswith(str(workdir)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The demo's folder; whatever a failed test left running in it is stopped afterwards."""
    path = tmp_path / "demo"
    yield path
    for pid in processes_of(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.e2e
def test_the_demo_shows_three_sites_and_ctrl_c_stops_everything(workdir: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy" / "demo.py"), "--http-port", str(port), "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert demo.stdout is not None
    try:
        check_demo(demo, workdir, port)
    finally:
        if demo.poll() is None:  # a failed check must not leave the demo running
            demo.terminate()
            demo.wait(timeout=60)
        demo.stdout.close()
    assert processes_of(workdir) == []
    logs = "".join(p.read_text(errors="replace") for p in workdir.glob("*.log"))
    assert " ERROR " not in logs and "Traceback" not in logs


def check_demo(demo: subprocess.Popen[str], workdir: Path, port: int) -> None:
    assert demo.stdout is not None
    out = ""
    for line in demo.stdout:  # ends at "Ready", or at EOF if the demo fails (the test's timeout bounds it)
        out += line
        if "Ready in" in line:
            break
    assert "Ready in" in out, out
    assert f"Dashboard: http://127.0.0.1:{port}/" in out
    assert "Login:     admin / " in out
    for site in ("riverside", "old-town", "harbour"):
        assert f"  {site}: " in out
    assert BUNDLE_LINE in out
    assert len(set(processes_of(workdir)) - {demo.pid}) == 8  # broker, hub, three boxes, their devices

    demo.send_signal(signal.SIGINT)  # Ctrl-C
    rest = demo.stdout.read()  # to the end: the demo closes its output as it exits
    assert demo.wait(timeout=60) == 0
    assert "stopping..." in rest and RULES_LINE.search(rest), rest


@pytest.mark.e2e
def test_without_mosquitto_the_demo_runs_on_the_embedded_broker(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "demo.py"), "--broker", "amqtt", "--exit-when-ready",
         "--http-port", str(free_port()), "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(MQTT 3.1.1)" in result.stdout
    assert BUNDLE_LINE in result.stdout and RULES_LINE.search(result.stdout), result.stdout
    for site in ("riverside", "old-town", "harbour"):
        assert f"  {site}: " in result.stdout
    assert processes_of(workdir) == []
    ours = "".join(p.read_text(errors="replace") for p in workdir.glob("*.log") if p.name != "broker.log")
    assert " ERROR " not in ours and "Traceback" not in ours
