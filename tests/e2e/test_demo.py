"""`make demo`'s launcher: three sites' sales reach the hub, it prints a login, and it leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.brokers import free_port

ROOT = Path(__file__).resolve().parents[2]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and entry.name != str(os.getpid()):
                found.append(int(entry.name))
    return found


@pytest.mark.e2e
def test_the_demo_shows_three_sites_and_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    port = free_port()
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "demo.py"), "--exit-when-ready", "--http-port", str(port),
         "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Dashboard: http://127.0.0.1:{port}/" in out
    assert "Login:     admin / " in out
    for site in ("riverside", "old-town", "harbour"):
        assert f"  {site}: " in out
    assert processes_mentioning(str(workdir)) == []
    logs = "".join(p.read_text(errors="replace") for p in workdir.glob("*.log"))
    assert " ERROR " not in logs and "Traceback" not in logs
