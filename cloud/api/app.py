"""The FastAPI application: routes, and a lifespan that migrates the database, probes it and runs ingest."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

import cloud
from cloud.analytics.rollups import ROLLUPS_OPTION
from cloud.api.deps import AUTH_RESPONSES
from cloud.api.login_guard import LoginGuard, VerifyGate
from cloud.api.probe import DatabaseProbe
from cloud.api.routes import alerts as alert_routes
from cloud.api.routes import (
    analytics,
    dashboard,
    exports,
    feedback,
    halls,
    health,
    live,
    member_analytics,
    members,
    overdrafts,
    period_reports,
    rules,
    sites,
    stats,
    tokens,
    users,
)
from cloud.api.routes import audit as audit_routes
from cloud.api.routes import blocklist as blocklist_routes
from cloud.api.routes import reports as report_routes
from cloud.api.routes import staff as staff_routes
from cloud.auth import warm_up
from cloud.db.engine import make_engine, migrate
from cloud.fraud.courier import Courier
from cloud.ingest.counters import Throttle
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings
from cloud.web import feedback_page, login
from cloud.web.security import PageHeaders
from cloud.web.templating import STATIC_DIR

log = logging.getLogger(__name__)
_database_error_log = Throttle(log)  # an outage fails every request: one line a minute is enough

API_PREFIX = "/api/v1"

# Engines over one database, each with its own pool, so that none can make another wait for a connection:
# the API's (requests; SQLAlchemy's usual 5 + 10, but a request gives up after 10 s rather than 30 and answers
# 503), ingest's (one message at a time on paho's thread, the directory publisher and the rules clock: a
# connection each), the health probe's (one query a second) and the public feedback page's (below). With SQLite
# they are several connections to one WAL file: readers never block the writer, and busy_timeout makes writers
# queue.
API_POOL = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 10}
INGEST_POOL = {"pool_size": 3, "max_overflow": 0, "pool_timeout": 30}
PROBE_POOL = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 5}
# The public feedback page's own (no login: anyone with a ticket, or a flood): it may wait 3 s for a connection,
# then shows a "busy" page; the API's pool never waits behind it.
PUBLIC_POOL = {"pool_size": 2, "max_overflow": 3, "pool_timeout": 3}
# The alert courier's own (a short read each poll, a short write per delivery), only with channels configured.
COURIER_POOL = {"pool_size": 1, "max_overflow": 1, "pool_timeout": 30}


def create_app(settings: HubSettings, *, start_ingest: bool = True) -> FastAPI:
    """The hub's app. On start-up it migrates the database and, unless `start_ingest` is False,
    starts the MQTT ingest worker; on shutdown it stops both."""

    engine = make_engine(settings.database_url, **API_POOL)
    ingest_engine = make_engine(settings.database_url, **INGEST_POOL)
    if not settings.analytics_rollups:  # measuring ingest without them (bench/) only
        ingest_engine = ingest_engine.execution_options(**{ROLLUPS_OPTION: False})
    probe_engine = make_engine(settings.database_url, **PROBE_POOL)
    public_engine = make_engine(settings.database_url, **PUBLIC_POOL)
    probe = DatabaseProbe(probe_engine)
    gate = VerifyGate(slots=settings.login_checks, max_waiting=settings.login_max_waiting)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(migrate, engine)
            await anyio.to_thread.run_sync(warm_up)
            async with anyio.create_task_group() as tasks:
                await probe.probe()  # so that /healthz is right from the first request
                tasks.start_soon(probe.run)
                if start_ingest:
                    worker = IngestWorker(settings, ingest_engine)
                    worker.start()
                    app.state.worker = worker
                if start_ingest and (settings.alert_channels or settings.report_channels):
                    courier = Courier(make_engine(settings.database_url, **COURIER_POOL), settings)
                    courier.start()
                    app.state.courier = courier
                    app.state.worker.handler.on_stored = courier.notify
                # Everything loaded so far (modules, models, routes, about 100,000 objects) lives as long
                # as the app: a full garbage collection would scan it all, pausing the event loop for
                # 50 ms and more under load, which /healthz and every request would feel.
                gc.collect()
                gc.freeze()
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()
                    gc.unfreeze()  # collectable again once the app is gone (tests start many apps)
        finally:
            worker = app.state.worker
            if worker is not None:
                await run_in_threadpool(worker.stop)
                app.state.worker = None
            courier = app.state.courier
            if courier is not None:
                await run_in_threadpool(courier.stop)
                courier.engine.dispose()
                app.state.courier = None
            live = getattr(app.state, "live", None)
            if live is not None:  # the dashboard's poller: stopped before the engines it reads go
                await live.close()
            gate.close()
            for each in (engine, ingest_engine, probe_engine, public_engine):
                each.dispose()

    app = FastAPI(title="Marquee hub", version=cloud.__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.ingest_engine = ingest_engine
    app.state.probe_engine = probe_engine
    app.state.public_engine = public_engine
    app.state.probe = probe
    app.state.worker = None
    app.state.courier = None
    app.state.login_guard = LoginGuard(
        client_limit=settings.login_client_max_failures,
        client_window=settings.login_client_window_seconds,
        user_limit=settings.login_user_max_failures,
        user_window=settings.login_user_window_seconds,
    )
    app.state.login_gate = gate

    api = APIRouter(prefix=API_PREFIX, responses=AUTH_RESPONSES)
    api.include_router(sites.router)
    api.include_router(stats.router)
    api.include_router(rules.router)
    api.include_router(members.router)
    api.include_router(overdrafts.router)
    api.include_router(alert_routes.router)
    api.include_router(audit_routes.router)
    api.include_router(staff_routes.router)
    api.include_router(blocklist_routes.router)
    api.include_router(report_routes.router)
    api.include_router(users.router)
    api.include_router(tokens.router)
    api.include_router(analytics.router)
    api.include_router(halls.router)
    api.include_router(member_analytics.router)
    api.include_router(period_reports.router)
    api.include_router(exports.router)
    api.include_router(feedback.router)
    api.include_router(live.router)
    api.include_router(health.api_router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    app.include_router(login.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    app.include_router(feedback_page.router)
    app.add_middleware(PageHeaders, exempt=[path for path in (app.docs_url, app.redoc_url) if path])
    app.add_exception_handler(SQLAlchemyError, _database_unavailable)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own answer echoes the input back; a request may carry a phone, an e-mail or a card
    # number: where, what and the kind of error (FastAPI's declared schema), never the input.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": [{"loc": [str(part) for part in error.get("loc", ())], "msg": error.get("msg", ""),
                                     "type": str(error.get("type", "value_error"))}
                                    for error in errors[:50]]}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Routes refuse input with 422 too (a period too long, an unknown site in a draft): give those the shape of
    # every other 422 in the API document (`loc` a path, `msg`, `type`), whatever form the route wrote.
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 422:
        problems = exc.detail if isinstance(exc.detail, list) else [{"msg": str(exc.detail)}]
        return JSONResponse({"detail": [_problem(problem) for problem in problems[:50]]}, status_code=422,
                            headers=exc.headers)
    assert isinstance(exc, StarletteHTTPException)
    return await http_exception_handler(request, exc)


def _problem(problem: object) -> dict[str, object]:
    if not isinstance(problem, dict):
        return {"loc": [], "msg": str(problem), "type": "value_error"}
    loc = problem.get("loc", [])
    parts = loc.split(".") if isinstance(loc, str) else [str(part) for part in loc] if isinstance(loc, list) else []
    return {"loc": parts, "msg": str(problem.get("msg", "")), "type": str(problem.get("type", "value_error"))}


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A database outage is the operator's problem, not the client's: 503, the details in the log only.
    _database_error_log.warning("database error serving %s: %s", request.url.path, exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)
