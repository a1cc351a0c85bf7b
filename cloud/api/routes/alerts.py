"""/api/v1/alerts: the alert cases of the chain (raised by boxes' fraud rules and by the hub's own checks), and
moving a case from open to acknowledged to resolved, with who, when and a note."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.audit import record_action
from cloud.api.deps import ConnDep, EngineDep, ViewerDep
from cloud.errors import AlertError
from cloud.fraud.cases import Case, get_alert, list_alerts, transition
from cloud.fraud.report import masked_card as masked
from protocol.fields import UtcDatetime
from protocol.fraud import REASONS
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/alerts", tags=["fraud"])
TRANSITION_ROLES = ("admin", "analyst", "site_manager")
"""Roles that acknowledge, resolve and reopen cases (site managers, those of their sites), and read them."""
_STATUS = {"not_found": status.HTTP_404_NOT_FOUND, "conflict": status.HTTP_409_CONFLICT}
CaseState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class DeliveryOut(BaseModel):
    """How the case went out on one configured channel: sent, pending (retried with backoff), or failing."""

    channel: str
    state: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


class HistoryOut(BaseModel):
    """One move of the case (the first: its opening, by nobody)."""

    at: datetime
    username: str | None
    from_state: str | None
    to_state: str
    note: str | None


class AlertOut(BaseModel):
    """An alert case: what fired (`code`, and `reason` in words), how bad, what the box did (`action`; null for
    the hub's own), who raised it (`source`: box or hub), where and who it concerns, the card masked, its figures,
    how many times it fired (`count`) between `first_at` and `last_at`, the events behind it (the first 20), its
    state, and its deliveries."""

    id: int
    code: str
    reason: str | None
    severity: str
    action: str | None
    source: str
    site_id: str | None
    device_id: str | None
    till_id: str | None
    cashier_id: str | None
    staff_id: str | None
    member_id: str | None
    card: str | None
    sale_id: str | None
    summary: str
    figures: dict[str, Any]
    events: list[dict[str, Any]]
    count: int
    first_at: datetime
    last_at: datetime
    raised_at: datetime
    state: str
    state_at: datetime
    state_by: str | None
    note: str | None
    deliveries: list[DeliveryOut]


class AlertDetailOut(AlertOut):
    """A case with every move it made, oldest first."""

    history: list[HistoryOut]


class TransitionIn(BaseModel):
    """Where to move the case, and why."""

    model_config = ConfigDict(extra="forbid")

    to: CaseState
    note: Annotated[str, Field(max_length=1000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")] | None = None


def alert_out(case: Case) -> AlertOut:
    """The API's view of a case."""
    row = case.row
    return AlertOut(
        id=row.id, code=row.code, reason=REASONS.get(row.code), severity=row.severity, action=row.action,
        source=row.source, site_id=row.site_id, device_id=row.device_id, till_id=row.till_id,
        cashier_id=row.cashier_id, staff_id=row.staff_id, member_id=row.member_id,
        card=masked(row.card_token) if row.card_token else None, sale_id=row.sale_id, summary=row.summary,
        figures=dict(row.figures or {}), events=list(row.events or []), count=int(row.count), first_at=row.first_at,
        last_at=row.last_at, raised_at=row.raised_at, state=row.state, state_at=row.state_at, state_by=row.state_by,
        note=row.note, deliveries=[DeliveryOut.model_validate(each, from_attributes=True) for each in case.deliveries])


def detail_out(case: Case) -> AlertDetailOut:
    """A case with its history."""
    return AlertDetailOut(**alert_out(case).model_dump(),
                          history=[HistoryOut.model_validate(each, from_attributes=True) for each in case.history])


@router.get("")
def alerts(
    conn: ConnDep,
    viewer: ViewerDep,
    state: CaseState | None = None,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    code: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$")] = None,
    severity: Severity | None = None,
    start: Annotated[UtcDatetime | None, Query(alias="from", description="raised at or after (ISO 8601)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="raised before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the id of the last case of the "
                                                                        "previous page")] = None,
) -> list[AlertOut]:
    """Cases raised in [from, to), newest first, filtered by state, site, code and severity; keyset pages. A site
    manager sees the cases of their sites."""
    cases = list_alerts(conn, state=state, sites=viewer.scope(site), code=code, severity=severity, since=start,
                        until=end, limit=limit, before_id=before)
    return [alert_out(case) for case in cases]


@router.get("/{alert_id}", responses={404: {"description": "No such case."}})
def alert(alert_id: AlertId, conn: ConnDep, viewer: ViewerDep) -> AlertDetailOut:
    """One case, with its deliveries and its history (403 for a site manager when not of their sites)."""
    case = get_alert(conn, alert_id=alert_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert case")
    viewer.check_site(case.row.site_id)
    return detail_out(case)


@router.post("/{alert_id}/transition", responses={
    404: {"description": "No such case."},
    409: {"description": "The case is in that state already, or cannot go there from its state."}})
def move(alert_id: AlertId, body: TransitionIn, engine: EngineDep, viewer: ViewerDep) -> AlertDetailOut:
    """Acknowledge, resolve or reopen a case (admins, analysts, and site managers those of their sites): open
    to acknowledged or resolved, acknowledged to resolved or back to open, resolved back to open."""
    viewer.require(*TRANSITION_ROLES)
    try:
        with engine.begin() as conn:
            held = get_alert(conn, alert_id=alert_id)
            if held is not None:
                viewer.check_site(held.row.site_id)
            case = transition(conn, alert_id=alert_id, to_state=body.to, username=viewer.username, note=body.note,
                              at=datetime.now(UTC))
            record_action(conn, actor=viewer, action="alert.transition", target=str(alert_id),
                          site_id=case.row.site_id, detail={"from": held.row.state if held else None, "to": body.to})
    except AlertError as exc:
        raise HTTPException(_STATUS.get(exc.kind, status.HTTP_400_BAD_REQUEST), str(exc)) from exc
    return detail_out(case)
