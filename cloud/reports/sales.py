"""The box office and concessions sections, from the `sales_daily` rollup (by each site's local day).

One grouped query per view (by site, by film) over the period's days; totals are the sum of the by-site lines,
so the two always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date
from typing import Literal

import sqlalchemy as sa

from cloud.api.deps import site_filter
from cloud.db.analytics_tables import sales_daily
from cloud.reports.model import BoxOffice, BoxOfficeLine, ConcessionLine, Concessions

TOP_FILMS = 10


@dataclass(slots=True)
class SalesSums:
    """What the rollup adds up, for one key and currency."""

    tickets: int = 0
    ticket_revenue: int = 0
    concession_revenue: int = 0
    concession_items: int = 0
    sales: int = 0
    member_sales: int = 0

    def add(self, other: SalesSums) -> None:
        for each in fields(self):
            setattr(self, each.name, getattr(self, each.name) + getattr(other, each.name))


Sums = dict[tuple[str, str], SalesSums]
"""(site id or film, currency) -> sums."""


def sales_sums(conn: sa.Connection, *, first: date, last: date, sites: frozenset[str] | None,
               by: Literal["site", "film"]) -> Sums:
    """The rollup's sums over local days first..last at `sites` (None: every site), by site or by film."""
    key = sales_daily.c.site_id if by == "site" else sales_daily.c.film
    names = [each.name for each in fields(SalesSums)]
    query = (sa.select(key.label("key"), sales_daily.c.currency,
                       *[sa.func.coalesce(sa.func.sum(sales_daily.c[name]), 0).label(name) for name in names])
             .where(sales_daily.c.day >= first, sales_daily.c.day <= last,
                    site_filter(sales_daily.c.site_id, sites))
             .group_by(key, sales_daily.c.currency))
    return {(row.key, row.currency): SalesSums(*(int(row._mapping[name]) for name in names))
            for row in conn.execute(query)}


def per_currency(sums: Sums) -> dict[str, SalesSums]:
    """The sums added up per currency."""
    totals: dict[str, SalesSums] = {}
    for (_, currency), each in sorted(sums.items()):
        totals.setdefault(currency, SalesSums()).add(each)
    return totals


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _box_line(sums: SalesSums, currency: str, *, site_id: str | None = None, film: str | None = None) -> BoxOfficeLine:
    return BoxOfficeLine(site_id=site_id, film=film, currency=currency, tickets=sums.tickets,
                         ticket_revenue=sums.ticket_revenue, sales=sums.sales,
                         average_ticket_price=_ratio(sums.ticket_revenue, sums.tickets))


def _concession_line(sums: SalesSums, currency: str, *, site_id: str | None = None) -> ConcessionLine:
    return ConcessionLine(site_id=site_id, currency=currency, concession_revenue=sums.concession_revenue,
                          concession_items=sums.concession_items, tickets=sums.tickets, sales=sums.sales,
                          attach_rate=_ratio(sums.concession_items, sums.tickets),
                          spend_per_head=_ratio(sums.concession_revenue, sums.tickets))


def box_office_section(*, by_site: Sums, by_film: Sums, previous: Sums) -> BoxOffice:
    """Tickets and ticket revenue: totals per currency (and the previous period's), by site, by film."""
    films = sorted(((film, currency, sums) for (film, currency), sums in by_film.items() if sums.tickets),
                   key=lambda item: (-item[2].ticket_revenue, -item[2].tickets, item[0], item[1]))
    # Bar-only sales have no film: they are in the totals, not in the list of films.
    return BoxOffice(
        totals=[_box_line(sums, currency) for currency, sums in per_currency(by_site).items()],
        previous=[_box_line(sums, currency) for currency, sums in per_currency(previous).items()],
        by_site=[_box_line(sums, currency, site_id=site) for (site, currency), sums in sorted(by_site.items())],
        by_film=[_box_line(sums, currency, film=film or None) for film, currency, sums in films],
        top_films=_top(film for film, _, _ in films if film),
    )


def concessions_section(*, by_site: Sums, previous: Sums) -> Concessions:
    """The bar's revenue and items against tickets: totals per currency (and the previous period's), by site."""
    return Concessions(
        totals=[_concession_line(sums, currency) for currency, sums in per_currency(by_site).items()],
        previous=[_concession_line(sums, currency) for currency, sums in per_currency(previous).items()],
        by_site=[_concession_line(sums, currency, site_id=site) for (site, currency), sums in sorted(by_site.items())],
    )


def _top(films: Iterable[str]) -> list[str]:
    top: list[str] = []
    for film in films:
        if film not in top:
            top.append(film)
        if len(top) == TOP_FILMS:
            break
    return top
