"""The staff of a simulated till: the cashier working it (signed in with their badge at the start), and, when
`dishonest_rate` is set, a cashier who swipes their own loyalty card on customers' sales that came without one
(the classic fraud the box's rules catch: docs/fraud.md)."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from edge.simulator.readers import SimCard, member_cards


@dataclass(frozen=True, slots=True)
class TillStaff:
    """Who works a simulated till."""

    cashier: str
    """The cashier code the till sends (the staff id HQ knows them by)."""
    badge: SimCard | None = None
    """The card they sign in with; None: the till signs them in on its word."""
    own_card: SimCard | None = None
    """Their own loyalty card."""
    dishonest_rate: float = 0.0
    """Of the sales a customer makes without a card, the share on which they swipe their own."""


def staff_cards(seed: int | None, count: int) -> list[SimCard]:
    """Staff badges and staff members' own cards: distinct from the members' cards of the same seed."""
    return member_cards(int(seed) * 7919 + 104729 if seed is not None else secrets.randbits(32), count)


def cheats(staff: TillStaff | None, rng: random.Random) -> SimCard | None:
    """The cashier's own card for a customer's sale without one, when this cashier cheats this time."""
    if staff is None or staff.own_card is None or staff.dishonest_rate <= 0:
        return None
    return staff.own_card if rng.random() < staff.dishonest_rate else None


def site_staff(site_id: str, seed: int | None, till_ids: list[str], *, dishonest_till: str | None = None,
               dishonest_rate: float = 0.5) -> dict[str, TillStaff]:
    """The cashier of each till of a simulated site: code `<site>-<till>`, a badge, their own card; the cashier
    of `dishonest_till` swipes it on `dishonest_rate` of card-less sales. The same for the same seed, so HQ can
    register the badges the tills will read."""
    cards = staff_cards(seed, 2 * len(till_ids))
    return {
        till_id: TillStaff(cashier=f"{site_id[:24]}-{till_id}"[:32], badge=cards[2 * index],
                           own_card=cards[2 * index + 1],
                           dishonest_rate=dishonest_rate if till_id == dishonest_till else 0.0)
        for index, till_id in enumerate(till_ids)
    }
