"""What sales add to each rollup row, keyed like the rollup tables. Pure: local times are given.

Rules (docs/analytics.md): a ticket line counts under its own film, hall and show; a sale's concessions, its
count and whether a member's card was used count under its first ticket line (a sale without a ticket: no
film, no hall, no show). Days and hours are the sale's local ones, except in the show rollups (the show's). A
line's day part is its show's start when the till gave a showtime, else the sale's hour."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from cloud.analytics.dayparts import day_part
from protocol.events import LineItem, SaleRecorded


@dataclass(slots=True)
class Amounts:
    """What one sales rollup row adds up (money in minor units)."""

    tickets: int = 0
    ticket_revenue: int = 0
    concession_revenue: int = 0
    concession_items: int = 0
    sales: int = 0
    member_sales: int = 0

    def add(self, other: Amounts, sign: int = 1) -> None:
        """Add `other` (times `sign`) onto this row."""
        self.tickets += sign * other.tickets
        self.ticket_revenue += sign * other.ticket_revenue
        self.concession_revenue += sign * other.concession_revenue
        self.concession_items += sign * other.concession_items
        self.sales += sign * other.sales
        self.member_sales += sign * other.member_sales

    def values(self, sign: int = 1) -> dict[str, int]:
        """The columns to add (times `sign`: -1 takes them back out)."""
        return {"tickets": sign * self.tickets, "ticket_revenue": sign * self.ticket_revenue,
                "concession_revenue": sign * self.concession_revenue,
                "concession_items": sign * self.concession_items, "sales": sign * self.sales,
                "member_sales": sign * self.member_sales}


@dataclass(slots=True)
class ShowAmounts:
    """A show's row: its local day and hour, and what it adds up."""

    day: date
    hour: int
    amounts: Amounts = field(default_factory=Amounts)


HourlyKey = tuple[str, date, int, str, str, str]
"""sales_hourly: site, day, hour, film, hall, currency."""
DailyKey = tuple[str, date, str, str, str]
"""sales_daily: site, day, film, hall, currency."""
SiteHourKey = tuple[str, date, int, str]
"""site_hourly: site, day, hour, currency."""
SitePartKey = tuple[str, date, str, str]
"""site_dayparts: site, day, day part, currency."""
ShowKey = tuple[str, str, datetime, str, str]
"""show_sales: site, hall, showtime (UTC), film, currency."""
K = TypeVar("K")


@dataclass(slots=True)
class Deltas:
    """A batch's additions to every sales rollup (the show counts are found when the rows are written)."""

    hourly: dict[HourlyKey, Amounts] = field(default_factory=dict)
    daily: dict[DailyKey, Amounts] = field(default_factory=dict)
    site_hours: dict[SiteHourKey, Amounts] = field(default_factory=dict)
    site_parts: dict[SitePartKey, Amounts] = field(default_factory=dict)
    shows: dict[ShowKey, ShowAmounts] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.hourly)

    def add_sale(self, *, site_id: str, sale: SaleRecorded, at: datetime, zone: ZoneInfo) -> None:
        """Add one sale that happened at `at` (aware) at a site whose time zone is `zone`."""
        local_at = at.astimezone(zone)
        day, hour, currency = local_at.date(), local_at.hour, sale.currency
        first = next((item for item in sale.items if item.kind == "ticket"), None)
        for item in sale.items:
            if item.kind != "ticket":
                continue
            line = Amounts(tickets=item.quantity, ticket_revenue=item.amount)
            if item is first:
                line.add(_sale_amounts(sale))
            self._add_line(site_id, day, hour, currency, item, line, zone)
        if first is None:  # concessions only: no film, hall or show; the day part of the sale's hour
            self._add_line(site_id, day, hour, currency, None, _sale_amounts(sale), zone)

    def _add_line(self, site_id: str, day: date, hour: int, currency: str, item: LineItem | None,
                  line: Amounts, zone: ZoneInfo) -> None:
        film = (item.film or "") if item is not None else ""
        hall = (item.hall or "") if item is not None else ""
        showtime = item.showtime if item is not None else None
        part = day_part(showtime.astimezone(zone).hour if showtime is not None else hour)
        _into(self.hourly, (site_id, day, hour, film, hall, currency), line)
        _into(self.daily, (site_id, day, film, hall, currency), line)
        _into(self.site_hours, (site_id, day, hour, currency), line)
        _into(self.site_parts, (site_id, day, part, currency), line)
        if showtime is not None:
            shown = showtime.astimezone(zone)
            show = self.shows.get((site_id, hall, showtime, film, currency))
            if show is None:
                show = self.shows[(site_id, hall, showtime, film, currency)] = ShowAmounts(shown.date(), shown.hour)
            show.amounts.add(line)


def _sale_amounts(sale: SaleRecorded) -> Amounts:
    """What a sale adds besides its ticket lines: its concessions, itself, and whether a member's card was used."""
    concessions = [item for item in sale.items if item.kind != "ticket"]
    return Amounts(concession_revenue=sum(item.amount for item in concessions),
                   concession_items=sum(item.quantity for item in concessions), sales=1,
                   member_sales=1 if sale.card_token is not None else 0)


def _into(rows: dict[K, Amounts], key: K, line: Amounts) -> None:
    row = rows.get(key)
    if row is None:
        row = rows[key] = Amounts()
    row.add(line)
