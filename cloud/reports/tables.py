"""The periodic report as titled tables, the one layout the CSV and XLSX files are both written from.

Money becomes `Money`, a decimal amount with its currency (`cloud.reports.money`); rates stay fractions (a
percent column shows 0.734 as 73.4 %). Each table may end with totals rows (one per currency for money): the
report's own totals, not a sum the writer makes, so the files and the JSON cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from cloud.reports.model import BoxOfficeLine, ConcessionLine, OccupancyLine, PeriodicReport, RefundLine
from cloud.reports.money import major

Kind = Literal["text", "int", "money", "ratio", "percent", "hours"]


@dataclass(frozen=True, slots=True)
class Cell:
    """A value whose kind is not its column's (the summary's figures are of every kind)."""

    value: object
    kind: Kind


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    kind: Kind = "text"


@dataclass(slots=True)
class Table:
    """One section: a sheet of the XLSX file, a block of the CSV file."""

    sheet: str
    """The sheet's name (at most 31 characters, as Excel allows)."""
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[object, ...]] = field(default_factory=list)
    totals: list[tuple[object, ...]] = field(default_factory=list)
    info: list[tuple[str, str]] = field(default_factory=list)
    """Lines above the header: what the report covers."""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of a currency (decimal, as people read it): a number in the files, formatted with its currency."""

    amount: Decimal
    currency: str


def _money(value: float | None, currency: str) -> Money | None:
    return None if value is None else Money(major(value, currency), currency)


def _box(line: BoxOfficeLine, first: object) -> tuple[object, ...]:
    return (first, line.currency, line.tickets, _money(line.ticket_revenue, line.currency), line.sales,
            _money(line.average_ticket_price, line.currency))


def _bar(line: ConcessionLine, first: object) -> tuple[object, ...]:
    return (first, line.currency, _money(line.concession_revenue, line.currency), line.concession_items,
            line.tickets, line.sales, line.attach_rate, _money(line.spend_per_head, line.currency))


def _refund(line: RefundLine, first: object) -> tuple[object, ...]:
    return (first, line.currency, line.refunds, _money(line.refunded, line.currency),
            _money(line.gross_revenue, line.currency), _money(line.net_revenue, line.currency), line.refunded_share)


def _seats(line: OccupancyLine) -> tuple[object, ...]:
    return (line.shows, line.tickets, line.shows_with_seats, line.tickets_with_seats, line.seats_offered,
            line.occupancy)


def _change(now: float | None, before: float | None) -> object:
    return Cell((now - before) / before if now is not None and before else None, "percent")


def _summary(report: PeriodicReport) -> Table:
    rows: list[tuple[object, ...]] = []

    def figure(name: str, currency: str, kind: Kind, now: float | None, before: float | None,
               compare: bool = True) -> None:
        shown_now = _money(now, currency) if kind == "money" else now
        shown_before = _money(before, currency) if kind == "money" else before
        rows.append((name, currency, Cell(shown_now, kind), Cell(shown_before, kind),
                     _change(now, before) if compare else Cell(None, "percent")))

    previous_box = {line.currency: line for line in report.box_office.previous}
    previous_bar = {line.currency: line for line in report.concessions.previous}
    for line in report.box_office.totals:
        before = previous_box.get(line.currency)
        figure("Tickets", line.currency, "int", line.tickets, before.tickets if before else 0)
        figure("Ticket revenue", line.currency, "money", line.ticket_revenue, before.ticket_revenue if before else 0)
        figure("Sales", line.currency, "int", line.sales, before.sales if before else 0)
        figure("Average ticket price", line.currency, "money", line.average_ticket_price,
               before.average_ticket_price if before else None)
    for bar in report.concessions.totals:
        was = previous_bar.get(bar.currency)
        figure("Bar revenue", bar.currency, "money", bar.concession_revenue, was.concession_revenue if was else 0)
        figure("Attach rate (bar items per ticket)", bar.currency, "ratio", bar.attach_rate,
               was.attach_rate if was else None)
        figure("Bar spend per head", bar.currency, "money", bar.spend_per_head, was.spend_per_head if was else None)
    previous_refunds = {line.currency: line for line in report.refunds.previous}
    for refunds in report.refunds.totals:
        back = previous_refunds.get(refunds.currency)
        figure("Refunds and voids", refunds.currency, "int", refunds.refunds, back.refunds if back else 0)
        figure("Money refunded", refunds.currency, "money", refunds.refunded, back.refunded if back else 0)
        figure("Net revenue (tickets and bar, less refunds)", refunds.currency, "money", refunds.net_revenue,
               back.net_revenue if back else 0)
    seats, seats_before = report.occupancy.totals, report.occupancy.previous
    figure("Shows", "", "int", seats.shows, seats_before.shows)
    figure("Occupancy", "", "percent", seats.occupancy, seats_before.occupancy)
    members, members_before = report.members.totals, report.members.previous
    figure("Active members", "", "int", members.active_members, members_before.active_members)
    figure("Member sales share", "", "percent", members.member_sales_share, members_before.member_sales_share)
    if report.members.new_enrolments is not None:
        figure("New enrolments", "", "int", report.members.new_enrolments, report.members.previous_new_enrolments)
    if report.liability is not None:
        owed = report.liability
        figure("Points outstanding", "", "int", owed.points_outstanding, None, compare=False)
        figure("Loyalty liability", owed.currency, "money", owed.value, None, compare=False)
    figure("Complaints opened", "", "int", report.complaints.opened, None, compare=False)
    scope = report.site_id or (", ".join(report.sites) if report.sites is not None else "every site")
    info = [("Period", f"{report.period} ({report.kind}, {report.first_day} to {report.last_day})"),
            ("Sites", scope), ("Compared with", report.previous_period), ("Time zone", report.timezone),
            ("Generated", report.generated_at.isoformat(timespec="seconds"))]
    info.extend(("Note", note) for note in report.notes)
    return Table("Summary", f"Marquee report {report.period}", (
        Column("Figure"), Column("Currency"), Column("This period"), Column(report.previous_period),
        Column("Change", "percent")), rows, info=info)


_BOX = (Column("Currency"), Column("Tickets", "int"), Column("Ticket revenue", "money"), Column("Sales", "int"),
        Column("Average ticket price", "money"))
_SEATS = (Column("Shows", "int"), Column("Tickets", "int"), Column("Shows with seats known", "int"),
          Column("Tickets in those shows", "int"), Column("Seats offered", "int"), Column("Occupancy", "percent"))


def report_tables(report: PeriodicReport) -> list[Table]:
    """Every section of `report` as a table, the summary first."""
    box, bar, seats, members = report.box_office, report.concessions, report.occupancy, report.members
    tables = [
        _summary(report),
        Table("Box office by site", "Box office by site", (Column("Site"), *_BOX),
              [_box(line, line.site_id) for line in box.by_site], [_box(line, "Total") for line in box.totals]),
        Table("Box office by film", "Box office by film (most ticket revenue first)", (Column("Film"), *_BOX),
              [_box(line, line.film) for line in box.by_film],
              [_box(line, "Total (with bar-only sales)") for line in box.totals]),
        Table("Occupancy by site", "Occupancy by site", (Column("Site"), *_SEATS),
              [(line.site_id, *_seats(line)) for line in seats.by_site], [("Total", *_seats(seats.totals))],
              note=seats.note),
        Table("Occupancy by hall", "Occupancy by hall", (Column("Site"), Column("Hall"), Column("Name"),
                                                         Column("Seats", "int"), *_SEATS),
              [(line.site_id, line.hall, line.hall_name, line.seats, *_seats(line)) for line in seats.by_hall],
              [("Total", None, None, None, *_seats(seats.totals))], note=seats.note),
        Table("Concessions by site", "Concessions by site", (
            Column("Site"), Column("Currency"), Column("Bar revenue", "money"), Column("Bar items", "int"),
            Column("Tickets", "int"), Column("Sales", "int"), Column("Attach rate", "ratio"),
            Column("Spend per head", "money")),
            [_bar(line, line.site_id) for line in bar.by_site], [_bar(line, "Total") for line in bar.totals]),
        Table("Refunds by site", "Refunds and voids by site", (
            Column("Site"), Column("Currency"), Column("Refunds and voids", "int"), Column("Money refunded", "money"),
            Column("Gross revenue", "money"), Column("Net revenue", "money"), Column("Refunded share", "percent")),
            [_refund(line, line.site_id) for line in report.refunds.by_site],
            [_refund(line, "Total") for line in report.refunds.totals], note=report.refunds.note),
        Table("Members by site", "Members by site", (
            Column("Site"), Column("Sales", "int"), Column("Member sales", "int"),
            Column("Member sales share", "percent"), Column("Active members", "int")),
            [(line.site_id, line.sales, line.member_sales, line.member_sales_share, line.active_members)
             for line in members.by_site],
            [("Total (members counted once)", members.totals.sales, members.totals.member_sales,
              members.totals.member_sales_share, members.totals.active_members)], note=members.note),
    ]
    if report.liability is not None:
        owed = report.liability
        tables.append(Table("Loyalty liability", "Loyalty liability", (Column("Figure"), Column("Value")), [
            ("As of", owed.as_of.isoformat(timespec="seconds")),
            ("Points outstanding", Cell(owed.points_outstanding, "int")),
            ("Members with points", Cell(owed.members_with_points, "int")),
            ("Points per minor unit", Cell(owed.points_per_unit, "int")),
            (f"Value ({owed.currency})", Cell(_money(owed.value, owed.currency), "money")),
            ("Members can pay with points", "yes" if owed.redemption_enabled else "no"),
        ], note=owed.method))
    complaints = report.complaints
    tables.append(Table("Complaints", "Complaints by category (opened in the period)", (
        Column("Category"), Column("Opened", "int"), Column("Resolved", "int"), Column("Overdue", "int"),
        Column("Median response (hours)", "hours"), Column("Median resolution (hours)", "hours")),
        [(line.category, line.opened, line.resolved, line.overdue, line.median_response_hours,
          line.median_resolution_hours) for line in complaints.by_category],
        [("Total", complaints.opened, complaints.resolved, complaints.overdue, None, None)]))
    return tables
