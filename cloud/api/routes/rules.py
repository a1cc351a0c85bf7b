"""/api/v1/rules: the rule bundle boxes run; validate a draft, publish it as the next signed version, try it on
past sales first (backtest), and the sponsors' bill of recorded sales (admins)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.access.audit import record_action
from cloud.api.deps import AUTH_RESPONSES, AdminDep, AnalystDep, ConnDep, EngineDep, SettingsDep
from cloud.backtest.jobs import BacktestJobs
from cloud.backtest.run import run_backtest
from cloud.backtest.sponsors import sponsors_bill
from cloud.bundles import draft_problems, latest_bundle, load_signing_key, publish_draft, push, site_ids
from cloud.errors import HubError
from protocol.fields import Id, UtcDatetime
from protocol.rules import RuleBundle

router = APIRouter(prefix="/rules", tags=["rules"])

Draft = Annotated[dict[str, Any], Body(description="A bundle without version, published_at and signature.")]


class Problem(BaseModel):
    """One reason a draft is not a bundle: where (field path) and what; never the value."""

    loc: str
    msg: str


class Validation(BaseModel):
    """A draft checked against the bundle's rules, as the next version would be."""

    valid: bool
    problems: list[Problem]


class Published(BaseModel):
    """A draft signed and kept as `bundle`; `sites` got it on the broker (0 and `detail` when it did not)."""

    bundle: dict[str, Any]
    sites: int
    detail: str | None = None


@router.get("", responses={404: {"description": "No bundle published yet."}})
def current(conn: ConnDep, viewer: AnalystDep) -> dict[str, Any]:
    """The latest published bundle, signed, as every box gets it (admins and analysts: it holds the fraud
    limits, which a site's own staff should not learn)."""
    bundle = latest_bundle(conn)
    if bundle is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no bundle published yet; boxes run the built-in default")
    return bundle.model_dump(mode="json", by_alias=True)


@router.post("/validate")
def validate(draft: Draft, conn: ConnDep, viewer: AnalystDep) -> Validation:
    """Check a draft without publishing it: every problem by field (admins and analysts)."""
    problems = draft_problems(conn, draft)
    return Validation(valid=not problems, problems=[Problem(loc=loc, msg=msg) for loc, msg in problems])


@router.post("", status_code=status.HTTP_201_CREATED,
             responses={422: {"description": "The draft is not a bundle (each problem by field)."}})
def publish(draft: Draft, conn: ConnDep, viewer: AdminDep, settings: SettingsDep) -> Published:
    """Sign a draft as the next version, keep it, and publish it retained to every site's boxes (admins)."""
    problems = draft_problems(conn, draft)
    if problems:
        raise HTTPException(422,  # the status name differs across Starlette versions
                            [{"loc": loc, "msg": msg} for loc, msg in problems])
    try:
        key = load_signing_key(settings.rules_key_file)
    except HubError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    bundle = publish_draft(conn, draft, key, at=datetime.now(UTC), by=viewer.username)
    targets = site_ids(conn)
    record_action(conn, actor=viewer, action="rules.publish", target=f"version {bundle.version}",
                  detail={"version": bundle.version, "sites": len(targets)})
    conn.commit()  # kept before it is announced: a box never runs a version the hub has not got
    try:
        push(settings, bundle, targets)  # a sync route: FastAPI runs it on the thread pool
    except HubError as exc:
        return Published(bundle=bundle.model_dump(mode="json", by_alias=True), sites=0,
                         detail=f"kept but not published: {exc}; `marquee-hub rules push` publishes it again")
    return Published(bundle=bundle.model_dump(mode="json", by_alias=True), sites=len(targets))


# Backtests: jobs in memory in this process (see cloud.backtest.jobs), one registry per app.
_registry_lock = threading.Lock()


def _jobs(request: Request) -> BacktestJobs:
    with _registry_lock:
        jobs: BacktestJobs | None = getattr(request.app.state, "backtests", None)
        if jobs is None:
            jobs = request.app.state.backtests = BacktestJobs()
        return jobs


class BacktestRequest(BaseModel):
    """A draft to try on the sales of [from, to), of the listed sites only when `sites` is given (the period is
    checked by `period_problems`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    draft: dict[str, Any]
    start: UtcDatetime = Field(alias="from")
    end: UtcDatetime = Field(alias="to")
    sites: Annotated[list[Id], Field(min_length=1, max_length=1000)] | None = None


MAX_PERIOD = timedelta(days=400)
AHEAD = timedelta(days=1)


def period_problems(start: datetime, end: datetime, now: datetime) -> list[dict[str, str]]:
    """What is wrong with the period [start, end), by field: `to` after `from`, at most 400 days, and `to`
    at most a day after now (a period of sales yet to come reads nothing and holds a job open)."""
    problems = []
    if end <= start:
        problems.append({"loc": "to", "msg": "`to` must be after `from`"})
    elif end - start > MAX_PERIOD:
        problems.append({"loc": "to", "msg": f"the period is at most {MAX_PERIOD.days} days long"})
    if end > now + AHEAD:
        problems.append({"loc": "to", "msg": "`to` is at most one day after now"})
    return problems


class BacktestProgress(BaseModel):
    sales_done: int
    sales_total: int


class BacktestJob(BaseModel):
    """A backtest: `result` once done (figures per site and chain-wide, baseline, proposed, difference)."""

    job_id: str
    status: Literal["running", "done", "failed"]
    started_at: datetime
    finished_at: datetime | None
    progress: BacktestProgress
    result: dict[str, Any] | None = None
    error: str | None = None


@router.post("/backtest", status_code=status.HTTP_202_ACCEPTED, responses={
    422: {"description": "The draft is not a bundle (each problem by field), or a site is unknown."},
    429: {**AUTH_RESPONSES[429], "description": "Two backtests are running already (or too many failed logins); "
          "try again later."}})
def backtest(body: BacktestRequest, request: Request, conn: ConnDep, engine: EngineDep, viewer: AnalystDep
             ) -> BacktestJob:
    """Replay a period's card sales under a draft beside what was recorded, on a thread of the hub; poll
    `GET /rules/backtest/{job_id}` for progress and the figures. Jobs live in this process's memory (admins and
    analysts)."""
    problems = period_problems(body.start, body.end, datetime.now(UTC))
    problems += [{"loc": loc, "msg": msg} for loc, msg in draft_problems(conn, body.draft)]
    if body.sites is not None:
        registered = set(site_ids(conn))
        problems += [{"loc": f"sites.{index}", "msg": f"site {site!r} is not registered"}
                     for index, site in enumerate(body.sites) if site not in registered]
    if problems:
        raise HTTPException(422, problems)  # the status name differs across Starlette versions
    running = latest_bundle(conn)
    try:
        proposed = RuleBundle.model_validate({**body.draft, "version": running.version + 1 if running else 1,
                                              "published_at": body.start})
    except ValidationError as exc:  # checked above; never echo a value should it differ now
        raise HTTPException(422, [{"loc": ".".join(str(part) for part in error["loc"]), "msg": error["msg"]}
                                  for error in exc.errors(include_url=False)]) from None
    conn.rollback()  # nothing more to read here: the job reads with connections of its own
    start, end, sites = body.start, body.end, body.sites
    job = _jobs(request).start(lambda progress: run_backtest(engine, proposed, start=start, end=end, sites=sites,
                                                             progress=progress))
    if job is None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "two backtests are running already; try again "
                            "when one is done", headers={"Retry-After": "30"})
    with engine.begin() as audit:
        record_action(audit, actor=viewer, action="rules.backtest", target=str(job["job_id"]),
                      detail={"from": start.isoformat(), "to": end.isoformat(),
                              "sites": sorted(sites) if sites else None})
    return BacktestJob.model_validate(job)


@router.get("/backtest/{job_id}", responses={404: {"description": "No such job in this hub process."}})
def backtest_job(job_id: str, request: Request, viewer: AnalystDep) -> BacktestJob:
    """A backtest's status, progress and, once done, its figures (admins and analysts)."""
    job = _jobs(request).get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such backtest in this hub process (finished jobs "
                            "are kept for the last 20, and a restart forgets them)")
    return BacktestJob.model_validate(job)


@router.get("/sponsors")
def sponsors(start: Annotated[UtcDatetime, Query(alias="from")], end: Annotated[UtcDatetime, Query(alias="to")],
             engine: EngineDep, viewer: AnalystDep) -> dict[str, Any]:
    """The sponsors' bill of recorded sales in [from, to): campaign points per sponsor, campaign and site, and
    their money at the redemption rate of the bundle that decided each sale (admins and analysts)."""
    problems = period_problems(start, end, datetime.now(UTC))
    if problems:
        raise HTTPException(422, problems)  # the status name differs across Starlette versions
    return sponsors_bill(engine, start, end)
