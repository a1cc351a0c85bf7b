"""/api/v1/audit: the staff audit trail, every staff action boxes journaled (sign-in and out, refunds and
voids, overrides, the drawer, supervisors' decisions on held sales), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api.deps import ConnDep, CurrentUser
from cloud.api.routes.alerts import masked
from cloud.fraud.audit import list_audit
from protocol.fields import UtcDatetime
from protocol.ids import ID_PATTERN
from protocol.staff import STAFF_ID_PATTERN

router = APIRouter(prefix="/audit", tags=["fraud"])
CURSOR_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}:[1-9][0-9]{0,17}$"


class AuditOut(BaseModel):
    """One staff action: where (site, till, the box and its journal seq), who, what (`action`: the event type),
    when (the box's time), the sale, money and points it concerns, and the rest of what it says (`detail`;
    cards shown masked)."""

    device_id: str
    seq: int
    site_id: str
    till_id: str | None
    staff_id: str
    action: str
    occurred_at: datetime
    sale_id: str | None
    amount: int | None
    points: int | None
    detail: dict[str, Any] | None
    cursor: str
    """Pass it as `before` for the next page."""


@router.get("")
def audit(
    conn: ConnDep,
    user: CurrentUser,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    staff: Annotated[str | None, Query(pattern=STAFF_ID_PATTERN)] = None,
    start: Annotated[UtcDatetime | None, Query(alias="from", description="first instant included (ISO 8601)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="first instant left out (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[str | None, Query(pattern=CURSOR_PATTERN,
                                        description="the `cursor` of the last row of the previous page")] = None,
) -> list[AuditOut]:
    """Staff actions in [from, to), newest first, filtered by site and staff member; keyset pages (`before`)."""
    cursor = None
    if before is not None:
        device_id, seq = before.rsplit(":", 1)
        cursor = (device_id, int(seq))
    rows = list_audit(conn, site_id=site, staff_id=staff, since=start, until=end, limit=limit, before=cursor)
    return [AuditOut(
        device_id=row.device_id, seq=int(row.seq), site_id=row.site_id, till_id=row.till_id, staff_id=row.staff_id,
        action=row.action, occurred_at=row.occurred_at, sale_id=row.sale_id, amount=row.amount, points=row.points,
        detail=_shown(row.detail), cursor=f"{row.device_id}:{row.seq}") for row in rows]


def _shown(detail: Any) -> dict[str, Any] | None:
    if not isinstance(detail, dict):
        return None
    return {name: masked(value) if name == "card_token" and isinstance(value, str) else value
            for name, value in detail.items()}
