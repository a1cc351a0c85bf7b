"""The member directory on a box: a whole chain's directory loaded as a snapshot, then looked up at a sale.

The hub's side is simulated and not timed: random members (1 or 2 devices in `seen`, a third with a
birthday), cut into pages of 2,000, signed and encoded. Tokens are random and, as the hub sends a
snapshot, in token order (`--order random` shuffles them: a far slower load, every page writing all over
the table). The box's side is timed step by step, page by
page, as `DirectoryKeeper.offer` runs it: decoding (pydantic validation of the wire JSON), the signature
check, and `Directory.apply` (birthdays sealed, one transaction per page, the swap at the last page).
Then lookups of 10,000 random known tokens: the entry alone, and with the member's other cards (what a
sale reads). Peak RSS is the whole process's, harness included (it keeps one page at a time).
Run: .venv/bin/python bench/directory_load.py [--members 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.directory import DirectoryKeeper
from edge.store.crypto import Sealer
from edge.store.directory import Directory
from protocol.codec import decode, encode
from protocol.directory import PAGE_ENTRIES, DirectoryPage
from protocol.signing import sign_directory_page, verify_directory_page

VERSION = 1_000
DEVICES = [f"site{n:03d}-box{b}" for n in range(200) for b in (1, 2)]


def page_body(rng: random.Random, first: int, count: int, step: int | None) -> list[dict[str, object]]:
    """`count` members from number `first` on, one card each; with `step`, token n is random within
    [n * step, (n + 1) * step), so the tokens come in order without being kept."""
    entries: list[dict[str, object]] = []
    for n in range(first, first + count):
        seen = {device: rng.randrange(1, 10**6) for device in rng.sample(DEVICES, rng.choice((1, 2)))}
        token = rng.randbytes(32).hex() if step is None else f"{n * step + rng.randrange(step):064x}"
        entry: dict[str, object] = {"token": token, "member_id": f"m-{n}", "status": "active",
                                    "balance": rng.randrange(0, 50_000), "seen": seen}
        if n % 3 == 0:
            entry["birthday"] = f"{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        entries.append(entry)
    return entries


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="members (one card each) in the snapshot")
    parser.add_argument("--order", choices=("sorted", "random"), default="sorted",
                        help="tokens across pages: by token as the hub sends them, or shuffled")
    args = parser.parse_args()
    members: int = args.members
    step = 2**256 // members if args.order == "sorted" else None
    rng = random.Random(20261125)
    hub = Ed25519PrivateKey.generate()
    hub_key = hub.public_key()
    pages = (members + PAGE_ENTRIES - 1) // PAGE_ENTRIES
    sample_at = set(rng.sample(range(members), min(10_000, members)))  # tokens looked up afterwards
    sampled: list[str] = []
    wire_bytes = 0
    timing = {"decode": 0.0, "verify": 0.0, "apply": 0.0}
    last_apply = 0.0
    rss_before = rss_mib()
    with tempfile.TemporaryDirectory(prefix="marquee-directory-") as tmp:
        directory = Directory(Path(tmp) / "data" / "directory.db", Sealer(os.urandom(32), "bench-v1"))
        for number in range(1, pages + 1):
            first = (number - 1) * PAGE_ENTRIES
            body = page_body(rng, first, min(PAGE_ENTRIES, members - first), step)
            sampled += [str(entry["token"]) for n, entry in enumerate(body, start=first) if n in sample_at]
            page = DirectoryPage.model_validate({"kind": "snapshot", "version_from": 0, "version": VERSION,
                                                 "page": number, "pages": pages, "entries": body})
            payload = encode(sign_directory_page(page, hub))
            wire_bytes += len(payload)
            started = time.perf_counter()
            received = decode(DirectoryPage, payload)
            decoded = time.perf_counter()
            verify_directory_page(received, hub_key)
            verified = time.perf_counter()
            result = directory.apply(received)
            applied = time.perf_counter()
            timing["decode"] += decoded - started
            timing["verify"] += verified - decoded
            timing["apply"] += applied - verified
            last_apply = applied - verified
            assert result == ("applied" if number == pages else "partial"), result
        total = sum(timing.values())
        stats = directory.stats()
        on_disk = sum(p.stat().st_blocks * 512 for p in directory.path.parent.glob("directory.db*"))
        assert stats.entries == members and stats.version == VERSION
        print(f"snapshot of {members:,} members in {pages} pages of {PAGE_ENTRIES}, tokens {args.order} "
              f"({wire_bytes / 1e6:.0f} MB of JSON on the wire)")
        print(f"  total {total:.1f} s, {members / total:,.0f} entries/s: decode {timing['decode']:.1f} s "
              f"({members / timing['decode']:,.0f}/s), signature {timing['verify']:.1f} s, "
              f"apply {timing['apply']:.1f} s ({members / timing['apply']:,.0f}/s; last page with the swap "
              f"{last_apply * 1000:.0f} ms)")
        print(f"  directory.db {stats.file_bytes / 1e6:.1f} MB ({stats.file_bytes / members:.0f} bytes per member), "
              f"{on_disk / 1e6:.1f} MB of disk blocks")

        keeper = DirectoryKeeper(directory, hub_key, site_id="site000", device_id=DEVICES[0], request=lambda r: None)
        rng.shuffle(sampled)
        lookups, members_read = [], []
        for token in sampled:
            started = time.perf_counter()
            found = directory.lookup(token)
            lookups.append(time.perf_counter() - started)
            started = time.perf_counter()
            entry, tokens = keeper.member(token)
            members_read.append(time.perf_counter() - started)
            assert found is not None and entry == found and tokens == [token]
        print(f"  lookup of {len(sampled):,} random tokens: p50 {percentile(lookups, 0.5) * 1e6:.0f} us, "
              f"p99 {percentile(lookups, 0.99) * 1e6:.0f} us (mean {statistics.fmean(lookups) * 1e6:.0f} us); "
              f"with the member's cards p50 {percentile(members_read, 0.5) * 1e6:.0f} us, "
              f"p99 {percentile(members_read, 0.99) * 1e6:.0f} us")
        directory.close()
    print(f"  peak RSS {rss_mib():.0f} MiB (after imports {rss_before:.0f} MiB)")


if __name__ == "__main__":
    main()
