"""The box office and concessions sections, from the `sales_daily` and `sales_monthly` rollups (by each site's
local day and month).

One grouped query per view (by site, by film) over the period's days; totals are the sum of the by-site lines,
so the two always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Literal

import sqlalchemy as sa

from cloud.analytics.grains import ranged
from cloud.analytics.sale_deltas import Amounts
from cloud.db.analytics_tables import AMOUNTS, sales_daily, sales_monthly
from cloud.reports.model import BoxOffice, BoxOfficeLine, ConcessionLine, Concessions

TOP_FILMS = 10


Sums = dict[tuple[str, str], Amounts]
"""(site id or film, currency) -> sums."""


def sales_sums(conn: sa.Connection, *, first: date, last: date, sites: frozenset[str] | None,
               by: Literal["site", "film"]) -> Sums:
    """The rollup's sums over local days first..last at `sites` (None: every site), by site or by film (whole
    months from `sales_monthly`)."""
    by_column = {"site": "site_id", "film": "film"}
    names = AMOUNTS
    source = ranged(first, last, daily=sales_daily, monthly=sales_monthly, columns=(by_column[by], "currency"),
                    sums=names, sites=sites)
    key = source.c[by_column[by]]
    query = (sa.select(key.label("key"), source.c.currency,
                       *[sa.func.coalesce(sa.func.sum(source.c[name]), 0).label(name) for name in names])
             .group_by(key, source.c.currency))
    return {(row.key, row.currency): Amounts(*(int(row._mapping[name]) for name in names))
            for row in conn.execute(query)}


def per_currency(sums: Sums) -> dict[str, Amounts]:
    """The sums added up per currency."""
    totals: dict[str, Amounts] = {}
    for (_, currency), each in sorted(sums.items()):
        totals.setdefault(currency, Amounts()).add(each)
    return totals


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _box_line(sums: Amounts, currency: str, *, site_id: str | None = None, film: str | None = None) -> BoxOfficeLine:
    return BoxOfficeLine(site_id=site_id, film=film, currency=currency, tickets=sums.tickets,
                         ticket_revenue=sums.ticket_revenue, sales=sums.sales,
                         average_ticket_price=_ratio(sums.ticket_revenue, sums.tickets))


def _concession_line(sums: Amounts, currency: str, *, site_id: str | None = None) -> ConcessionLine:
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
