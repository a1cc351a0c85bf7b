"""Frames per second through SerialLine on a real pty (RDM6300 and POS frames), and pyserial's readline() for scale.

Run from the repository root: .venv/bin/python -m bench.serial_throughput [--frames 20000]
Prints figures; asserts nothing about time (that belongs to no test).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import serial

from edge.devices.pos import PosFrameParser
from edge.devices.pos import encode_frame as encode_pos_frame
from edge.devices.rdm6300 import Rdm6300Parser
from edge.devices.rdm6300 import encode_frame as encode_card_frame
from edge.devices.serial_line import Parser, SerialLine
from edge.simulator.pty import create_pty_link


def through_serial_line(link: Path, frames: list[bytes], parser_factory: Callable[[], Parser]) -> float:
    """Frames/s from the first write on the master to the last item out of on_item."""
    end = create_pty_link(link)
    done = threading.Event()
    count = 0

    def on_item(line: SerialLine, item: object) -> None:
        nonlocal count
        count += 1
        if count == len(frames):
            done.set()

    line = SerialLine(name="bench", url=str(link), parser_factory=parser_factory, on_item=on_item)
    line.start()
    while line.state != "up":
        time.sleep(0.01)
    stream = b"".join(frames)
    started = time.perf_counter()
    for offset in range(0, len(stream), 4096):
        end.write(stream[offset : offset + 4096], timeout=10)
    done.wait(60)
    elapsed = time.perf_counter() - started
    line.stop()
    end.close()
    if count != len(frames):
        raise SystemExit(f"lost frames: {count} of {len(frames)}")
    return len(frames) / elapsed


def through_readline(link: Path, n: int) -> float:
    """The trap from DESIGN.md, for comparison: lines/s with pyserial's readline()."""
    end = create_pty_link(link)
    port = serial.serial_for_url(str(link), timeout=1)
    payload = b"%B6035718888880528923^^4912?\n"
    writer = threading.Thread(target=lambda: [end.write(payload * 100, timeout=10) for _ in range(n // 100)])
    started = time.perf_counter()
    writer.start()
    for _ in range(n // 100 * 100):
        port.readline()
    elapsed = time.perf_counter() - started
    writer.join()
    port.close()
    end.close()
    return n // 100 * 100 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20000)
    args = parser.parse_args()
    cards = [encode_card_frame(f"{i % 256:02X}{i:08X}") for i in range(args.frames)]
    sale = (b'{"type":"sale","sale_id":"S-t1-bench-1","till":"t1","cashier":"c07","currency":"EUR","items":'
            b'[{"kind":"ticket","sku":"TKT-STD","film":"Harbour of Glass","hall":"h2",'
            b'"showtime":"2026-11-23T19:30:00Z","qty":2,"price":1250}]}')
    sales = [encode_pos_frame(sale)] * (args.frames // 4)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "tty"
        rate = through_serial_line(link, cards, Rdm6300Parser)
        print(f"RDM6300 frames (14 B) via SerialLine:   {rate:10,.0f} frames/s  ({rate * 14 / 1e6:.2f} MB/s)")
        rate = through_serial_line(link, sales, PosFrameParser)
        size = len(sales[0])
        print(f"POS sale frames ({size} B) via SerialLine: {rate:8,.0f} frames/s  ({rate * size / 1e6:.2f} MB/s)")
        rate = through_readline(link, args.frames)
        print(f"pyserial readline() (30 B lines):        {rate:10,.0f} lines/s   (for comparison)")
    print("(a real RDM6300 at 9600 baud sends at most 68 frames/s)")


if __name__ == "__main__":
    main()
