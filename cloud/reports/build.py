"""A periodic report: every section of one period for some sites, with the previous period for comparison."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from cloud.analytics.localtime import site_zone
from cloud.feedback.report import complaint_times
from cloud.members.accounts import running_bundle
from cloud.reports.members import liability_section, members_section, new_enrolments
from cloud.reports.model import ComplaintLine, Complaints, PeriodicReport
from cloud.reports.occupancy import occupancy_section
from cloud.reports.periods import Period
from cloud.reports.refunds import refunds_of, refunds_section
from cloud.reports.sales import box_office_section, concessions_section, sales_sums
from protocol.rules import RuleBundle


def report_timezone(conn: sa.Connection, *, sites: frozenset[str] | None, bundle: RuleBundle) -> str:
    """The time zone a report's instants are read in: its one site's (as the rollups count its days), else the
    chain's."""
    if sites is not None and len(sites) == 1:
        (site_id,) = sites
        return site_zone(conn, site_id=site_id).key
    return bundle.timezone


def periodic_report(conn: sa.Connection, *, period: Period, sites: frozenset[str] | None, site_id: str | None,
                    now: datetime) -> PeriodicReport:
    """The report of `period` at `sites` (None: every site; `site_id` the one asked for, if any), as of `now`."""
    bundle = running_bundle(conn)
    tz = report_timezone(conn, sites=sites, bundle=bundle)
    start, end = period.bounds(tz)
    before = period.previous()
    days, previous_days = (period.first_day, period.last_day), (before.first_day, before.last_day)
    by_site = sales_sums(conn, first=period.first_day, last=period.last_day, sites=sites, by="site")
    by_film = sales_sums(conn, first=period.first_day, last=period.last_day, sites=sites, by="film")
    previous = sales_sums(conn, first=before.first_day, last=before.last_day, sites=sites, by="site")
    chain_wide = sites is None
    enrolments = None
    if chain_wide:
        enrolments = (new_enrolments(conn, start=start, end=end),
                      new_enrolments(conn, start=before.bounds(tz)[0], end=start))
    complaints = [ComplaintLine(category=each.category, opened=each.opened, resolved=each.resolved,
                                overdue=each.overdue, median_response_hours=each.median_response_hours,
                                median_resolution_hours=each.median_resolution_hours)
                  for each in complaint_times(conn, sites=sites, start=start, end=end, now=now)]
    notes = []
    if end > now:
        notes.append(f"the period is not over: figures up to {now.isoformat(timespec='minutes')}")
    return PeriodicReport(
        period=period.key, kind=period.kind, first_day=period.first_day, last_day=period.last_day,
        previous_period=before.key, site_id=site_id, sites=sorted(sites) if sites is not None else None,
        timezone=tz, start=start, end=end, generated_at=now,
        box_office=box_office_section(by_site=by_site, by_film=by_film, previous=previous),
        concessions=concessions_section(by_site=by_site, previous=previous),
        refunds=refunds_section(refunded=refunds_of(conn, start=start, end=end, sites=sites),
                                previous_refunded=refunds_of(conn, start=before.bounds(tz)[0], end=start, sites=sites),
                                by_site=by_site, previous=previous, currency=bundle.currency),
        occupancy=occupancy_section(conn, first=period.first_day, last=period.last_day, previous=previous_days,
                                    sites=sites),
        members=members_section(conn, days=days, previous_days=previous_days, by_site=by_site, previous=previous,
                                sites=sites, enrolments=enrolments),
        liability=liability_section(conn, end=end, now=now, bundle=bundle) if chain_wide else None,
        complaints=Complaints(by_category=complaints, opened=sum(each.opened for each in complaints),
                              resolved=sum(each.resolved for each in complaints),
                              overdue=sum(each.overdue for each in complaints)),
        notes=notes,
    )


def report_filename(report: PeriodicReport, extension: str) -> str:
    """`marquee-<kind>-<period>[-<site>].<extension>`: `marquee-month-2026-11-site-a.xlsx`."""
    scope = f"-{report.site_id}" if report.site_id else ""
    return f"marquee-{report.kind}-{report.period}{scope}.{extension}"
