"""/api/v1/overdrafts: members whose points were spent twice by boxes that could not see each other."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api.deps import AnalystDep, ConnDep
from cloud.members.overdrafts import list_overdrafts

router = APIRouter(prefix="/overdrafts", tags=["members"])


class OverdraftOut(BaseModel):
    """How far below zero the member went (`amount`, at the worst), where it stands now, and the
    redemptions involved (site, device, seq, sale, points, when)."""

    id: int
    member_id: str
    detected_at: datetime
    updated_at: datetime
    amount: int
    balance: int
    sites: list[str]
    events: list[dict[str, Any]]
    settled_at: datetime | None


@router.get("")
def overdrafts(conn: ConnDep, viewer: AnalystDep, open_only: Annotated[bool, Query(alias="open")] = False,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OverdraftOut]:
    """Overdraft records, newest first; `open=true` for those not settled yet (admins and analysts: members are
    the chain's, not a site's)."""
    return [OverdraftOut.model_validate(row, from_attributes=True)
            for row in list_overdrafts(conn, open_only=open_only, limit=limit)]
