"""The FastAPI application: routes, and a lifespan that migrates the database and runs ingest."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

import cloud
from cloud.api.routes import dashboard, health, sites, stats
from cloud.db.engine import make_engine, migrate
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(settings: HubSettings, *, start_ingest: bool = True) -> FastAPI:
    """The hub's app. On start-up it migrates the database and, unless `start_ingest` is False,
    starts the MQTT ingest worker; on shutdown it stops both."""

    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(migrate, engine)
            if start_ingest:
                worker = IngestWorker(settings, engine)
                worker.start()
                app.state.worker = worker
            yield
        finally:
            worker = app.state.worker
            if worker is not None:
                await run_in_threadpool(worker.stop)
                app.state.worker = None
            engine.dispose()

    app = FastAPI(title="Marquee hub", version=cloud.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.worker = None

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(sites.router)
    api.include_router(stats.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    app.add_exception_handler(SQLAlchemyError, _database_unavailable)
    return app


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A database outage is the operator's problem, not the client's: 503, the details in the log only.
    log.warning("database error serving %s: %s", request.url.path, exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)
