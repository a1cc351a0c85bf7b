"""Loyalty decisions: `edge/decide.py` alone (decisions per second), then the till's answer time through the
box (decide + durable journal commit) for an earning sale, a redeem request (authorise and hold) and the sale
that captures the hold: p50 and p99.

Run: .venv/bin/python bench/redemption_latency.py [--rounds 1000] [--dir /path/on/the/target/disk]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.agent import Agent
from edge.decide import Capture, MemberState, authorise, decide_sale
from edge.settings import EdgeSettings
from edge.store.bootstrap import open_journal
from protocol.cards import CardScheme, em4100_id
from protocol.events import LineItem
from protocol.rules import Earning, Redemption, RuleBundle
from protocol.signing import public_key_text, sign_bundle

HUB = Ed25519PrivateKey.generate()
BUNDLE = RuleBundle(
    version=1, published_at=datetime(2026, 11, 25, tzinfo=UTC), currency="EUR",
    earning=(Earning(rule_id="tickets", kind="ticket", basis_points=1500),
             Earning(rule_id="premium", kind="ticket", skus=("TKT-PRM",), basis_points=2500),
             Earning(rule_id="bar", kind="concession", basis_points=500)),
    redemption=Redemption(enabled=True, kinds=("ticket",), points_per_unit=10, offline_daily_cap=50_000),
)
ITEMS = [{"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
          "showtime": "2026-11-23T19:30:00Z", "qty": 2, "price": 1250},
         {"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": 650}]


def request(kind: str, sale_id: str, **extra: object) -> bytes:
    return json.dumps({"type": kind, "sale_id": sale_id, "till": "t1", "cashier": "c07", "currency": "EUR",
                       "items": ITEMS, **extra}).encode()


NOW = datetime(2026, 11, 25, 19, tzinfo=UTC)


def pure(rounds: int) -> None:
    items = [LineItem(kind="ticket", sku="TKT-STD", quantity=2, unit_price=1250),
             LineItem(kind="concession", sku="POP-L", quantity=1, unit_price=650)]
    member = MemberState("ab" * 32, "m1", "active", balance=90_000, held=1000, unconfirmed_today=2000)
    started = time.perf_counter()
    for n in range(rounds):
        decide_sale(rules=BUNDLE, site_id="s1", till_id="t1", cashier_id="c7", sale_id=f"S-{n}", currency="EUR",
                    items=items, member=member, at=NOW,
                    capture=Capture("h" + "0" * 16, 5000, 500) if n % 4 == 0 else None)
    sales = rounds / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(rounds):
        authorise(BUNDLE, items, member, points=5000)
    auths = rounds / (time.perf_counter() - started)
    print(f"decide.py alone: {sales:,.0f} sale decisions/s (a quarter paying with points), "
          f"{auths:,.0f} authorisations/s")


def ms(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49]:.3f}  p99 {q[98]:.3f}  max {max(values):.3f}"


def through_the_box(rounds: int, folder: Path | None) -> None:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        settings = EdgeSettings.model_validate({
            "site_id": "bench", "device_id": "bench-box1", "data_dir": Path(tmp) / "data",
            "pepper": "bench-pepper-0123456789", "hub_public_key": public_key_text(HUB),
            "tills": [{"till_id": "t1", "pos_port": "loop://"}],
            "readers": [{"till": "t1", "kind": "rdm6300", "port": "loop://"}],
        })
        agent = Agent(settings, journal=open_journal(settings, create_key=True), pepper=b"bench-pepper-0123456789",
                      identity=Ed25519PrivateKey.generate())
        assert agent.rules.offer(sign_bundle(BUNDLE, HUB).model_dump_json(by_alias=True).encode())
        earn, hold, capture = [], [], []
        for n in range(rounds):
            card = em4100_id(n % 50, 40, CardScheme())  # 50 members coming back
            agent.present_card("t1", card, now=float(n))
            t0 = time.perf_counter()
            agent.handle_sale("t1", request("sale", f"E-{n}"), now=n + 0.1)
            earn.append((time.perf_counter() - t0) * 1000)
            agent.present_card("t1", card, now=n + 0.5)
            t0 = time.perf_counter()
            answer = agent.handle_sale("t1", request("redeem", f"R-{n}", points=500), now=n + 0.6)
            hold.append((time.perf_counter() - t0) * 1000)
            hold_id = json.loads(answer[1:-2])["hold_id"]
            t0 = time.perf_counter()
            agent.handle_sale("t1", request("sale", f"R-{n}", hold_id=hold_id), now=n + 0.7)
            capture.append((time.perf_counter() - t0) * 1000)
        agent.journal.close()
        agent.directory.close()
    print(f"the till's answer through the box, {rounds} of each, ms (journal fsync included, wire time not):")
    print(f"  earning sale:                {ms(earn)}")
    print(f"  redeem (authorise and hold): {ms(hold)}")
    print(f"  sale capturing the hold:     {ms(capture)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    pure(max(args.rounds * 20, 1000))
    through_the_box(args.rounds, args.dir)


if __name__ == "__main__":
    main()
