"""GET /api/v1/sites: every site and device, with freshness and chain health; PUT a site's name and location."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, status

from cloud.access.audit import record_action
from cloud.api.deps import AdminDep, ConnDep, EngineDep, SettingsDep, Viewer, ViewerDep
from cloud.api.schemas import DeviceOut, SiteOut, SitePlace
from cloud.db.sites import list_sites, set_place
from cloud.settings import HubSettings
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/sites", tags=["sites"])


@router.get("", response_model=list[SiteOut])
def get_sites(conn: ConnDep, settings: SettingsDep, viewer: ViewerDep) -> list[SiteOut]:
    """Every site (a site manager's own), its devices, whether each is online and how many events the hub holds."""
    return _sites(conn, settings, viewer)


def _sites(conn: sa.Connection, settings: HubSettings, viewer: Viewer) -> list[SiteOut]:
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
            timezone=view.timezone,
        )
        for view in views
        if viewer.sees(view.site_id)
    ]


@router.put("/{site_id}", response_model=SiteOut, responses={404: {"description": "No such site."}})
def put_site(
    site_id: Annotated[str, Path(pattern=ID_PATTERN)],
    place: SitePlace,
    engine: EngineDep,
    settings: SettingsDep,
    viewer: AdminDep,
) -> SiteOut:
    """Set a site's name and location, or its time zone, or both (admins): impossible travel compares the sites
    that have a location; the analytics count days and hours in its time zone. The name and location are set
    together (one of them left out: none), unless only `timezone` is given; `timezone` left out keeps it."""
    given = place.model_fields_set
    # Setting the time zone alone must not wipe the location impossible travel needs, nor a new name the zone.
    fields = frozenset(given & {"timezone"}) | (
        frozenset() if given == {"timezone"} else frozenset({"name", "latitude", "longitude"}))
    with engine.begin() as conn:
        if not set_place(conn, site_id=site_id, name=place.name, latitude=place.latitude, longitude=place.longitude,
                         timezone=place.timezone, fields=fields):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
        record_action(conn, actor=viewer, action="site.update", target=site_id, site_id=site_id,
                      detail=place.model_dump(exclude_unset=True))
    with engine.connect() as conn:
        return next(site for site in _sites(conn, settings, viewer) if site.site_id == site_id)
