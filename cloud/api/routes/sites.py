"""GET /api/v1/sites: every site and device, with freshness and chain health; PUT a site's name and location."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from cloud.api.deps import ConnDep, CurrentUser, EngineDep, SettingsDep
from cloud.api.schemas import DeviceOut, SiteOut, SitePlace
from cloud.db.sites import list_sites, set_place
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/sites", tags=["sites"])


@router.get("", response_model=list[SiteOut])
def get_sites(conn: ConnDep, settings: SettingsDep, user: CurrentUser) -> list[SiteOut]:
    """Every site, its devices, whether each is online and how many events the hub holds."""
    views = list_sites(
        conn, now=datetime.now(UTC), offline_after=timedelta(seconds=settings.offline_after_seconds)
    )
    return [
        SiteOut(
            site_id=view.site_id,
            last_seen=view.last_seen,
            online=view.online,
            events_held=view.events_held,
            devices=[DeviceOut.model_validate(device, from_attributes=True) for device in view.devices],
            name=view.name,
            latitude=view.latitude,
            longitude=view.longitude,
        )
        for view in views
    ]


@router.put("/{site_id}", response_model=SiteOut, responses={404: {"description": "No such site."}})
def put_site(
    site_id: Annotated[str, Path(pattern=ID_PATTERN)],
    place: SitePlace,
    engine: EngineDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> SiteOut:
    """Set a site's name and location (admins): impossible travel compares the sites that have one."""
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may change a site")
    with engine.begin() as conn:
        if not set_place(conn, site_id=site_id, name=place.name, latitude=place.latitude, longitude=place.longitude):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
    with engine.connect() as conn:
        return next(site for site in get_sites(conn, settings, user) if site.site_id == site_id)
