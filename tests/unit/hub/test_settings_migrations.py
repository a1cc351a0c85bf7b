"""Settings from the environment, and migrations that build exactly the tables the code declares."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cloud.db.engine import make_engine, migrate
from cloud.db.schema import metadata
from cloud.errors import ConfigError, StoreError
from cloud.settings import HubSettings, load_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = HubSettings()
    assert defaults.database_url == "sqlite:///./marquee-hub.db"
    assert (defaults.mqtt_host, defaults.mqtt_port, defaults.mqtt_protocol) == ("127.0.0.1", 1883, "5")
    assert defaults.shared_group == "hub" and defaults.offline_after_seconds == 90
    assert defaults.mqtt_client_id.startswith("marquee-hub-")
    assert HubSettings().mqtt_client_id != defaults.mqtt_client_id

    monkeypatch.setenv("MARQUEE_HUB_MQTT_PORT", "1999")
    monkeypatch.setenv("MARQUEE_HUB_MQTT_SHARED_GROUP", "")
    settings = HubSettings()
    assert settings.mqtt_port == 1999 and settings.shared_group is None


def test_mqtt_311_means_a_plain_subscription() -> None:
    assert HubSettings(mqtt_protocol="3.1.1").shared_group is None
    with pytest.raises(ConfigError, match="mqtt_shared_group"):
        load_settings(mqtt_protocol="3.1.1", mqtt_shared_group="hub")
    with pytest.raises(ConfigError, match="mqtt_port"):
        load_settings(mqtt_port=0)


def test_migrations_match_the_declared_schema_and_repeat_safely(engine: sa.Engine) -> None:
    migrate(engine)  # the fixture migrated once already
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_unreachable_database_is_a_store_error() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(StoreError, match="cannot migrate"):
            migrate(engine)
    finally:
        engine.dispose()


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        make_engine("not a url")


@pytest.mark.parametrize("password", ["change-me", "CHANGEME", "secret", "password", "", " ... "])
def test_a_placeholder_mqtt_password_is_refused_outside_the_demo(password: str) -> None:
    with pytest.raises(ConfigError, match="mqtt_password is a placeholder"):
        load_settings(mqtt_username="marquee-hub", mqtt_password=password)
    assert load_settings(mqtt_password=password, demo=True).demo
    assert load_settings(mqtt_password="a-real-secret-3f9c").mqtt_password is not None


def test_a_placeholder_database_password_is_refused_outside_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARQUEE_HUB_DATABASE_URL", "postgresql+psycopg://marquee:change-me@db/marquee")
    with pytest.raises(ConfigError, match="database_url has a placeholder password"):
        load_settings()
    monkeypatch.setenv("MARQUEE_HUB_DEMO", "true")
    assert load_settings().demo
    # No password at all (peer or trust authentication, SQLite) is not a placeholder.
    assert load_settings(database_url="postgresql+psycopg://marquee@db/marquee", demo=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_file_and_its_wal_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    previous = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{path}")
        try:
            migrate(engine)
            with engine.connect() as conn:  # an open connection keeps the -wal and -shm files
                conn.execute(sa.text("SELECT count(*) FROM users"))
                modes = {p.name: _mode(p) for p in tmp_path.iterdir()}
        finally:
            engine.dispose()
    finally:
        os.umask(previous)

    assert modes == {"hub.db": 0o600, "hub.db-wal": 0o600, "hub.db-shm": 0o600}


def test_an_open_sqlite_file_is_tightened_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hub.db"
    path.touch()
    path.chmod(0o644)
    wal = tmp_path / "hub.db-wal"
    wal.touch()
    wal.chmod(0o664)

    with caplog.at_level(logging.INFO, logger="cloud.db.engine"):
        make_engine(f"sqlite:///{path}").dispose()
        make_engine(f"sqlite:///{path}").dispose()  # already private: nothing more to say

    assert (_mode(path), _mode(wal)) == (0o600, 0o600)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["database files were open to other users, now 0600: hub.db (0644), hub.db-wal (0664)"]


def test_an_in_memory_database_has_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://", pool_size=5)
    engine.dispose()
    make_engine("sqlite:///:memory:").dispose()
    assert list(tmp_path.iterdir()) == []
