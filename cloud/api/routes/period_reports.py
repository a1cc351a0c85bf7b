"""/api/v1/reports/periodic: monthly, quarterly and annual reports as JSON, CSV and XLSX.

Every role may read them, scoped: a site manager's report covers their sites only (another site's id: 403);
loyalty liability and new enrolments are in chain-wide reports only. Each download is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from cloud.access.audit import record_action
from cloud.api.deps import ConnDep, ViewerDep
from cloud.api.schemas import ErrorOut
from cloud.reports.build import periodic_report, report_filename
from cloud.reports.files import CSV_TYPE, XLSX_TYPE, report_csv, report_xlsx
from cloud.reports.model import PeriodicReport
from cloud.reports.periods import PERIOD_PATTERN, parse_period
from cloud.reports.tables import report_tables
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/reports", tags=["reports"])

_FILES: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_TYPE.split(";")[0]: {"schema": {"type": "string"}},
                      XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "The report as JSON; as one CSV file with `format=csv`, as an XLSX workbook with "
                         "`format=xlsx` (a download: Content-Disposition names the file)."},
    403: {"model": ErrorOut, "description": "The site is not one of this site manager's."},
}


@router.get("/periodic/{period}", response_model=PeriodicReport, responses=_FILES)
def periodic(
    conn: ConnDep,
    viewer: ViewerDep,
    period: Annotated[str, Path(pattern=PERIOD_PATTERN, description="A month (2026-11), a quarter (2026-Q4) or a "
                                                                    "year (2026), in local days")],
    site: Annotated[str | None, Query(pattern=ID_PATTERN, description="One site; default every site the viewer "
                                                                      "sees")] = None,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
) -> PeriodicReport | Response:
    """The report of one month, quarter or year: box office, occupancy, concessions, members, loyalty liability
    (chain-wide only) and complaints, with the previous period's totals for comparison."""
    chosen = parse_period(period)  # the path's pattern lets through periods only
    sites = viewer.scope(site)
    report = periodic_report(conn, period=chosen, sites=sites, site_id=site, now=datetime.now(UTC))
    record_action(conn, actor=viewer, action="report.download", target=f"{chosen.kind} {chosen.key}", site_id=site,
                  detail={"period": chosen.key, "site": site, "format": format,
                          "sites": sorted(sites) if sites is not None else None})
    conn.commit()
    if format == "json":
        return report
    if format == "csv":
        body, media_type, extension = report_csv(report_tables(report)), CSV_TYPE, "csv"
    else:
        body, media_type, extension = report_xlsx(report_tables(report)), XLSX_TYPE, "xlsx"
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{report_filename(report, extension)}"'})
