"""How long a till waits for its answer: decide + durable journal commit, per sale, on this machine's disk.

Run: .venv/bin/python bench/decision_latency.py [--sales 2000] [--dir /path/on/the/target/disk]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agent import Agent
from edge.settings import EdgeSettings
from edge.store.bootstrap import open_journal
from protocol.cards import CardScheme, em4100_id


def sale(n: int) -> bytes:
    return json.dumps({
        "type": "sale", "sale_id": f"S-{n}", "till": "t1", "cashier": "c07", "currency": "EUR",
        "items": [
            {"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
             "showtime": "2026-11-23T19:30:00Z", "qty": 2, "price": 1250},
            {"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": 650},
        ],
    }).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sales", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        settings = EdgeSettings.model_validate({
            "site_id": "bench", "device_id": "bench-box1", "data_dir": Path(tmp) / "data",
            "pepper": "bench-pepper-0123456789",
            "tills": [{"till_id": "t1", "pos_port": "loop://"}],
            "readers": [{"till": "t1", "kind": "rdm6300", "port": "loop://"}],
        })
        agent = Agent(settings, journal=open_journal(settings, create_key=True), pepper=b"bench-pepper-0123456789",
                      identity=Ed25519PrivateKey.generate())
        bodies = [sale(n) for n in range(args.sales)]
        latencies = []
        started = time.perf_counter()
        for n, body in enumerate(bodies):
            if n % 2 == 0:  # half the sales carry a member card
                agent.present_card("t1", em4100_id(n, 40, CardScheme()), now=float(n))
            t0 = time.perf_counter()
            agent.handle_sale("t1", body, now=float(n) + 0.5)
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
        agent.journal.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(f"decision + durable commit: {args.sales} sales in {elapsed:.2f}s = {args.sales / elapsed:,.0f} sales/s")
    print(f"  latency ms: p50 {q[49]:.3f}  p95 {q[94]:.3f}  p99 {q[98]:.3f}  max {latencies[-1]:.3f}")


if __name__ == "__main__":
    main()
