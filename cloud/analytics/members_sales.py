"""What one sale adds to its member's activity: its local day, day part, tickets, spend, points, genres and the
campaigns that paid on it. Pure: the caller gives the member, the time the sale is believed to have happened
at, the site's time zone and the bundle's film catalogue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from cloud.analytics.dayparts import day_part
from protocol.events import SaleRecorded

CAMPAIGN_PREFIX = "campaign:"
"""How `earned_by` names the points a campaign paid (`protocol.pricing`)."""


@dataclass(frozen=True, slots=True)
class SaleFacts:
    """One sale, as member analytics counts it. Money in minor units, as the lines priced it."""

    member_id: str
    at: datetime
    day: date
    day_part: str
    tickets: int
    ticket_spend: int
    concession_spend: int
    points: int
    genres: Counter[str] = field(default_factory=Counter)
    """Tickets per genre (a film of two genres counts its tickets under both)."""
    campaigns: tuple[tuple[str, int], ...] = ()
    """(campaign id, points it paid on this sale)."""

    @property
    def spend(self) -> int:
        return self.ticket_spend + self.concession_spend


def counted(sale: SaleRecorded) -> bool:
    """Whether a sale counts in its member's activity: a card was shown and was not refused (a lost or blocked
    card, a suspended member: whoever holds it is not the member)."""
    return sale.card_token is not None and sale.loyalty.status != "blocked"


def sale_facts(sale: SaleRecorded, *, member_id: str, at: datetime, tz: tzinfo,
               genres_of: Callable[[str | None], Sequence[str]]) -> SaleFacts:
    """The facts of `sale` for `member_id`, sold at `at` (aware) at a site in time zone `tz`; `genres_of` is
    the bundle's `genres_of(title)`, for lines whose genre the till did not send."""
    tickets = ticket_spend = concession_spend = 0
    genres: Counter[str] = Counter()
    shown: datetime | None = None
    for item in sale.items:
        if item.kind == "ticket":
            tickets += item.quantity
            ticket_spend += item.amount
            for genre in ((item.genre,) if item.genre else tuple(genres_of(item.film))):
                genres[genre[:64]] += item.quantity
            if shown is None and item.showtime is not None:
                shown = item.showtime
        else:
            concession_spend += item.amount
    loyalty = sale.loyalty
    paid = loyalty.status == "earned"
    campaigns = tuple((part.rule[len(CAMPAIGN_PREFIX):], part.points) for part in loyalty.earned_by
                      if paid and part.rule.startswith(CAMPAIGN_PREFIX) and 0 < len(part.rule) - len(CAMPAIGN_PREFIX)
                      <= 64)
    # The show's start when a ticket names one (a matinee bought in the morning is a matinee), else the sale's.
    part = day_part((shown or at).astimezone(tz).hour)
    return SaleFacts(member_id=member_id, at=at, day=at.astimezone(tz).date(), day_part=part, tickets=tickets,
                     ticket_spend=ticket_spend, concession_spend=concession_spend,
                     points=loyalty.points_earned if paid else 0, genres=genres, campaigns=campaigns)
