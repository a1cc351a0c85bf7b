"""What the simulated cinema sells: an invented programme of films, halls and showtimes, tickets (with their
format) and concessions (with their category) at their prices, the chain's pass, and sale requests built
from them (docs/pos-protocol.md; v1.2: every request asks for the benefits the rules give)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edge.devices import pos

# Invented titles; any likeness to a real film is accidental.
FILM_TITLES = [
    "The Clockmaker's Garden", "Harbour of Glass", "Seven Winters North", "Marigold Street",
    "Beyond the Salt Flats", "A Kite for Tomasz", "Orbital Drift", "Copper Valley Nights",
    "The Quiet Engine", "Lanterns on the Water", "Paper Astronauts", "The Ninth Lighthouse",
]


@dataclass(frozen=True, slots=True)
class Ticket:
    price: int
    format: str
    category: str


TICKETS = {
    "TKT-STD": Ticket(1250, "2d", "adult"), "TKT-STU": Ticket(1000, "2d", "student"),
    "TKT-CHD": Ticket(900, "2d", "child"), "TKT-PRM": Ticket(1600, "premium", "adult"),
    "TKT-IMX": Ticket(1800, "imax", "adult"),
}
TICKET_WEIGHTS = [50, 15, 20, 10, 5]
CONCESSIONS = {
    "POP-S": ("Popcorn S", 450, "popcorn"), "POP-M": ("Popcorn M", 550, "popcorn"),
    "POP-L": ("Popcorn L", 650, "popcorn"), "DRK-S": ("Soft drink S", 350, "drinks"),
    "DRK-L": ("Soft drink L", 450, "drinks"), "WTR": ("Still water", 350, "drinks"),
    "NACHO": ("Nachos with cheese", 750, "snacks"), "COMBO": ("Popcorn M + drink L", 850, "combo"),
}
PASS_SKU = "PASS-CINE"
PASS_LINE = pos.SaleItem(kind="concession", sku=PASS_SKU, description="CinePass 30 days", category="pass", qty=1,
                         price=2990)
"""The chain's subscription pass, sold at the till like a concession (the rules' PassProduct names its SKU)."""


@dataclass(frozen=True, slots=True)
class Showing:
    film: str
    hall: str
    showtime: datetime


def programme(rng: random.Random) -> list[Showing]:
    """Today's showings: 6 to 10 films, each in one hall at 2 to 5 slots between 11:00 and 22:30 UTC."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    slots = [today + timedelta(hours=11, minutes=30 * i) for i in range(24)]
    films = rng.sample(FILM_TITLES, rng.randint(6, 10))
    showings = []
    for film in films:
        hall = f"h{rng.randint(1, 6)}"
        for slot in rng.sample(slots, rng.randint(2, 5)):
            showings.append(Showing(film, hall, slot))
    return showings


def sale_request(rng: random.Random, showings: list[Showing], *, sale_id: str, till_id: str,
                 currency: str, buys_pass: bool = False) -> pos.SaleRequest:
    """A plausible sale: 1 to 4 tickets for one showing, 0 to 3 concessions, and the pass when `buys_pass`;
    the till applies the benefits the rules give (`"benefits": true`)."""
    showing = rng.choice(showings)
    tickets: dict[str, int] = {}
    for sku in rng.choices(list(TICKETS), weights=TICKET_WEIGHTS, k=rng.randint(1, 4)):
        tickets[sku] = tickets.get(sku, 0) + 1
    items: list[pos.SaleItem] = [
        pos.SaleItem(kind="ticket", sku=sku, film=showing.film, hall=showing.hall, showtime=showing.showtime,
                     qty=qty, price=TICKETS[sku].price, format=TICKETS[sku].format, category=TICKETS[sku].category)
        for sku, qty in tickets.items()
    ]
    for sku in rng.sample(list(CONCESSIONS), rng.randint(0, 3)):
        description, price, category = CONCESSIONS[sku]
        items.append(pos.SaleItem(kind="concession", sku=sku, description=description, category=category, qty=1,
                                  price=price))
    if buys_pass:
        items.append(PASS_LINE)
    return pos.SaleRequest(sale_id=sale_id, till=till_id, cashier=f"c{rng.randint(1, 8):02d}", currency=currency,
                           items=items, benefits=True)
