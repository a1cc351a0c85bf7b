"""Frames parsed per second by each reader family's pure parser (no serial line, no threads), and the
canonical card id on top, so a parser's own cost shows apart from the port's.

Run from the repository root: .venv/bin/python bench/parser_throughput.py [--frames 50000] [--repeat 5]
Each figure is the best of `--repeat` runs over the same stream, fed in 4 KiB chunks as a port delivers it.
Goal: > 100,000 frames/s per parser on the development machine.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from edge.devices.barcode import BarcodeParser, encode_scan
from edge.devices.families import card_id
from edge.devices.magstripe import MagstripeParser, encode_swipe
from edge.devices.nfc_line import NfcLineParser, encode_uid_line
from edge.devices.pn532 import Pn532FrameParser, encode_reply
from edge.devices.pos import PosFrameParser
from edge.devices.pos import encode_frame as encode_pos
from edge.devices.rdm6300 import Rdm6300Parser
from edge.devices.rdm6300 import encode_frame as encode_rdm
from edge.devices.serial_line import Parser
from edge.devices.wiegand import WiegandParser, encode_wiegand
from protocol.cards import CardScheme

W24 = CardScheme(em4100="wiegand24")


def _luhn(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


def streams(n: int) -> dict[str, tuple[Callable[[], Parser], list[bytes]]]:
    """Each family's parser and `n` distinct frames as its device sends them."""
    rng = random.Random(7)
    sale = encode_pos(b'{"type":"sale","sale_id":"S-1","till":"t1","cashier":"c07","currency":"EUR","items":'
                      b'[{"kind":"ticket","sku":"TKT-STD","film":"Harbour of Glass","hall":"h2",'
                      b'"showtime":"2026-11-23T19:30:00Z","qty":2,"price":1250}]}')
    return {
        "rdm6300": (Rdm6300Parser, [encode_rdm(f"{rng.getrandbits(40):010X}") for _ in range(n)]),
        "magstripe": (MagstripeParser, [encode_swipe(_luhn(f"9{rng.randrange(10**13, 10**14)}"), name="MEMBER/A")
                                        for _ in range(n)]),
        "nfc-line": (NfcLineParser, [encode_uid_line(rng.randbytes(7)) for _ in range(n)]),
        "pn532": (Pn532FrameParser, [encode_reply(0x4A, bytes([1, 1, 0, 0x44, 0, 7]) + rng.randbytes(7))
                                     for _ in range(n)]),
        "wiegand-bits": (WiegandParser, [encode_wiegand(rng.getrandbits(8), rng.getrandbits(16)) for _ in range(n)]),
        "wiegand-hex": (lambda: WiegandParser(output="hex"),
                        [encode_wiegand(rng.getrandbits(8), rng.getrandbits(16), output="hex") for _ in range(n)]),
        "barcode": (BarcodeParser, [encode_scan(f"M{_luhn(str(rng.randrange(10**8, 10**9)))}") for _ in range(n)]),
        "pos (sale frame)": (PosFrameParser, [sale] * n),
    }


def rate(factory: Callable[[], Parser], frames: list[bytes], repeat: int, with_id: bool) -> tuple[float, int]:
    """Best frames/s over `repeat` runs, and the frames recognised (every one, or the stream is wrong)."""
    stream = b"".join(frames)
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    best = 0.0
    found = 0
    for _ in range(repeat):
        parser = factory()
        found = 0
        started = time.perf_counter()
        for chunk in chunks:
            for item in parser.feed(chunk):
                if with_id:
                    card_id(item, W24)
                found += 1
        best = max(best, len(frames) / (time.perf_counter() - started))
    return best, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'family':<18} {'frame':>6} {'parse only':>16} {'parse + card id':>18}")
    for name, (factory, frames) in streams(args.frames).items():
        parsed, found = rate(factory, frames, args.repeat, with_id=False)
        if found != len(frames):
            raise SystemExit(f"{name}: {found} items from {len(frames)} frames")
        identified, _ = rate(factory, frames, args.repeat, with_id=name != "pos (sale frame)")
        print(f"{name:<18} {len(frames[0]):>4} B {parsed:>10,.0f} fr/s {identified:>12,.0f} fr/s")
    print("(for scale: 9600 baud carries about 960 bytes/s, 68 RDM6300 frames/s)")


if __name__ == "__main__":
    main()
