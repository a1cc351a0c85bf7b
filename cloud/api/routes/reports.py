"""/api/v1/reports: the daily fraud report (points per card, per cashier and per till), as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from cloud.api.deps import ConnDep, CurrentUser
from cloud.fraud.report import DailyReport, csv_filename, daily_report, report_csv
from cloud.members.accounts import running_bundle
from protocol.calendar import local_day
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/reports", tags=["fraud"])


@router.get("/fraud-daily", response_model=DailyReport,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "The report as JSON, or as CSV with `format=csv`."}})
def fraud_daily(conn: ConnDep, user: CurrentUser,
                day: Annotated[date | None, Query(description="The local day (YYYY-MM-DD); default yesterday")] = None,
                site: Annotated[str | None, Query(pattern=ID_PATTERN, description="One site; default all")] = None,
                format: Annotated[Literal["json", "csv"], Query()] = "json") -> DailyReport | Response:
    """The fraud report of one local day (the rule bundle's time zone), from the daily staff activity: each
    card's points against `card_points_day`, each cashier's and till's sales, refunds and overrides."""
    now = datetime.now(UTC)
    if day is None:
        day = local_day(now, running_bundle(conn).timezone) - timedelta(days=1)
    report = daily_report(conn, day=day, site_id=site, now=now)
    if format == "csv":
        return Response(report_csv(report).encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{csv_filename(report)}"'})
    return report
