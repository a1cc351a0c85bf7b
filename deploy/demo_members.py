"""The demo's CRM export: members holding the simulated tills' cards, with made-up names and balances.

`marquee-hub members import` reads it at start, as a chain moving from its old CRM would; the cards left
out start anonymous accounts when they are first seen at a till. Some members have their birthday this week,
so the tills give a birthday ticket while the demo runs.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from edge.simulator.readers import SimCard, member_cards

FIRST = ("Ada", "Bram", "Cleo", "Dario", "Edda", "Fenn", "Greta", "Hugo", "Ilse", "Jory", "Kaia", "Lior")
LAST = ("Quillfeather", "Marchbanks", "Oddington", "Pevensley", "Rookwood", "Thistlecombe", "Vantwest")


def _cards(card: SimCard) -> str:
    tag = card.fob & 0xFFFFFF  # printed as FFF,CCCCC: the chain reads 125 kHz cards in the wiegand24 form
    return ";".join((f"em4100:{tag >> 16:03d},{tag & 0xFFFF:05d}", f"nfc:{card.uid.hex().upper()}",
                     f"magstripe:{card.loyalty}", f"member:{card.member_code}"))


def date_of_birth(rng: random.Random, this_week: bool, today: date) -> date:
    """A made-up date of birth; with `this_week`, its day and month fall in the ISO week of `today`."""
    year = rng.randrange(1950, 2006)
    if not this_week:
        return date(year, rng.randrange(1, 13), rng.randrange(1, 29))
    day = today - timedelta(days=today.weekday()) + timedelta(days=rng.randrange(7))
    return date(2000 if (day.month, day.day) == (2, 29) else year, day.month, day.day)


def write_members_csv(path: Path, seeds: list[int], *, members: int = 50, share: float = 0.6, seed: int = 7,
                      birthday_share: float = 0.15, today: date | None = None) -> int:
    """A CRM export of `share` of each simulated till's `members` (`seeds`: the tills' simulator seeds), of whom
    `birthday_share` have their birthday in the week of `today` (UTC)."""
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Customer ID", "First name", "Last name", "E-mail", "Mobile", "Date of birth", "Points",
                         "Cards", "Consent date", "Consent purposes"])
        for till_seed in seeds:
            for number, card in enumerate(member_cards(till_seed, members)):
                if rng.random() >= share:
                    continue
                first, last = rng.choice(FIRST), rng.choice(LAST)
                email = f"{first}.{last}.{till_seed}{number}@example.test".lower()
                born = date_of_birth(rng, rng.random() < birthday_share, today)
                writer.writerow([
                    f"CRM-{till_seed}-{number}", first, last, email,
                    f"+44 20 7946 {rng.randrange(10_000):04d}",
                    born.strftime("%d.%m.%Y"),
                    rng.randrange(0, 8000), _cards(card), "2025-06-01", "loyalty;marketing",
                ])
                rows += 1
    return rows
