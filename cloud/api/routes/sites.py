"""GET /api/v1/sites: every site and device, with freshness and chain health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from cloud.api.deps import ConnDep, CurrentUser, SettingsDep
from cloud.api.schemas import DeviceOut, SiteOut
from cloud.db.sites import list_sites

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
        )
        for view in views
    ]
