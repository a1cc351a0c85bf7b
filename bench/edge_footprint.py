"""Memory of a running site box: `marquee-edge run` with two tills on pseudo-terminals, after 200 sales.

Run: .venv/bin/python bench/edge_footprint.py
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.devices.pos import PosFrame, PosFrameParser, encode_frame
from edge.simulator.pty import create_pty_link

BIN = Path(sys.executable).parent


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ptys = {name: create_pty_link(root / name) for name in ("pos-t1", "card-t1", "pos-t2", "card-t2")}
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # nothing listens: the box runs offline
        config = root / "edge.toml"
        config.touch(mode=0o600)  # it holds the pepper
        config.write_text(
            f'site_id = "bench"\ndevice_id = "bench-box1"\ndata_dir = "{root / "data"}"\n'
            f'pepper = "bench-pepper-0123456789"\n[mqtt]\nport = {port}\n'
            + "".join(f'[[tills]]\ntill_id = "{t}"\npos_port = "{root}/pos-{t}"\n' for t in ("t1", "t2"))
            + "".join(f'[[readers]]\ntill = "{t}"\nkind = "rdm6300"\nport = "{root}/card-{t}"\n' for t in ("t1", "t2"))
        )
        # Provisioned as a technician does it, so the box starts with its keys.
        subprocess.run([str(BIN / "marquee-edge"), "init", "--config", str(config)], check=True,
                       stdout=subprocess.DEVNULL)
        proc = subprocess.Popen([str(BIN / "marquee-edge"), "--log-level", "WARNING", "run", "--config",
                                 str(config)])
        try:
            parser = PosFrameParser()
            answered = 0
            started = time.monotonic()
            for n in range(200):
                body = json.dumps({"type": "sale", "sale_id": f"S-{n}", "till": "t1", "cashier": "c1",
                                   "currency": "EUR", "items": [{"kind": "ticket", "sku": "T", "film": "F",
                                   "hall": "h1", "showtime": "2026-11-23T19:30:00Z", "qty": 1, "price": 900}]})
                pos = ptys["pos-t1"]
                deadline = time.monotonic() + 5
                got = False
                while not got and time.monotonic() < deadline:
                    pos.write(encode_frame(body.encode()))
                    for _ in range(20):
                        if any(isinstance(i, PosFrame) for i in parser.feed(pos.read_available(0.05))):
                            got = True
                            break
                answered += got
            mem = rss_kib(proc.pid)
            print(f"marquee-edge run, 2 tills, {answered} sales answered in {time.monotonic() - started:.1f}s: "
                  f"resident {mem['VmRSS'] / 1024:.1f} MiB, peak {mem['VmHWM'] / 1024:.1f} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            for end in ptys.values():
                end.close()


if __name__ == "__main__":
    main()
