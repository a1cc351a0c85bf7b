"""`marquee-hub`: run the hub, migrate its database, manage its users."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import click
from sqlalchemy.exc import SQLAlchemyError

from cloud.auth import ENFORCED_ROLES, UNSCOPED_ROLE_REFUSAL, hash_password, password_problem
from cloud.db.engine import make_engine, migrate
from cloud.db.schema import ROLES
from cloud.db.users import add_user
from cloud.errors import HubError
from cloud.settings import HubSettings, load_settings


def _settings(**overrides: object) -> HubSettings:
    try:
        return load_settings(**{key: value for key, value in overrides.items() if value is not None})
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group()
@click.version_option(package_name="marquee", prog_name="marquee-hub")
def main() -> None:
    """Marquee HQ hub: ingests every site box's events over MQTT and serves the API and dashboard.

    Settings come from MARQUEE_HUB_* environment variables (database_url, mqtt_host, ...).

    \b
    Example:
        MARQUEE_HUB_DATABASE_URL=sqlite:///hub.db marquee-hub migrate
        marquee-hub serve --port 8000
    """


@main.command()
@click.option("--host", help="Address to listen on (default: MARQUEE_HUB_HTTP_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default: 8000).")
@click.option("--no-ingest", is_flag=True, help="Serve the API only; do not subscribe to the broker.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def serve(host: str | None, port: int | None, no_ingest: bool, log_level: str) -> None:
    """Run the hub: migrate the database, ingest from MQTT, serve HTTP.

    \b
    Example:
        MARQUEE_HUB_MQTT_HOST=broker.example marquee-hub serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from cloud.api.app import create_app

    settings = _settings(http_host=host, http_port=port)
    _configure_logging(log_level)
    # Migrate here first so that a bad or unreachable database ends in one clear line, not a traceback.
    _migrate(settings)
    try:
        app = create_app(settings, start_ingest=not no_ingest)
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    # log_config=None: uvicorn's loggers propagate to the root logger configured above.
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, log_level=log_level)


@main.command(name="migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema to the newest version (safe to repeat).

    \b
    Example:
        MARQUEE_HUB_DATABASE_URL=postgresql+psycopg://hub@db/marquee marquee-hub migrate
    """
    settings = _settings()
    _migrate(settings)
    click.echo("database schema is up to date")


def _migrate(settings: HubSettings) -> None:
    try:
        engine = make_engine(settings.database_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def user() -> None:
    """Manage the people who may sign in to the API and dashboard.

    \b
    Example:
        marquee-hub user add alice --role analyst
    """


class _RoleChoice(click.Choice[str]):
    """admin or analyst; a role the schema knows but the hub cannot enforce yet fails with one line."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in ROLES and value not in ENFORCED_ROLES:
            raise click.ClickException(UNSCOPED_ROLE_REFUSAL.format(role=value))
        return super().convert(value, param, ctx)


@user.command(name="add")
@click.argument("username")
@click.option(
    "--role",
    type=_RoleChoice(ENFORCED_ROLES),
    required=True,
    help="What the user may do: admin or analyst (site_manager is not supported yet).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_add(username: str, role: str, password_stdin: bool) -> None:
    """Create a user with a password (prompted for, or read from stdin).

    \b
    Example:
        marquee-hub user add alice --role admin
        printf '%s\\n' "$PASSWORD" | marquee-hub user add ci-bot --role analyst --password-stdin
    """
    if not 1 <= len(username) <= 64 or not username.isprintable() or username != username.strip():
        raise click.ClickException("the username must be 1 to 64 printable characters, no outer spaces")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password)
    if problem:
        raise click.ClickException(problem)
    settings = _settings()
    _migrate(settings)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            add_user(
                conn,
                username=username,
                password_hash=hash_password(password),
                role=role,
                created_at=datetime.now(UTC),
            )
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip()[:200]
        raise click.ClickException(f"cannot store the user: {reason}") from exc
    finally:
        engine.dispose()
    click.echo(f"user {username} added with role {role}")
