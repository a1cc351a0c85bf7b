"""GET /healthz (up or down, no login, for load balancers) and GET /api/v1/health (the detail, logged in)."""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import JSONResponse

from cloud.api.deps import ViewerDep
from cloud.api.probe import DatabaseProbe
from cloud.api.schemas import Health, HealthDetail

router = APIRouter(tags=["health"])
"""/healthz, outside /api/v1."""
api_router = APIRouter(tags=["health"])
"""/health, included under /api/v1 behind the login."""


# Async, no dependencies, no database work: it runs on the event loop and reads what the background
# probe last saw, so it answers at once even while the thread pool or the connection pool is busy.
@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database or the broker is out of reach."}},
)
async def healthz(request: Request) -> JSONResponse:
    """{"status": "up"} when the database answers and ingest (if it runs) is connected, else 503 down."""
    up = _database_up(request.app) and _ingest_up(request.app)
    return JSONResponse(
        {"status": "up" if up else "down"},
        status_code=status.HTTP_200_OK if up else status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Cache-Control": "no-store"},
    )


@api_router.get("/health", response_model=HealthDetail)
async def health(request: Request, viewer: ViewerDep) -> HealthDetail:
    """What /healthz sums up, in detail: database, broker connection, ingest counters."""
    worker = request.app.state.worker
    database = _database_up(request.app)
    mqtt_connected = bool(worker is not None and worker.connected)
    return HealthDetail(
        status="up" if database and _ingest_up(request.app) else "down",
        database=database,
        ingest=worker is not None,
        mqtt_connected=mqtt_connected,
        counters=worker.counters.as_dict() if worker is not None else {},
    )


def _database_up(app: FastAPI) -> bool:
    probe: DatabaseProbe = app.state.probe
    return probe.up(time.monotonic())


def _ingest_up(app: FastAPI) -> bool:
    worker = app.state.worker
    return worker is None or bool(worker.connected)
