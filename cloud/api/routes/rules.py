"""/api/v1/rules: the rule bundle boxes run; validate a draft, publish it as the next signed version (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel

from cloud.api.deps import ConnDep, CurrentUser, SettingsDep
from cloud.bundles import draft_problems, latest_bundle, load_signing_key, publish_draft, push, site_ids
from cloud.errors import HubError

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


def _admin(user: CurrentUser) -> None:
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may change the rules boxes run")


@router.get("", responses={404: {"description": "No bundle published yet."}})
def current(conn: ConnDep, user: CurrentUser) -> dict[str, Any]:
    """The latest published bundle, signed, as every box gets it."""
    bundle = latest_bundle(conn)
    if bundle is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no bundle published yet; boxes run the built-in default")
    return bundle.model_dump(mode="json", by_alias=True)


@router.post("/validate")
def validate(draft: Draft, conn: ConnDep, user: CurrentUser) -> Validation:
    """Check a draft without publishing it: every problem by field."""
    _admin(user)
    problems = draft_problems(conn, draft)
    return Validation(valid=not problems, problems=[Problem(loc=loc, msg=msg) for loc, msg in problems])


@router.post("", status_code=status.HTTP_201_CREATED,
             responses={422: {"description": "The draft is not a bundle (each problem by field)."}})
def publish(draft: Draft, conn: ConnDep, user: CurrentUser, settings: SettingsDep) -> Published:
    """Sign a draft as the next version, keep it, and publish it retained to every site's boxes."""
    _admin(user)
    problems = draft_problems(conn, draft)
    if problems:
        raise HTTPException(422,  # the status name differs across Starlette versions
                            [{"loc": loc, "msg": msg} for loc, msg in problems])
    try:
        key = load_signing_key(settings.rules_key_file)
    except HubError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    bundle = publish_draft(conn, draft, key, at=datetime.now(UTC), by=user.username)
    targets = site_ids(conn)
    conn.commit()  # kept before it is announced: a box never runs a version the hub has not got
    try:
        push(settings, bundle, targets)  # a sync route: FastAPI runs it on the thread pool
    except HubError as exc:
        return Published(bundle=bundle.model_dump(mode="json", by_alias=True), sites=0,
                         detail=f"kept but not published: {exc}; `marquee-hub rules push` publishes it again")
    return Published(bundle=bundle.model_dump(mode="json", by_alias=True), sites=len(targets))
