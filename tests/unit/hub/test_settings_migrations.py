"""Settings from the environment, and migrations that build exactly the tables the code declares."""

from __future__ import annotations

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
