"""Box-office deltas of a batch of events, keyed like the `box_office` table. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from protocol.events import Event, SaleRecorded


@dataclass(frozen=True, slots=True, order=True)
class RollupKey:
    """One row of the box-office rollup: a site's day, film, hall and currency ('' for no film or hall)."""

    site_id: str
    day: date
    film: str
    hall: str
    currency: str


@dataclass(slots=True)
class RollupDelta:
    """What a batch adds to one rollup row."""

    tickets: int = 0
    ticket_revenue: int = 0
    concession_revenue: int = 0
    sales: int = 0

    def negated(self) -> RollupDelta:
        """The delta that takes this one back out (events archived by a conflict resolution)."""
        return RollupDelta(-self.tickets, -self.ticket_revenue, -self.concession_revenue, -self.sales)

    def as_row(self, key: RollupKey) -> dict[str, object]:
        """The row to upsert: key columns plus the amounts to add."""
        return {
            "site_id": key.site_id,
            "day": key.day,
            "film": key.film,
            "hall": key.hall,
            "currency": key.currency,
            "tickets": self.tickets,
            "ticket_revenue": self.ticket_revenue,
            "concession_revenue": self.concession_revenue,
            "sales": self.sales,
        }


def add_sale(deltas: dict[RollupKey, RollupDelta], *, site_id: str, event: Event, sale: SaleRecorded) -> None:
    """Add one sale's lines to `deltas`.

    A sale counts once, under the row of its first ticket line (or its first line when it sold no
    ticket), so that sales summed by site or day are exact; by film they follow that first ticket.
    """
    day = event.occurred_at.date()  # occurred_at is UTC: the rollup's days are UTC days
    first_ticket = next((item for item in sale.items if item.kind == "ticket"), sale.items[0])
    for item in sale.items:
        key = RollupKey(site_id, day, item.film or "", item.hall or "", sale.currency)
        delta = deltas.setdefault(key, RollupDelta())
        if item.kind == "ticket":
            delta.tickets += item.quantity
            delta.ticket_revenue += item.amount
        else:
            delta.concession_revenue += item.amount
    counted = RollupKey(site_id, day, first_ticket.film or "", first_ticket.hall or "", sale.currency)
    deltas[counted].sales += 1


def sale_deltas(site_id: str, sales: Iterable[tuple[Event, SaleRecorded]]) -> dict[RollupKey, RollupDelta]:
    """The summed deltas of several sales of one site."""
    deltas: dict[RollupKey, RollupDelta] = {}
    for event, sale in sales:
        add_sale(deltas, site_id=site_id, event=event, sale=sale)
    return deltas
