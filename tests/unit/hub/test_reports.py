"""The periodic report's sections, from sales ingested into a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from cloud.db.schema import member_ledger
from cloud.reports.build import periodic_report
from cloud.reports.model import PeriodicReport
from cloud.reports.periods import parse_period
from tests.unit.hub.report_seed import NOVEMBER_END, rollup_sums, seed_chain

NOW = datetime(2025, 1, 15, tzinfo=UTC)


def _report(engine: sa.Engine, period: str, sites: frozenset[str] | None = None,
            now: datetime = NOW) -> PeriodicReport:
    with engine.connect() as conn:
        return periodic_report(conn, period=parse_period(period), sites=sites,
                               site_id=next(iter(sites)) if sites and len(sites) == 1 else None, now=now)


def test_a_chain_wide_month(engine: sa.Engine) -> None:
    seed_chain(engine)

    report = _report(engine, "2024-11")

    box = report.box_office
    assert [(line.currency, line.tickets, line.ticket_revenue, line.sales) for line in box.totals] == [
        ("EUR", 13, 13400, 6)]
    assert [(line.site_id, line.tickets, line.ticket_revenue, line.sales) for line in box.by_site] == [
        ("site-a", 7, 8000, 4), ("site-b", 6, 5400, 2)]
    assert [(line.film, line.tickets, line.ticket_revenue, line.sales) for line in box.by_film] == [
        ("Dune", 6, 7200, 3), ("Up", 7, 6200, 3)]
    assert box.top_films == ["Dune", "Up"]
    assert [(line.tickets, line.ticket_revenue, line.sales) for line in box.previous] == [(1, 1000, 1)]
    with engine.connect() as conn:  # the rollup, summed by hand over the same days
        assert rollup_sums(conn, first=date(2024, 11, 1), last=date(2024, 11, 30)) == {
            "tickets": 13, "ticket_revenue": 13400, "concession_revenue": 1750, "concession_items": 5, "sales": 6}

    (bar,) = report.concessions.totals
    assert (bar.concession_revenue, bar.concession_items, bar.tickets) == (1750, 5, 13)
    assert bar.attach_rate == pytest.approx(5 / 13) and bar.spend_per_head == pytest.approx(1750 / 13)
    assert [(line.site_id, line.concession_revenue, line.attach_rate) for line in report.concessions.by_site] == [
        ("site-a", 1350, pytest.approx(3 / 7)), ("site-b", 400, pytest.approx(2 / 6))]

    seats = report.occupancy
    assert (seats.totals.shows, seats.totals.tickets, seats.totals.shows_with_seats,
            seats.totals.tickets_with_seats, seats.totals.seats_offered) == (3, 13, 2, 12, 150)
    assert seats.totals.occupancy == pytest.approx(12 / 150)
    assert seats.previous.occupancy == pytest.approx(1 / 50)
    assert [(line.site_id, line.hall, line.hall_name, line.seats, line.shows, line.tickets, line.occupancy)
            for line in seats.by_hall] == [("site-a", "1", "Grand", 100, 1, 6, pytest.approx(0.06)),
                                           ("site-a", "2", None, None, 1, 1, None),
                                           ("site-b", "1", None, 50, 1, 6, pytest.approx(0.12))]
    assert [(line.site_id, line.seats_offered, line.occupancy) for line in seats.by_site] == [
        ("site-a", 100, pytest.approx(0.06)), ("site-b", 50, pytest.approx(0.12))]

    crowd = report.members
    assert (crowd.totals.sales, crowd.totals.member_sales, crowd.totals.active_members) == (6, 5, 2)
    assert crowd.totals.member_sales_share == pytest.approx(5 / 6)
    assert [(line.site_id, line.member_sales, line.active_members) for line in crowd.by_site] == [
        ("site-a", 3, 1), ("site-b", 2, 2)]
    assert crowd.previous.active_members == 1
    assert (crowd.new_enrolments, crowd.previous_new_enrolments) == (2, 1)

    owed = report.liability
    assert owed is not None and owed.as_of == NOVEMBER_END
    with engine.connect() as conn:  # every member's ledger up to the end, summed by hand
        balances = conn.execute(sa.select(sa.func.sum(member_ledger.c.points)).where(
            member_ledger.c.occurred_at < NOVEMBER_END).group_by(member_ledger.c.member_id)).scalars().all()
    assert owed.points_outstanding == sum(points for points in balances if points > 0) == 70
    assert owed.members_with_points == 3
    assert (owed.value, owed.points_per_unit) == (70, 1)

    assert [(line.category, line.opened, line.resolved, line.overdue, line.median_response_hours,
             line.median_resolution_hours) for line in report.complaints.by_category] == [
        ("food", 2, 1, 1, 6.0, 24.0)]
    assert (report.complaints.opened, report.complaints.resolved, report.complaints.overdue) == (2, 1, 1)
    assert report.notes == []
    assert (report.timezone, report.start, report.end) == ("UTC", datetime(2024, 11, 1, tzinfo=UTC), NOVEMBER_END)

    # A month not over: the points as they are now (card X's 2 December sale included), and a note saying so.
    running = _report(engine, "2024-12", now=datetime(2024, 12, 3, tzinfo=UTC))
    assert running.liability is not None and running.liability.points_outstanding == 80
    assert running.notes == ["the period is not over: figures up to 2024-12-03T00:00+00:00"]


def test_a_site_report_is_that_site_in_its_own_time_zone(engine: sa.Engine) -> None:
    seed_chain(engine)

    report = _report(engine, "2024-Q4", frozenset({"site-a"}))

    # The quarter holds site-a's 1 December sale too (not the 30 November one twice).
    assert [(line.site_id, line.tickets, line.sales) for line in report.box_office.by_site] == [("site-a", 9, 6)]
    assert report.timezone == "Europe/Paris" and report.start == datetime(2024, 9, 30, 22, tzinfo=UTC)
    assert report.liability is None and report.members.new_enrolments is None
    assert [line.site_id for line in report.occupancy.by_hall] == ["site-a", "site-a"]
    assert report.members.totals.active_members == 1
    assert [(line.category, line.opened, line.overdue) for line in report.complaints.by_category] == [
        ("food", 1, 0)]

