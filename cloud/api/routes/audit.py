"""/api/v1/audit: the staff audit trail, every staff action boxes journaled (sign-in and out, refunds and
voids, overrides, the drawer, supervisors' decisions on held sales), newest first; /api/v1/audit/hq: what people
did at HQ (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.access.audit import list_actions
from cloud.api.deps import AdminDep, ConnDep, ViewerDep
from cloud.fraud.audit import list_audit
from cloud.fraud.report import masked_card as masked
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
    viewer: ViewerDep,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    staff: Annotated[str | None, Query(pattern=STAFF_ID_PATTERN)] = None,
    start: Annotated[UtcDatetime | None, Query(alias="from", description="first instant included (ISO 8601)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="first instant left out (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[str | None, Query(pattern=CURSOR_PATTERN,
                                        description="the `cursor` of the last row of the previous page")] = None,
) -> list[AuditOut]:
    """Staff actions in [from, to), newest first, filtered by site and staff member; keyset pages (`before`). A
    site manager sees their sites' staff."""
    cursor = None
    if before is not None:
        device_id, seq = before.rsplit(":", 1)
        cursor = (device_id, int(seq))
    rows = list_audit(conn, sites=viewer.scope(site), staff_id=staff, since=start, until=end, limit=limit,
                      before=cursor)
    return [AuditOut(
        device_id=row.device_id, seq=int(row.seq), site_id=row.site_id, till_id=row.till_id, staff_id=row.staff_id,
        action=row.action, occurred_at=row.occurred_at, sale_id=row.sale_id, amount=row.amount, points=row.points,
        detail=_shown(row.detail), cursor=f"{row.device_id}:{row.seq}") for row in rows]


def _shown(detail: Any) -> dict[str, Any] | None:
    if not isinstance(detail, dict):
        return None
    return {name: masked(value) if name == "card_token" and isinstance(value, str) else value
            for name, value in detail.items()}


HQ_ACTION_PATTERN = r"^[a-z_]{1,32}(\.[a-z_]{1,32}){0,3}\.?$"


class HqActionOut(BaseModel):
    """One action at HQ: who (`username`, their `role`, `via` session, token, basic or cli, from which `client`
    address), what (`action`, dotted: `rules.publish`, `user.update`, `export.transactions`...), on what
    (`target`, a site when it concerns one), when, and how (`detail`: filters, counts, fields changed; never
    personal data nor secrets)."""

    id: int
    at: datetime
    username: str
    role: str
    via: str
    action: str
    target: str | None
    site_id: str | None
    client: str | None
    detail: dict[str, Any] | None


@router.get("/hq")
def hq_audit(
    conn: ConnDep,
    viewer: AdminDep,
    start: Annotated[UtcDatetime | None, Query(alias="from", description="first instant included (ISO 8601)")] = None,
    end: Annotated[UtcDatetime | None, Query(alias="to", description="first instant left out (ISO 8601)")] = None,
    username: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=HQ_ACTION_PATTERN,
                                        description="an action, or its start ending in a dot (`user.`)")] = None,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the `id` of the last row of the "
                                                                        "previous page")] = None,
) -> list[HqActionOut]:
    """What people did at HQ in [from, to), newest first: rule changes and backtests, member changes and
    erasures, staff, blocklist, site, user and token changes, case moves, exports, logins, logouts and
    lockouts; filtered by user, action and site; keyset pages (`before`). Admins."""
    rows = list_actions(conn, since=start, until=end, username=username, action=action, site_id=site, limit=limit,
                        before=before)
    return [HqActionOut.model_validate(row, from_attributes=True) for row in rows]
