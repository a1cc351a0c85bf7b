"""The demo's CRM export: members holding the simulated tills' cards, with made-up names and balances.

`marquee-hub members import` reads it at start, as a chain moving from its old CRM would; the cards left
out start anonymous accounts when they are first seen at a till.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from edge.simulator.readers import SimCard, member_cards

FIRST = ("Ada", "Bram", "Cleo", "Dario", "Edda", "Fenn", "Greta", "Hugo", "Ilse", "Jory", "Kaia", "Lior")
LAST = ("Quillfeather", "Marchbanks", "Oddington", "Pevensley", "Rookwood", "Thistlecombe", "Vantwest")


def _cards(card: SimCard) -> str:
    tag = card.fob & 0xFFFFFF  # printed as FFF,CCCCC: the chain reads 125 kHz cards in the wiegand24 form
    return ";".join((f"em4100:{tag >> 16:03d},{tag & 0xFFFF:05d}", f"nfc:{card.uid.hex().upper()}",
                     f"magstripe:{card.loyalty}", f"member:{card.member_code}"))


def write_members_csv(path: Path, seeds: list[int], *, share: float = 0.6, seed: int = 7) -> int:
    """A CRM export of `share` of each simulated till's members (`seeds`: the tills' simulator seeds)."""
    rng = random.Random(seed)
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Customer ID", "First name", "Last name", "E-mail", "Mobile", "Date of birth", "Points",
                         "Cards", "Consent date", "Consent purposes"])
        for till_seed in seeds:
            for number, card in enumerate(member_cards(till_seed, 50)):
                if rng.random() >= share:
                    continue
                first, last = rng.choice(FIRST), rng.choice(LAST)
                email = f"{first}.{last}.{till_seed}{number}@example.test".lower()
                writer.writerow([
                    f"CRM-{till_seed}-{number}", first, last, email,
                    f"+44 20 7946 {rng.randrange(10_000):04d}",
                    f"{rng.randrange(1, 29):02d}.{rng.randrange(1, 13):02d}.{rng.randrange(1950, 2006)}",
                    rng.randrange(0, 8000), _cards(card), "2025-06-01", "loyalty;marketing",
                ])
                rows += 1
    return rows
