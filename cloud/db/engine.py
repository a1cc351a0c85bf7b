"""Engine set-up for SQLite and PostgreSQL, and programmatic Alembic migrations."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cloud.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant: every hub process migrating one PostgreSQL database takes this lock first.
_MIGRATION_LOCK_KEY = 0x4D415251
PRIVATE_FILE_MODE = 0o600
# SQLite's companions of a database file; it creates them with the main file's mode.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
_POOL_SIZING = ("pool_size", "max_overflow", "pool_timeout")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the API read while ingest writes; FULL because an ack promises the commit is durable.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Several writers (two hub processes, or ingest and the CLI) wait instead of failing at once.
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An Engine for `url` (sqlite:///... or postgresql+psycopg://...), configured for the hub."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database_url: {exc}") from exc
    if parsed.get_backend_name() == "postgresql":
        # Connections die when PostgreSQL restarts; check on checkout rather than fail the next batch.
        kwargs.setdefault("pool_pre_ping", True)
    elif parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is None:
            # An in-memory database has one connection per thread (SingletonThreadPool): no sizing.
            for name in _POOL_SIZING:
                kwargs.pop(name, None)
        else:
            make_private(path)
    try:
        # hide_parameters: a statement's values (event bodies, card tokens) never reach an error message or
        # a log line through SQLAlchemy's "[parameters: ...]".
        engine = sa.create_engine(parsed, hide_parameters=True, **kwargs)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise ConfigError(
            f"cannot use database_url {parsed.render_as_string(hide_password=True)}: {exc}"
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_file(url: sa.URL) -> Path | None:
    """The file of an SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename (uri=true)
        database = database.removeprefix("file:")
    return Path(database)


def make_private(path: Path) -> None:
    """Create the SQLite file `path` readable by its owner only, or tighten it and its -wal/-shm files
    if they are more open: the file holds password hashes. Does nothing when the folder is missing or
    not ours (SQLite then reports the problem when it opens the file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        log.debug("cannot create %s yet: %s", path, exc)
        return
    else:
        try:
            # The umask may have taken bits away (0o277 would leave a file SQLite cannot write).
            os.fchmod(fd, PRIVATE_FILE_MODE)
        finally:
            os.close(fd)
        return
    tightened: list[str] = []
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SQLITE_COMPANIONS)):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
            if mode & 0o077:
                candidate.chmod(PRIVATE_FILE_MODE)
                tightened.append(f"{candidate.name} ({mode:04o})")
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot make %s private (mode 0600): %s", candidate, exc)
    if tightened:
        log.info("database files were open to other users, now 0600: %s", ", ".join(tightened))


def alembic_config(connection: sa.Connection) -> Config:
    """An Alembic Config without alembic.ini, so migrations run from an installed package too."""
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (the newest by default); StoreError when it fails."""
    try:
        if engine.dialect.name == "sqlite":
            _migrate_sqlite(engine, revision)
        else:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Several hub processes may start together; only one may create the tables.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                command.upgrade(alembic_config(conn), revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate {describe(engine)}: {_first_line(exc)}") from exc
    log.info("database %s is at schema %s", describe(engine), revision)


def _migrate_sqlite(engine: sa.Engine, revision: str) -> None:
    # SQLite changes a column by rebuilding its table (Alembic's batch mode), which drops the old table:
    # with foreign keys enforced that fails as soon as another table's rows refer to it. Enforcement is
    # switched off for the migration (it can only change outside a transaction) and the references are
    # checked before the commit instead.
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                command.upgrade(alembic_config(conn), revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migration left {len(broken)} row(s) referring to nothing; rolled back")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def database_ok(engine: sa.Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def describe(engine: sa.Engine) -> str:
    """The engine's URL with any password hidden, for logs and error messages."""
    return engine.url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
