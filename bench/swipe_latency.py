"""Swipe to answer through real pseudo-terminals: a card frame on the reader's line, then the till's sale on
the POS line, answered by a running agent (durable journal, no broker). The raw pty is measured in the same
run, so the box's share stands apart from the line's.

Run from the repository root: .venv/bin/python bench/swipe_latency.py [--swipes 300]
Prints p50/p99/max of: swipe -> card taken (reader line, parser, card id, token), sale -> answer (POS line,
decision, journal commit with fsync), and the two together; then the pty's one-byte round trip and byte rate.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import tempfile
import threading
import time
from pathlib import Path

from edge.agent import Agent
from edge.devices.magstripe import encode_swipe
from edge.devices.pos import PosFrame, PosFrameParser
from edge.devices.pos import encode_frame as encode_pos
from edge.devices.rdm6300 import encode_frame as encode_fob
from edge.settings import EdgeSettings
from edge.simulator.pty import PtyEnd, create_pty_link
from edge.simulator.readers import member_cards
from edge.store.bootstrap import open_journal


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   max {ordered[-1]:6.2f} ms"


def answer(end: PtyEnd, parser: PosFrameParser, deadline: float) -> None:
    while time.monotonic() < deadline:
        if any(isinstance(item, PosFrame) for item in parser.feed(end.read_available(0.5))):
            return
    raise SystemExit("no answer within the deadline")


def swipes(root: Path, n: int, kind: str) -> tuple[list[float], list[float], list[float]]:
    pos, card = create_pty_link(root / "pos"), create_pty_link(root / "card")
    settings = EdgeSettings.model_validate({
        "site_id": "bench", "device_id": "bench-box1", "data_dir": root / f"data-{kind}",
        "pepper": "bench-pepper-0123456789", "mqtt": {"port": 1},
        "tills": [{"till_id": "t1", "pos_port": str(pos.link)}],
        "readers": [{"till": "t1", "kind": kind, "port": str(card.link)}],
    })
    os.umask(0o077)
    agent = Agent(settings, journal=open_journal(settings, create_key=True), pepper=b"bench-pepper-0123456789")
    taken = threading.Event()
    present = agent.present_card

    def timed_present(*args: object, **kwargs: object) -> bool:
        accepted = present(*args, **kwargs)  # type: ignore[arg-type]
        taken.set()
        return accepted

    agent.present_card = timed_present  # type: ignore[method-assign]
    agent.start()
    try:
        while set(agent.status(True).peripherals.values()) != {"up"}:
            time.sleep(0.01)
        parser = PosFrameParser()
        to_card, to_answer, total = [], [], []
        cards = member_cards(1, n)
        for i in range(n):
            frame = encode_fob(cards[i].fob_hex) if kind == "rdm6300" else encode_swipe(cards[i].loyalty)
            sale = encode_pos((b'{"type":"sale","sale_id":"S-%d","till":"t1","cashier":"c01","currency":"EUR",'
                               b'"items":[{"kind":"ticket","sku":"TKT-STD","film":"Harbour of Glass","hall":"h1",'
                               b'"showtime":"2026-11-25T20:00:00Z","qty":1,"price":1250}]}') % i)
            taken.clear()
            started = time.perf_counter()
            card.write(frame)
            if not taken.wait(5):
                raise SystemExit(f"{kind}: card {i} not taken")
            got_card = time.perf_counter()
            pos.write(sale)
            answer(pos, parser, time.monotonic() + 5)
            done = time.perf_counter()
            to_card.append((got_card - started) * 1000)
            to_answer.append((done - got_card) * 1000)
            total.append((done - started) * 1000)
        return to_card, to_answer, total
    finally:
        agent.stop()
        pos.close()
        card.close()


def raw_pty(root: Path, rounds: int, megabytes: int) -> tuple[list[float], float]:
    """One byte there and back through a pty (echoed by a thread on the slave side), and bulk bytes/s."""
    end = create_pty_link(root / "raw")
    slave = os.open(end.link, os.O_RDWR | os.O_NOCTTY)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([slave], [], [], 0.1)
            if ready:
                os.write(slave, os.read(slave, 65536))

    trips = []
    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    for _ in range(rounds):
        started = time.perf_counter()
        end.write(b"x")
        while not end.read_available(1.0):
            pass
        trips.append((time.perf_counter() - started) * 1000)
    stop.set()
    thread.join()
    blob = os.urandom(1 << 16)
    total = megabytes << 20
    received = 0

    def drain() -> None:
        nonlocal received
        while received < total:
            ready, _, _ = select.select([slave], [], [], 1.0)
            if not ready:
                return
            received += len(os.read(slave, 1 << 16))

    reader = threading.Thread(target=drain)
    started = time.perf_counter()
    reader.start()
    for _ in range(total // len(blob)):
        end.write(blob, timeout=10)
    reader.join()
    rate = received / (time.perf_counter() - started)
    os.close(slave)
    end.close()
    return trips, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swipes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("rdm6300", "magstripe"):
            to_card, to_answer, total = swipes(Path(tmp), args.swipes, kind)
            print(f"{kind:<10} swipe -> card taken   {percentiles(to_card)}")
            print(f"{kind:<10} sale  -> answer       {percentiles(to_answer)}")
            print(f"{kind:<10} swipe + sale, total  {percentiles(total)}   ({args.swipes} swipes)")
        trips, rate = raw_pty(Path(tmp), 1000, 32)
        print(f"raw pty    1 byte round trip     {percentiles(trips)}")
        print(f"raw pty    bulk                  {rate / 1e6:6.1f} MB/s")
    print("(a real line at 9600 baud needs 14.6 ms for an RDM6300 frame and ~225 ms for a 216-byte sale frame)")


if __name__ == "__main__":
    main()
