"""`marquee-hub user` and `marquee-hub token`: the people who may sign in, their roles and sites, lockouts, and the
API tokens that act as them. Every change is recorded in the HQ audit log (via "cli")."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa

from cloud.access.accounts import change_user, create_user, unlock_user
from cloud.access.audit import cli_operator, record_action
from cloud.access.tokens import get_token, issue_token, list_tokens, revoke_token
from cloud.auth import hash_password, password_problem
from cloud.cli_support import with_db
from cloud.db.schema import ROLES
from cloud.db.users import UserRow, get_user, list_users
from protocol.ids import is_valid_id

MAX_TOKEN_DAYS = 3650


def _username(value: str) -> str:
    if not 1 <= len(value) <= 64 or not value.isprintable() or value != value.strip():
        raise click.ClickException("the username must be 1 to 64 printable characters, no outer spaces")
    return value


def _sites(values: Sequence[str]) -> list[str]:
    for value in values:
        if not is_valid_id(value):
            raise click.ClickException(f"--site {value!r}: lower-case letters, digits, '-' and '_', starting with a "
                                       "letter or digit")
    return sorted(set(values))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password)
    if problem:
        raise click.ClickException(problem)
    return password


def _line(user: UserRow, now: datetime) -> str:
    state = "disabled" if user.disabled_at else f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC" if (
        user.locked(now) and user.locked_until) else "active"
    sites = ",".join(user.sites) if user.sites else "every site"
    return f"{user.username:<24} {user.role:<13} {state:<34} {sites}"


@click.group()
def user() -> None:
    """Manage the people who may sign in to the API and dashboard: roles, sites, passwords, lockouts.

    Roles: admin (everything), analyst (reads every site, reports, exports, backtests), site_manager (only
    the sites given with --site).

    \b
    Example:
        marquee-hub user add alice --role analyst
        marquee-hub user add sam --role site_manager --site riverside --site harbour
    """


@user.command(name="add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="What the user may do: admin, analyst, or site_manager (with --site).")
@click.option("--site", "sites", multiple=True, help="A site a site manager runs (repeat for several).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_add(username: str, role: str, sites: tuple[str, ...], password_stdin: bool) -> None:
    """Create a user with a password (prompted for, or read from stdin).

    \b
    Example:
        marquee-hub user add alice --role admin
        marquee-hub user add sam --role site_manager --site riverside
        printf '%s\\n' "$PASSWORD" | marquee-hub user add ci-bot --role analyst --password-stdin
    """
    _username(username)
    chosen = _sites(sites)
    password = _password(password_stdin)
    password_hash = hash_password(password)
    now = datetime.now(UTC)
    with_db(lambda conn: create_user(conn, actor=cli_operator(), username=username, password_hash=password_hash,
                                     role=role, sites=chosen or None, now=now))
    where = f" for {', '.join(chosen)}" if chosen else ""
    click.echo(f"user {username} added with role {role}{where}")


@user.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def user_list(as_json: bool) -> None:
    """Show every user: role, sites, and whether they are disabled or locked.

    \b
    Example:
        marquee-hub user list
    """
    now = datetime.now(UTC)
    for each in with_db(list_users):
        if as_json:
            click.echo(json.dumps({
                "username": each.username, "role": each.role, "sites": list(each.sites) if each.sites else None,
                "disabled": each.disabled_at is not None, "locked_until": each.locked_until.isoformat()
                if each.locked(now) and each.locked_until else None, "failed_logins": each.failed_logins}))
        else:
            click.echo(_line(each, now))


@user.command(name="set")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), help="The new role (another role than site_manager drops the sites).")
@click.option("--site", "sites", multiple=True, help="The site manager's sites, all of them (repeat for several).")
@click.option("--disable", "disabled", flag_value=True, default=None,
              help="Refuse every login and token of the user (their sessions end).")
@click.option("--enable", "disabled", flag_value=False, help="Let a disabled user sign in again.")
def user_set(username: str, role: str | None, sites: tuple[str, ...], disabled: bool | None) -> None:
    """Change a user's role or sites, or disable or enable them; their browser sessions end.

    \b
    Example:
        marquee-hub user set sam --site riverside --site harbour
        marquee-hub user set ann --disable
    """
    if role is None and not sites and disabled is None:
        raise click.ClickException("nothing to change: give --role, --site, --disable or --enable")
    chosen = _sites(sites)
    now = datetime.now(UTC)
    changed = with_db(lambda conn: change_user(conn, actor=cli_operator(), username=username, now=now, role=role,
                                               sites=chosen or None, disabled=disabled))
    click.echo(_line(changed, now))


@user.command(name="password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
def user_password(username: str, password_stdin: bool) -> None:
    """Set a user's password (prompted for, or read from stdin); their browser sessions end.

    \b
    Example:
        marquee-hub user password alice
    """
    password_hash = hash_password(_password(password_stdin))
    now = datetime.now(UTC)
    with_db(lambda conn: change_user(conn, actor=cli_operator(), username=username, now=now,
                                     password_hash=password_hash))
    click.echo(f"password of {username} changed; their browser sessions ended")


@user.command(name="unlock")
@click.argument("username")
def user_unlock(username: str) -> None:
    """Let a user locked out after too many wrong passwords sign in again at once.

    \b
    Example:
        marquee-hub user unlock alice
    """
    now = datetime.now(UTC)
    with_db(lambda conn: unlock_user(conn, actor=cli_operator(), username=username, now=now))
    click.echo(f"user {username} unlocked")


@click.group()
def token() -> None:
    """Issue, list and revoke API tokens: a script sends `Authorization: Bearer <token>` and acts as the user
    the token was issued for (their role and sites).

    \b
    Example:
        marquee-hub token issue --user ci-bot --name "nightly export" --days 90
    """


@token.command(name="issue")
@click.option("--user", "username", required=True, help="The user the token acts as.")
@click.option("--name", required=True, help="What the token is for (shown in lists).")
@click.option("--days", type=click.IntRange(1, MAX_TOKEN_DAYS), help="Expire after this many days (default: never).")
def token_issue(username: str, name: str, days: int | None) -> None:
    """Issue a token for a user and print it once (only its hash is kept).

    \b
    Example:
        marquee-hub token issue --user ci-bot --name "BI nightly" --days 365
    """
    if not 1 <= len(name) <= 120 or not name.isprintable():
        raise click.ClickException("--name must be 1 to 120 printable characters")
    now = datetime.now(UTC)
    actor = cli_operator()

    def issue(conn: sa.Connection) -> str:
        holder = get_user(conn, username=username)
        if holder is None:
            raise click.ClickException(f"no user {username!r}")
        if holder.disabled_at is not None:
            raise click.ClickException(f"user {username!r} is disabled")
        text, row = issue_token(conn, username=username, name=name, created_by=actor.username, now=now,
                                expires_at=now + timedelta(days=days) if days else None)
        record_action(conn, actor=actor, action="token.issue", target=row.token_id,
                      detail={"user": username, "name": name, "days": days})
        return text

    text = with_db(issue)
    click.echo(text)
    click.echo("keep it now: it is not shown again", err=True)


@token.command(name="list")
@click.option("--user", "username", help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def token_list(username: str | None, as_json: bool) -> None:
    """Show tokens (never their secret): user, name, state, expiry, last use.

    \b
    Example:
        marquee-hub token list --user ci-bot
    """
    now = datetime.now(UTC)
    for row in with_db(lambda conn: list_tokens(conn, username=username)):
        if as_json:
            click.echo(json.dumps({"token_id": row.token_id, "username": row.username, "name": row.name,
                                   "state": row.state(now), "expires_at": _iso(row.expires_at),
                                   "last_used_at": _iso(row.last_used_at)}))
        else:
            click.echo(f"{row.token_id}  {row.username:<24} {row.state(now):<8} expires "
                       f"{_iso(row.expires_at) or 'never':<26} last used {_iso(row.last_used_at) or 'never'}  "
                       f"{row.name}")


@token.command(name="revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token at once (by the id `token list` shows).

    \b
    Example:
        marquee-hub token revoke 3f2a9c0d11e4b7a8
    """
    now = datetime.now(UTC)
    actor = cli_operator()

    def revoke(conn: sa.Connection) -> None:
        held = get_token(conn, token_id=token_id)
        if held is None:
            raise click.ClickException(f"no token {token_id!r}")
        revoke_token(conn, token_id=token_id, by=actor.username, now=now)
        record_action(conn, actor=actor, action="token.revoke", target=token_id, detail={"user": held.username})

    with_db(revoke)
    click.echo(f"token {token_id} revoked")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None
