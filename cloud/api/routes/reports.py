"""/api/v1/reports: the daily fraud report (points per card, per cashier and per till), as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from cloud.access.audit import record_action
from cloud.api.deps import ConnDep, EngineDep, ViewerDep
from cloud.fraud.report import DailyReport, csv_filename, daily_report, report_csv
from cloud.members.accounts import running_bundle
from protocol.calendar import local_day
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/reports", tags=["fraud"])


@router.get("/fraud-daily", response_model=DailyReport,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "The report as JSON, or as CSV with `format=csv`."},
                        422: {"description": "A bad parameter, or a site manager of several sites gave no `site`."}})
def fraud_daily(conn: ConnDep, engine: EngineDep, viewer: ViewerDep,
                day: Annotated[date | None, Query(description="The local day (YYYY-MM-DD); default yesterday")] = None,
                site: Annotated[str | None, Query(pattern=ID_PATTERN, description="One site; default all")] = None,
                format: Annotated[Literal["json", "csv"], Query()] = "json") -> DailyReport | Response:
    """The fraud report of one local day (the rule bundle's time zone), from the daily staff activity: each
    card's points against `card_points_day`, each cashier's and till's sales, refunds and overrides. A site manager
    gets their site's (`site` is one of theirs, needed when they have several); a CSV download is audited."""
    scope = viewer.scope(site)
    if scope is not None and len(scope) > 1:
        raise HTTPException(422, [{"loc": ["query", "site"], "msg": "give `site`: one of your sites"}])
    site = next(iter(scope)) if scope is not None else None
    now = datetime.now(UTC)
    if day is None:
        day = local_day(now, running_bundle(conn).timezone) - timedelta(days=1)
    report = daily_report(conn, day=day, site_id=site, now=now)
    if format == "csv":
        with engine.begin() as audit:
            record_action(audit, actor=viewer, action="export.fraud_daily", target=day.isoformat(), site_id=site,
                          detail={"day": day.isoformat(), "site": site})
        return Response(report_csv(report).encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{csv_filename(report)}"'})
    return report
