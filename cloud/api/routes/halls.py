"""/api/v1/sites/{site_id}/halls: the halls catalogue, each hall's seats (what occupancy divides by).

Admins change it (audited); a site manager reads their own sites' halls. A hall is named as the site's tills
name it on tickets, so the catalogue matches the sales; a corrected seat count applies to past shows too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.audit import record_action
from cloud.analytics.catalogue import Hall, delete_hall, get_hall, list_halls, set_hall, site_known
from cloud.api.deps import AdminDep, ConnDep, EngineDep, ViewerDep
from cloud.api.routes.analytics import InvalidRequestOut
from cloud.api.schemas import ErrorOut
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/sites", tags=["sites"])

SiteId = Annotated[str, Path(pattern=ID_PATTERN)]
HallName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f/]+$",
                               description="The hall as the site's tills name it on tickets")]
MAX_SEATS = 100_000

_INVALID: dict[str, Any] = {"model": InvalidRequestOut, "description": "A parameter or a field is not valid "
                                                                              "(each problem by where it is)."}
_READ: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The site is not one of this site manager's."},
    404: {"model": ErrorOut, "description": "No such site."},
    422: _INVALID,
}
_WRITE: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON."},
    403: {"model": ErrorOut, "description": "Only an admin changes the catalogue."},
    404: {"model": ErrorOut, "description": "No such site (or, to delete, no such hall)."},
    422: _INVALID,
}


class HallIn(BaseModel):
    """PUT a hall: its seats, and a display name (optional)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    seats: Annotated[int, Field(ge=1, le=MAX_SEATS)]


class HallOut(BaseModel):
    """A site's hall: its name on tickets, its display name, its seats, when HQ last set it."""

    site_id: str
    hall: str
    name: str | None
    seats: int
    updated_at: datetime


@router.get("/{site_id}/halls", response_model=list[HallOut], responses=_READ)
def get_halls(conn: ConnDep, viewer: ViewerDep, site_id: SiteId) -> list[HallOut]:
    """The site's halls and their seats, by hall."""
    viewer.check_site(site_id)
    if not site_known(conn, site_id=site_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
    return [_out(hall) for hall in list_halls(conn, site_id=site_id)]


@router.put("/{site_id}/halls/{hall}", response_model=HallOut, responses=_WRITE)
def put_hall(engine: EngineDep, admin: AdminDep, site_id: SiteId, hall: HallName, body: HallIn) -> HallOut:
    """Add a hall to the site's catalogue or set its seats and name (admins)."""
    with engine.begin() as conn:
        if not site_known(conn, site_id=site_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
        before = get_hall(conn, site_id=site_id, hall=hall)
        saved = set_hall(conn, site_id=site_id, hall=hall, name=body.name, seats=body.seats, at=datetime.now(UTC))
        record_action(conn, actor=admin, action="hall.set", target=f"{site_id}/{hall}", site_id=site_id,
                      detail={"seats": body.seats, "seats_before": before.seats if before else None})
    return _out(saved)


@router.delete("/{site_id}/halls/{hall}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=_WRITE)
def remove_hall(engine: EngineDep, admin: AdminDep, site_id: SiteId, hall: HallName) -> Response:
    """Take a hall out of the catalogue (admins): its shows count as without a known capacity."""
    with engine.begin() as conn:
        if not site_known(conn, site_id=site_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
        if not delete_hall(conn, site_id=site_id, hall=hall):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such hall")
        record_action(conn, actor=admin, action="hall.delete", target=f"{site_id}/{hall}", site_id=site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _out(hall: Hall) -> HallOut:
    return HallOut(site_id=hall.site_id, hall=hall.hall, name=hall.name, seats=hall.seats,
                   updated_at=hall.updated_at)
