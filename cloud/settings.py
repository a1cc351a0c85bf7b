"""The hub's settings: one pydantic-settings class, read from `MARQUEE_HUB_*` environment variables.

Built once by the CLI or by the caller of `create_app` and passed down; nothing reads it at import time.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.errors import ConfigError


def _client_id() -> str:
    # Unique per process: two hub processes with one client id would keep kicking each other off.
    return f"marquee-hub-{secrets.token_hex(4)}"


class HubSettings(BaseSettings):
    """Everything the hub needs to know about its database, its broker and its HTTP listener."""

    model_config = SettingsConfigDict(env_prefix="MARQUEE_HUB_", extra="ignore")

    database_url: str = "sqlite:///./marquee-hub.db"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_shared_group: str | None = "hub"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = Field(default_factory=_client_id, min_length=1, max_length=128)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    offline_after_seconds: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _shared_needs_mqtt5(self) -> HubSettings:
        # $share/... is an MQTT 5 feature; the demo broker (amqtt) speaks only 3.1.1 and has no $share.
        if self.mqtt_protocol == "3.1.1" and self.mqtt_shared_group:
            if "mqtt_shared_group" in self.model_fields_set:
                raise ValueError(
                    "mqtt_shared_group must be empty with mqtt_protocol 3.1.1 ($share needs MQTT 5)"
                )
            self.mqtt_shared_group = None
        return self

    @property
    def shared_group(self) -> str | None:
        """The shared-subscription group, or None for a plain subscription."""
        return self.mqtt_shared_group or None


def load_settings(**overrides: object) -> HubSettings:
    """Settings from the environment plus `overrides`; ConfigError with a one-line reason when invalid."""
    try:
        return HubSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        raise ConfigError(f"invalid hub settings: {where}: {first['msg']}") from exc
