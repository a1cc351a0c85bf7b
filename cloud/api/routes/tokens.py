"""/api/v1/tokens: API bearer tokens an admin issues (shown once) and revokes.

A script sends `Authorization: Bearer mq_<id>_<secret>` and acts as the token's user: their role and sites, as
they are at each request; a disabled user's tokens stop working. The hub keeps the secret's SHA-256 only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.audit import record_action
from cloud.access.tokens import TokenRow, get_token, issue_token, list_tokens, revoke_token
from cloud.api.deps import AdminDep, ConnDep, EngineDep
from cloud.api.routes.users import USERNAME_PATTERN
from cloud.db.users import get_user

router = APIRouter(prefix="/tokens", tags=["access"])
MAX_DAYS = 3650
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The id `GET /tokens` lists.")]


class TokenOut(BaseModel):
    """A token without its secret: whose, what for, who issued it, when it expires, was last used, was revoked."""

    token_id: str
    username: str
    name: str
    state: str
    """active, expired or revoked."""
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedOut(TokenOut):
    """A token just issued: `token` is shown this once (only its hash is kept)."""

    token: str


class NewToken(BaseModel):
    """A token to issue for `username` (it acts as them), named for what it is for; `expires_in_days` null: never."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")]
    expires_in_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] | None = None


def token_out(row: TokenRow, now: datetime) -> TokenOut:
    """The API's view of a token."""
    return TokenOut(token_id=row.token_id, username=row.username, name=row.name, state=row.state(now),
                    created_at=row.created_at, created_by=row.created_by, expires_at=row.expires_at,
                    last_used_at=row.last_used_at, revoked_at=row.revoked_at, revoked_by=row.revoked_by)


@router.get("")
def tokens(conn: ConnDep, viewer: AdminDep,
           username: Annotated[str | None, Query(min_length=1, max_length=64, pattern=USERNAME_PATTERN)] = None,
           ) -> list[TokenOut]:
    """Every token (of one user with `username`), newest first, never their secret."""
    now = datetime.now(UTC)
    return [token_out(row, now) for row in list_tokens(conn, username=username)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={
    404: {"description": "No such user."}, 409: {"description": "The user is disabled."}})
def issue(body: NewToken, engine: EngineDep, viewer: AdminDep) -> IssuedOut:
    """Issue a token acting as a user; the answer holds it once (`token`): keep it then."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        holder = get_user(conn, username=body.username)
        if holder is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
        if holder.disabled_at is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, "this user is disabled: enable them first")
        expires_at = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
        text, row = issue_token(conn, username=body.username, name=body.name, created_by=viewer.username, now=now,
                                expires_at=expires_at)
        record_action(conn, actor=viewer, action="token.issue", target=row.token_id,
                      detail={"user": body.username, "name": body.name, "days": body.expires_in_days})
    return IssuedOut(**token_out(row, now).model_dump(), token=text)


@router.delete("/{token_id}", responses={404: {"description": "No such token."}})
def revoke(token_id: TokenId, engine: EngineDep, viewer: AdminDep) -> TokenOut:
    """Revoke a token at once (revoking it again changes nothing)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        held = get_token(conn, token_id=token_id)
        if held is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
        row = revoke_token(conn, token_id=token_id, by=viewer.username, now=now)
        assert row is not None
        if held.revoked_at is None:
            record_action(conn, actor=viewer, action="token.revoke", target=token_id, detail={"user": held.username})
    return token_out(row, now)
