"""What the fraud rules add to a till's wait: the same day of sales answered by two boxes, one running the full
bundle's loyalty rules alone (fraud rules off), one running them with every fraud rule on; p50 and p99 of
decide + fraud + durable journal commit per sale, measured after a busy day's activity is already in the rules'
memory. Then the rule check alone (`protocol.fraud_window.check_sale`) against that memory, and the memory rebuilt
from the journal, as a restarted box does before it opens its tills.

A day: 6 tills, a cashier signed in at each, 400 member cards (70 % of sales carry one), a sale every 9 s of
the box's clock (the clock is simulated: a day of sales runs in seconds). Honest traffic: the rules rarely fire.

Run: .venv/bin/python bench/fraud_latency.py [--warm 5000] [--sales 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rules_decisions import full_bundle  # beside this script

from edge.agent import Agent
from edge.guard import FraudGuard
from edge.settings import EdgeSettings
from edge.store.bootstrap import open_journal
from protocol.cards import CardScheme, card_token, em4100_id
from protocol.fraud import CountLimit, FraudRules, PointsLimit, RedeemAfterEarning, TwoTills
from protocol.fraud_checks import check_sale
from protocol.rules import RuleBundle
from protocol.signing import public_key_text, sign_bundle

HUB = Ed25519PrivateKey.generate()
TILLS = [f"t{n}" for n in range(1, 7)]
OPENING = datetime(2026, 11, 18, 9, 0, tzinfo=UTC).timestamp()
FRAUD = FraudRules(
    card_points_day=PointsLimit(limit=4000), card_points_till_day=PointsLimit(limit=3000),
    card_points_shift=PointsLimit(limit=2000), same_card_till=CountLimit(limit=4, minutes=60),
    velocity=CountLimit(limit=6, minutes=60, action="flag"), two_tills=TwoTills(seconds=120, action="flag"),
    redeem_after_earning=RedeemAfterEarning(points=1500, minutes=120),
    refund_rate=CountLimit(limit=5, minutes=480, action="flag"),
    override_rate=CountLimit(limit=8, minutes=480, action="flag"))


def sale(n: int, till: str, rng: random.Random) -> bytes:
    items = [{"kind": "ticket", "sku": "TKT-STD", "film": "Invented Film 03", "hall": "h2",
              "showtime": "2026-11-18T19:30:00Z", "qty": rng.randint(1, 3), "price": 1250, "format": "2d"},
             {"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": 650,
              "category": "popcorn"}]
    return json.dumps({"type": "sale", "sale_id": f"S-{n}", "till": till, "cashier": f"c-{till}", "currency": "EUR",
                       "items": items, "fraud": True}, separators=(",", ":")).encode()


def box(folder: Path, bundle: RuleBundle) -> Agent:
    settings = EdgeSettings.model_validate({
        "site_id": "bench", "device_id": "bench-box1", "data_dir": folder / "data", "pepper": "bench-pepper-0123456789",
        "hub_public_key": public_key_text(HUB), "tills": [{"till_id": till, "pos_port": "loop://"} for till in TILLS],
    })
    agent = Agent(settings, journal=open_journal(settings, create_key=True), pepper=b"bench-pepper-0123456789",
                  identity=Ed25519PrivateKey.generate())
    assert agent.rules.offer(sign_bundle(bundle, HUB).model_dump_json(by_alias=True).encode())
    return agent


def day(agent: Agent, warm: int, measured: int, seed: int) -> list[float]:
    """Sign a cashier in at every till, sell `warm` sales unmeasured, then `measured` sales measured (ms)."""
    rng = random.Random(seed)
    cards = [em4100_id(0x1A00000000 + n, 40, CardScheme()) for n in range(400)]
    for till in TILLS:
        agent.handle_sale(till, json.dumps({"type": "signin", "till": till, "cashier": f"c-{till}"}).encode())
    latencies = []
    for n in range(warm + measured):
        till = TILLS[n % len(TILLS)]
        clock = OPENING + n * 9.0
        agent.desk.wall = lambda clock=clock: clock  # type: ignore[misc]
        if rng.random() < 0.7:
            agent.present_card(till, rng.choice(cards), now=clock)
        body = sale(n, till, rng)
        started = time.perf_counter()
        agent.handle_sale(till, body, now=clock + 0.5)
        if n >= warm:
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def figures(latencies: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(latencies, n=100)
    return q[49], q[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm", type=int, default=5000)
    parser.add_argument("--sales", type=int, default=2000)
    args = parser.parse_args()
    loyalty = full_bundle()
    results = {}
    for name, bundle in (("loyalty alone", loyalty.model_copy(update={"fraud": FraudRules(enabled=False)})),
                         ("loyalty + every fraud rule", loyalty.model_copy(update={"fraud": FRAUD}))):
        with tempfile.TemporaryDirectory() as tmp:
            agent = box(Path(tmp), bundle)
            results[name] = figures(day(agent, args.warm, args.sales, seed=7))
            counters = dict(agent.desk.guard.counters)
            window = agent.desk.guard.window
            if name != "loyalty alone" and window is not None:
                token = card_token(b"bench-pepper-0123456789", em4100_id(0x1A00000005, 40, CardScheme()))
                at = datetime.fromtimestamp(OPENING + (args.warm + args.sales) * 9.0, UTC)
                checks = []
                for _ in range(20_000):
                    t0 = time.perf_counter()
                    check_sale(FRAUD, window, at=at, till_id="t1", cashier_id="c-t1", token=token, member_id="m",
                               points=300, card_staff_id=None, blocklisted=False)
                    checks.append((time.perf_counter() - t0) * 1e6)
                check_p50, check_p99 = figures(checks)
                fresh = FraudGuard(site_id="bench", journal=agent.journal, directory=agent.directory,
                                   blocklist=lambda: None, clock_ok=lambda: True)
                t0 = time.perf_counter()
                fresh.window_for(agent.rules.current, at)  # what a restarted box reads before opening its tills
                rebuild_ms = (time.perf_counter() - t0) * 1000
                events = args.warm + args.sales
            agent.journal.close()
        print(f"{name}: {args.sales} sales after {args.warm} in memory: p50 {results[name][0]:.3f} ms, "
              f"p99 {results[name][1]:.3f} ms; fraud counters {counters}")
    (base50, base99), (full50, full99) = results.values()
    print(f"added by the fraud rules: p50 {full50 - base50:+.3f} ms, p99 {full99 - base99:+.3f} ms")
    print(f"check_sale alone against a day's memory: p50 {check_p50:.1f} us, p99 {check_p99:.1f} us")
    print(f"the memory rebuilt from the journal at start ({events:,} sales of the day): {rebuild_ms:.0f} ms")


if __name__ == "__main__":
    main()
