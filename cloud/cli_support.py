"""What every `marquee-hub` command shares: its settings, and one migrated, committed transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.engine import make_engine, migrate
from cloud.errors import HubError
from cloud.settings import HubSettings, load_settings

T = TypeVar("T")


def cli_settings(**overrides: object) -> HubSettings:
    try:
        return load_settings(**{key: value for key, value in overrides.items() if value is not None})
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc


def migrate_db(settings: HubSettings) -> None:
    try:
        engine = make_engine(settings.database_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def hub_engine(settings: HubSettings | None = None) -> Iterator[sa.Engine]:
    """An engine over the configured database, migrated first and disposed afterwards; a HubError or a database
    error in the block ends the command with one clear line."""
    settings = settings or cli_settings()
    migrate_db(settings)
    engine = make_engine(settings.database_url)
    try:
        yield engine
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise click.ClickException(f"database error: {reason}") from exc
    finally:
        engine.dispose()


def with_db(work: Callable[[sa.Connection], T]) -> T:
    """Run `work` in one committed transaction on the configured (migrated) database."""
    with hub_engine() as engine, engine.begin() as conn:
        return work(conn)
