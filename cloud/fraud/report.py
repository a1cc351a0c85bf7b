"""The daily fraud report: for one local day, points earned, held and redeemed per card, and sales, refunds and
overrides per cashier and per till of each site, against the running bundle's fraud limits.

Read from the `staff_activity` rollup (one row per local day, site, till, cashier and card, kept by ingest),
never from raw events. The day is local to the running bundle's time zone, as the rollup's is. Output as a
pydantic model (the API's JSON) and as one CSV file with a `section` column (card, cashier, till), safe to open
in a spreadsheet: a text cell starting with = + - @ (a formula) is prefixed with '.

Cards are HMAC tokens, shown in the CSV and in mail as their first 8 characters and "…"; members and staff
are ids. Nothing here reads as a person.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from cloud.db.fraud_tables import staff, staff_activity, staff_badges
from cloud.db.schema import member_cards
from cloud.members.accounts import running_bundle
from protocol.fraud import FraudRules

LIMITS_NOTE = ("card limits are per site and local day, as the box applies card_points_day (points earned plus "
               "points held for a supervisor); refund and override figures are per day, while their limits are "
               "per window of `minutes`: a day above the limit may not have fired at the box, a day at or "
               "below it never did")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def masked_card(token: str) -> str:
    """A card token as reports and mail show it: its first 8 characters and an ellipsis."""
    return token[:8] + "…"


class Limits(BaseModel):
    """The fraud limits the report compares with (null: the rule is off in the running bundle)."""

    card_points_day: int | None
    refund_rate: int | None
    refund_minutes: int | None
    override_rate: int | None
    override_minutes: int | None
    note: str = LIMITS_NOTE


class CardLine(BaseModel):
    """One card's day across the report's sites."""

    card_token: str
    card: str
    """The token as mail and the CSV show it (first 8 characters and "…")."""
    member_id: str | None
    staff_id: str | None
    """The staff member whose own membership (or badge) the card is, if any."""
    owner_rang_up: bool
    """The staff member the card belongs to rang up at least one of its sales."""
    sites: list[str]
    tills: list[str]
    """`site/till` of every till the card was used at."""
    cashiers: list[str]
    sales: int
    points_earned: int
    points_held: int
    points_redeemed: int
    flagged: int
    over_limit: bool
    """Points earned plus held above `card_points_day` at one site at least."""
    over_sites: list[str]


class Totals(BaseModel):
    sales: int = 0
    sales_with_card: int = 0
    points_to_cards: int = 0
    points_held: int = 0
    points_redeemed: int = 0
    refunds: int = 0
    refunded: int = 0
    """Money refunded, in the currency's minor unit (cents)."""
    overrides: int = 0
    flagged: int = 0


class CashierLine(Totals):
    """One cashier's day at one site (per day figures against per-window limits: see `Limits.note`)."""

    site_id: str
    cashier_id: str
    refunds_over_limit: bool = False
    overrides_over_limit: bool = False


class TillLine(Totals):
    """One till's day."""

    site_id: str
    till_id: str
    cashiers: list[str] = Field(default_factory=list)


class DailyReport(BaseModel):
    """The fraud report of one local day, for one site or the whole chain."""

    day: date
    site_id: str | None
    timezone: str
    rules_version: int
    generated_at: datetime
    limits: Limits
    cards: list[CardLine]
    """Every card used that day, most points (earned plus held) first."""
    cashiers: list[CashierLine]
    tills: list[TillLine]

    @property
    def cards_over(self) -> list[CardLine]:
        return [card for card in self.cards if card.over_limit]


def daily_report(conn: sa.Connection, *, day: date, site_id: str | None = None, now: datetime) -> DailyReport:
    """The report of local `day` (one site, or every site when `site_id` is None), from `staff_activity`."""
    bundle = running_bundle(conn)
    limits = _limits(bundle.fraud)
    where = [staff_activity.c.day == day]
    if site_id is not None:
        where.append(staff_activity.c.site_id == site_id)
    # The card's staff member: a badge of theirs, or a card of their own membership (lowest id if several).
    by_member = (sa.select(sa.func.min(staff.c.staff_id)).where(staff.c.member_id == member_cards.c.member_id)
                 .scalar_subquery())
    query = (sa.select(staff_activity, member_cards.c.member_id.label("member_id"),
                       sa.func.coalesce(staff_badges.c.staff_id, by_member).label("staff_id"))
             .select_from(staff_activity
                          .outerjoin(member_cards, member_cards.c.card_token == staff_activity.c.card_token)
                          .outerjoin(staff_badges, staff_badges.c.card_token == staff_activity.c.card_token))
             .where(*where))
    rows = conn.execute(query).all()
    return DailyReport(day=day, site_id=site_id, timezone=bundle.timezone, rules_version=bundle.version,
                       generated_at=now, limits=limits, cards=_cards(rows, limits),
                       cashiers=_cashiers(rows, limits), tills=_tills(rows))


def _limits(rules: FraudRules) -> Limits:
    return Limits(card_points_day=rules.card_points_day.limit if rules.card_points_day else None,
                  refund_rate=rules.refund_rate.limit if rules.refund_rate else None,
                  refund_minutes=rules.refund_rate.minutes if rules.refund_rate else None,
                  override_rate=rules.override_rate.limit if rules.override_rate else None,
                  override_minutes=rules.override_rate.minutes if rules.override_rate else None)


def _cards(rows: Iterable[Any], limits: Limits) -> list[CardLine]:
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_site: dict[tuple[str, str], int] = defaultdict(int)
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    owner: dict[str, tuple[str | None, str | None]] = {}
    for row in rows:
        token = row.card_token
        if not token:
            continue
        total = sums[token]
        for name in ("sales", "points_earned", "points_held", "points_redeemed", "flagged"):
            total[name] += row._mapping[name]
        per_site[(token, row.site_id)] += row.points_earned + row.points_held
        seen[token]["sites"].add(row.site_id)
        seen[token]["tills"].add(f"{row.site_id}/{row.till_id}")
        seen[token]["cashiers"].add(row.cashier_id)
        owner[token] = (row.member_id, row.staff_id)
    lines = []
    for token, total in sums.items():
        member_id, staff_id = owner[token]
        over = sorted(site for site in seen[token]["sites"]
                      if limits.card_points_day is not None and per_site[(token, site)] > limits.card_points_day)
        lines.append(CardLine(card_token=token, card=masked_card(token), member_id=member_id, staff_id=staff_id,
                              owner_rang_up=staff_id is not None and staff_id in seen[token]["cashiers"],
                              sites=sorted(seen[token]["sites"]), tills=sorted(seen[token]["tills"]),
                              cashiers=sorted(seen[token]["cashiers"]), over_limit=bool(over), over_sites=over,
                              **total))
    lines.sort(key=lambda line: (-(line.points_earned + line.points_held), line.card_token))
    return lines


def _add(totals: Totals, row: Any) -> None:
    totals.sales += row.sales
    totals.points_held += row.points_held
    totals.points_redeemed += row.points_redeemed
    totals.refunds += row.refunds
    totals.refunded += row.refunded
    totals.overrides += row.overrides
    totals.flagged += row.flagged
    if row.card_token:
        totals.sales_with_card += row.sales
        totals.points_to_cards += row.points_earned


def _cashiers(rows: Iterable[Any], limits: Limits) -> list[CashierLine]:
    lines: dict[tuple[str, str], CashierLine] = {}
    for row in rows:
        key = (row.site_id, row.cashier_id)
        if key not in lines:
            lines[key] = CashierLine(site_id=row.site_id, cashier_id=row.cashier_id)
        _add(lines[key], row)
    for line in lines.values():
        line.refunds_over_limit = limits.refund_rate is not None and line.refunds > limits.refund_rate
        line.overrides_over_limit = limits.override_rate is not None and line.overrides > limits.override_rate
    return [lines[key] for key in sorted(lines)]


def _tills(rows: Iterable[Any]) -> list[TillLine]:
    lines: dict[tuple[str, str], TillLine] = {}
    for row in rows:
        key = (row.site_id, row.till_id)
        if key not in lines:
            lines[key] = TillLine(site_id=row.site_id, till_id=row.till_id)
        _add(lines[key], row)
        if row.cashier_id not in lines[key].cashiers:
            lines[key].cashiers.append(row.cashier_id)
    for line in lines.values():
        line.cashiers.sort()
    return [lines[key] for key in sorted(lines)]


CSV_COLUMNS = ("section", "site", "till", "cashier", "card", "member_id", "staff_id", "owner_rang_up", "sales",
               "sales_with_card", "points_earned", "points_held", "points_redeemed", "refunds", "refunded",
               "overrides", "flagged", "points_limit", "over_points_limit", "refund_limit", "over_refund_limit",
               "override_limit", "over_override_limit")


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab, a CR) gets a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def report_csv(report: DailyReport) -> str:
    """The report as one CSV text (a header, then card, cashier and till rows; `section` says which)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    limits = report.limits
    refund_limit = f"{limits.refund_rate}/{limits.refund_minutes}min" if limits.refund_rate is not None else ""
    override_limit = (f"{limits.override_rate}/{limits.override_minutes}min"
                      if limits.override_rate is not None else "")
    rows: list[dict[str, object]] = []
    for card in report.cards:
        rows.append({"section": "card", "site": ";".join(card.sites), "till": ";".join(card.tills),
                     "cashier": ";".join(card.cashiers), "card": card.card, "member_id": card.member_id or "",
                     "staff_id": card.staff_id or "", "owner_rang_up": _yes(card.owner_rang_up),
                     "sales": card.sales, "points_earned": card.points_earned, "points_held": card.points_held,
                     "points_redeemed": card.points_redeemed, "flagged": card.flagged,
                     "points_limit": limits.card_points_day if limits.card_points_day is not None else "",
                     "over_points_limit": _yes(card.over_limit)})
    for cashier in report.cashiers:
        rows.append({"section": "cashier", "site": cashier.site_id, "cashier": cashier.cashier_id,
                     **_totals(cashier), "refund_limit": refund_limit,
                     "over_refund_limit": _yes(cashier.refunds_over_limit), "override_limit": override_limit,
                     "over_override_limit": _yes(cashier.overrides_over_limit)})
    for till in report.tills:
        rows.append({"section": "till", "site": till.site_id, "till": till.till_id,
                     "cashier": ";".join(till.cashiers), **_totals(till)})
    for row in rows:
        writer.writerow({name: safe_cell(value) for name, value in row.items()})
    return out.getvalue()


def _totals(totals: Totals) -> dict[str, object]:
    return {"sales": totals.sales, "sales_with_card": totals.sales_with_card, "points_earned": totals.points_to_cards,
            "points_held": totals.points_held, "points_redeemed": totals.points_redeemed, "refunds": totals.refunds,
            "refunded": totals.refunded, "overrides": totals.overrides, "flagged": totals.flagged}


def csv_filename(report: DailyReport) -> str:
    """`fraud-daily-<day>[-<site>].csv`."""
    return f"fraud-daily-{report.day.isoformat()}{'-' + report.site_id if report.site_id else ''}.csv"


def mail_text(report: DailyReport) -> tuple[str, str]:
    """The morning mail's title and body: the cards over the limit with their cashiers, and the cashiers over
    theirs; every figure is in the attached CSV."""
    over = report.cards_over
    limit = report.limits.card_points_day
    title = f"[Marquee] Fraud report {report.day.isoformat()}: {len(over)} card(s) over the daily limit"
    lines = [f"Fraud report for {report.day.isoformat()} ({report.timezone}), "
             f"{'site ' + report.site_id if report.site_id else 'every site'}."]
    if limit is None:
        lines.append("No daily points limit per card is set (fraud.card_points_day).")
    elif not over:
        lines.append(f"No card earned more than {limit} points at one site.")
    else:
        lines.append(f"Cards over {limit} points (earned plus held) at one site:")
        for card in over:
            owner = f", staff {card.staff_id}{' (rang up own card)' if card.owner_rang_up else ''}" \
                if card.staff_id else ""
            lines.append(f"- {card.card} member {card.member_id or '-'}{owner}: {card.points_earned} earned, "
                         f"{card.points_held} held, {card.points_redeemed} redeemed at {', '.join(card.over_sites)}; "
                         f"cashiers {', '.join(card.cashiers)}")
    flagged = [line for line in report.cashiers if line.refunds_over_limit or line.overrides_over_limit]
    if flagged:
        lines.append("Cashiers over their refund or override limit (per day figures):")
        for line in flagged:
            lines.append(f"- {line.cashier_id} at {line.site_id}: {line.refunds} refunds, {line.overrides} overrides")
    lines.append(f"{len(report.cards)} card(s), {len(report.cashiers)} cashier(s), {len(report.tills)} till(s) "
                 f"in the attached {csv_filename(report)}.")
    return title, "\n".join(lines)
