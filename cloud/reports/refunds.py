"""The refunds section: refunds and voids from the staff audit trail (one row per refund a till journaled), against
the period's gross revenue from the sales rollups."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from cloud.db.fraud_tables import staff_audit
from cloud.db.scoping import site_filter
from cloud.reports.model import RefundLine, Refunds
from cloud.reports.sales import Sums
from protocol.staff import SaleRefunded

Refunded = dict[str, tuple[int, int]]
"""site id -> (refunds, money refunded)."""


def refunds_of(conn: sa.Connection, *, start: datetime, end: datetime, sites: frozenset[str] | None) -> Refunded:
    """Refunds and voids journaled in [start, end) at `sites` (None: every site), by site."""
    audit = staff_audit.c
    rows = conn.execute(sa.select(audit.site_id, sa.func.count().label("refunds"),
                                  sa.func.coalesce(sa.func.sum(audit.amount), 0).label("refunded"))
                        .where(audit.action == SaleRefunded.event_type, audit.occurred_at >= start,
                               audit.occurred_at < end, site_filter(audit.site_id, sites))
                        .group_by(audit.site_id))
    return {row.site_id: (int(row.refunds), int(row.refunded)) for row in rows}


def refunds_section(*, refunded: Refunded, previous_refunded: Refunded, by_site: Sums, previous: Sums,
                    currency: str) -> Refunds:
    """Refunds by site and in total per currency (and the previous period's totals), against the gross revenue of
    the sales. A refund is in its site's currency (the one its sales are in; else `currency`, the bundle's)."""
    lines = _lines(refunded, by_site, previous, currency)
    return Refunds(totals=_totals(lines), previous=_totals(_lines(previous_refunded, previous, by_site, currency)),
                   by_site=lines)


def _lines(refunded: Refunded, sums: Sums, other: Sums, currency: str) -> list[RefundLine]:
    """A line per site of `sums` or `refunded`, in its currency (`sums`', else `other`'s, else `currency`)."""
    lines = []
    for site in sorted({site for site, _ in sums} | set(refunded)):
        money = (_currency(sums, site) or _currency(other, site) or currency)
        count, amount = refunded.get(site, (0, 0))
        gross = sum(each.ticket_revenue + each.concession_revenue for (key, cur), each in sums.items()
                    if key == site and cur == money)
        lines.append(_line(site, money, count, amount, gross))
    return lines


def _currency(sums: Sums, site: str) -> str | None:
    """The currency a site's sales are in, when they are in one."""
    found = {currency for key, currency in sums if key == site}
    return found.pop() if len(found) == 1 else None


def _totals(lines: list[RefundLine]) -> list[RefundLine]:
    totals: dict[str, list[int]] = {}
    for line in lines:
        total = totals.setdefault(line.currency, [0, 0, 0])
        total[0] += line.refunds
        total[1] += line.refunded
        total[2] += line.gross_revenue
    return [_line(None, currency, *total) for currency, total in sorted(totals.items())]


def _line(site: str | None, currency: str, count: int, money: int, gross: int) -> RefundLine:
    return RefundLine(site_id=site, currency=currency, refunds=count, refunded=money, gross_revenue=gross,
                      net_revenue=gross - money, refunded_share=money / gross if gross else None)
