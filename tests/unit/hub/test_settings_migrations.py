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

from cloud.db.devices import DeviceIdentity, device_identity
from cloud.db.engine import make_engine, migrate
from cloud.db.schema import devices, events, ingest_rejects, metadata, users
from cloud.errors import ConfigError, StoreError
from cloud.settings import HubSettings, load_settings
from tests.unit.hub.factories import T0


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


def test_a_hub_with_data_upgrades_to_the_newest_schema(db_url: str) -> None:
    """A hub that ran the skeleton (schema 0002) with a site, a box, its sales and a refusal upgrades."""
    engine = make_engine(db_url)
    try:
        migrate(engine, "0002")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO sites (site_id, first_seen, last_seen) VALUES ('riverside', :t, :t)"),
                         {"t": T0})
            conn.execute(sa.text("INSERT INTO devices (device_id, site_id, last_seq, last_hash, last_seen, online) "
                                 "VALUES ('riverside-box1', 'riverside', 1, :h, :t, true)"), {"h": "a" * 64, "t": T0})
            conn.execute(sa.text("INSERT INTO events (device_id, seq, event_id, type, site_id, occurred_at, "
                                 "received_at, clock_ok, hash, prev_hash, body) VALUES ('riverside-box1', 1, :id, "
                                 "'sale.recorded', 'riverside', :t, :t, true, :h, :p, :b)"),
                         {"id": "0190d3b8-0000-7000-8000-000000000001", "t": T0, "h": "a" * 64, "p": "0" * 64,
                          "b": '{"seq": 1}'})
            conn.execute(sa.text("INSERT INTO ingest_rejects (received_at, topic, device_id, reason, detail, seq) "
                                 "VALUES (:t, 'marquee/v1/riverside/riverside-box1/events', 'riverside-box1', "
                                 "'malformed', 'x', 2)"), {"t": T0})

        migrate(engine)

        with engine.connect() as conn:
            device = conn.execute(sa.select(devices)).one()
            held = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
            reject = conn.execute(sa.select(ingest_rejects.c.count)).scalar_one()
            fk = conn.exec_driver_sql("PRAGMA foreign_keys").scalar() if db_url.startswith("sqlite") else 1
        assert (device.site_id, device.last_seq, device.public_key, device.lost_events) == ("riverside", 1, None, 0)
        assert held == 1 and reject == 1 and fk == 1
        with engine.begin() as conn:  # an existing box is refused until its key is registered
            assert device_identity(conn, device_id="riverside-box1") == DeviceIdentity(
                "riverside-box1", "riverside", None, False)
    finally:
        engine.dispose()


def test_a_refused_statement_never_shows_its_values(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    secret = "4111111111111111"
    row = {"username": "u", "password_hash": secret, "role": "admin", "created_at": T0}
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(users), row)
        with pytest.raises(sa.exc.IntegrityError) as refused, engine.begin() as conn:
            conn.execute(sa.insert(users), row)
    finally:
        engine.dispose()
    assert secret not in str(refused.value) and "hidden" in str(refused.value)
