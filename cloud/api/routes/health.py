"""GET /healthz: for load balancers and operators, no authentication."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from cloud.api.deps import EngineDep
from cloud.api.schemas import Health
from cloud.db.engine import database_ok

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(request: Request, response: Response, engine: EngineDep) -> Health:
    """ok when the database answers and (if ingest runs) the broker is connected; 503 without a database."""
    worker = getattr(request.app.state, "worker", None)
    database = database_ok(engine)
    mqtt_connected = bool(worker is not None and worker.connected)
    healthy = database and (worker is None or mqtt_connected)
    if not database:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(
        status="ok" if healthy else "degraded",
        database=database,
        mqtt_connected=mqtt_connected,
        counters=worker.counters.as_dict() if worker is not None else {},
    )
