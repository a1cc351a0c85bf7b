"""Administering hub users (the API's /users and `marquee-hub user`): create, change, disable, unlock.

Every change is recorded in the HQ audit log in its own transaction, and a change of password, role or sites,
or disabling, ends the user's browser sessions at once (their tokens follow the user's current role and sites,
and stop working while the user is disabled).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.access.audit import Actor, record_action
from cloud.access.lockout import unlock
from cloud.access.sessions import revoke_user_sessions
from cloud.db.users import UserRow, active_admins, add_user, get_user, sites_problem, update_user
from cloud.errors import HubError, StoreError


class AccountError(HubError):
    """A user change that cannot be done as asked; `kind`: not_found, conflict or invalid."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def create_user(conn: sa.Connection, *, actor: Actor, username: str, password_hash: str, role: str,
                sites: Sequence[str] | None, now: datetime) -> UserRow:
    """Create a user (AccountError: the name is taken, or the sites do not suit the role)."""
    problem = sites_problem(role, sites)
    if problem is not None:
        raise AccountError("invalid", problem)
    if get_user(conn, username=username) is not None:
        raise AccountError("conflict", f"user {username!r} exists already")
    try:
        add_user(conn, username=username, password_hash=password_hash, role=role, created_at=now, sites=sites)
    except StoreError as exc:  # created at the same moment elsewhere
        raise AccountError("conflict", str(exc)) from exc
    record_action(conn, actor=actor, action="user.create", target=username, at=now,
                  detail={"role": role, "sites": sorted(set(sites)) if sites else None})
    return _user(conn, username)


def change_user(conn: sa.Connection, *, actor: Actor, username: str, now: datetime, role: str | None = None,
                sites: Sequence[str] | None = None, password_hash: str | None = None,
                disabled: bool | None = None) -> UserRow:
    """Change what is given (a role other than site manager drops the sites); AccountError when the user does
    not exist, the sites do not suit the role, or the change would leave no admin able to sign in."""
    user = _user(conn, username)
    new_role = role or user.role
    new_sites: Sequence[str] | None = sites if sites is not None else (
        user.sites if new_role == "site_manager" else None)
    problem = sites_problem(new_role, new_sites)
    if problem is not None:
        raise AccountError("invalid", problem)
    values: dict[str, Any] = {}
    if new_role != user.role:
        values["role"] = new_role
    if tuple(sorted(set(new_sites or ()))) != tuple(user.sites or ()):
        values["sites"] = list(new_sites) if new_sites else None
    if password_hash is not None:
        values |= {"password_hash": password_hash, "password_changed_at": now}
    if disabled is not None and disabled != (user.disabled_at is not None):
        values["disabled_at"] = now if disabled else None
    if not values:
        return user
    losing_admin = user.role == "admin" and user.disabled_at is None and (
        values.get("role", "admin") != "admin" or values.get("disabled_at") is not None)
    if losing_admin and active_admins(conn) <= 1:
        raise AccountError("conflict", "this is the last admin who can sign in; make another admin first")
    update_user(conn, username=username, **values)
    ended = 0
    if {"role", "sites", "password_hash"} & set(values) or values.get("disabled_at") is not None:
        ended = revoke_user_sessions(conn, username=username, now=now)
    changed = sorted("password" if name == "password_hash" else "disabled" if name == "disabled_at" else name
                     for name in values if name != "password_changed_at")
    detail: dict[str, Any] = {"changed": changed, "sessions_ended": ended}
    if "role" in values or "sites" in values:
        detail |= {"role": new_role, "sites": sorted(set(new_sites)) if new_sites else None}
    if "disabled_at" in values:
        detail["disabled"] = values["disabled_at"] is not None
    record_action(conn, actor=actor, action="user.update", target=username, at=now, detail=detail)
    return _user(conn, username)


def unlock_user(conn: sa.Connection, *, actor: Actor, username: str, now: datetime) -> UserRow:
    """Lift a lockout and forget the wrong passwords counted (AccountError when there is no such user)."""
    user = _user(conn, username)
    unlock(conn, username=username)
    record_action(conn, actor=actor, action="user.unlock", target=username, at=now,
                  detail={"was_locked": user.locked(now), "failed_logins": user.failed_logins})
    return _user(conn, username)


def _user(conn: sa.Connection, username: str) -> UserRow:
    user = get_user(conn, username=username)
    if user is None:
        raise AccountError("not_found", f"no user {username!r}")
    return user
