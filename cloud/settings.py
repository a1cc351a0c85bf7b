"""The hub's settings: one pydantic-settings class, read from `MARQUEE_HUB_*` environment variables.

Built once by the CLI or by the caller of `create_app` and passed down; nothing reads it at import time.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import ArgumentError

from cloud.errors import ConfigError

PLACEHOLDER_SECRETS = frozenset(
    {"", "...", "change-me", "changeme", "change_me", "replace-me", "secret", "password", "passwd", "marquee"}
)
"""Values copied from examples or left as defaults: refused as secrets outside the demo (compared
lower-cased and without surrounding spaces). The hub's own list: it never imports the edge."""

MAX_LOGIN_CHECKS = 4
"""At most this many Argon2 checks at once by default, whatever the cores: each takes 64 MiB."""


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
    rules_clock_s: float = Field(default=60.0, gt=0, le=86_400)
    """How often the rules clock runs the time-based rules (expiry, burn, monthly bonus, tier reviews) due."""
    demo: bool = False
    """The demo: placeholder secrets allowed."""
    rules_key_file: Path = Path("marquee-hub-rules.key")
    """The Ed25519 key that signs rule bundles (PKCS#8 PEM, 0600), outside the database; boxes trust its
    public half (`marquee-hub rules key` prints it)."""
    member_key_file: Path = Path("marquee-hub-members.key")
    """The key that wraps every member's data key (base64 of 32 bytes, 0600), outside the database;
    `marquee-hub members key` creates it. `member_key` (the environment) wins when set."""
    member_key: SecretStr | None = None
    pepper: SecretStr | None = None
    """The chain's card pepper (the boxes' `pepper`): turns a card number HQ is given into its token."""
    card_em4100: Literal["tag32", "wiegand24"] = "tag32"
    """The chain's form of 125 kHz card ids (the boxes' `[cards] em4100`)."""

    # Failed logins: 10 a minute lets a person mistype a few times, and limits a guesser on one
    # address to 14,400 a day. Per user, 10 in 15 minutes (OWASP's order of magnitude) bounds guessing
    # one account from many addresses; the price is that someone can lock an account for 15 minutes.
    login_client_max_failures: int = Field(default=10, ge=1)
    login_client_window_seconds: int = Field(default=60, ge=1)
    login_user_max_failures: int = Field(default=10, ge=1)
    login_user_window_seconds: int = Field(default=900, ge=1)
    login_max_concurrent: int | None = Field(default=None, ge=1)
    """Argon2 checks at once; default half the cores (one check runs on about 1.4 cores), 1 to 4."""
    login_max_waiting: int = Field(default=16, ge=0)
    """Logins queued for a check before new ones get 429 at once (16 is about 2 s at one slot)."""

    # Alert delivery and the daily fraud report (cloud/fraud/courier.py; docs/fraud.md). A channel is a name
    # and an apprise URL, which holds passwords or tokens: never logged nor stored.
    alert_channels: dict[str, SecretStr] = Field(default_factory=dict)
    """Where alert cases go, e.g. {"ops-mail": "mailtos://user:pass@smtp.example.com?to=ops@example.com",
    "chat": "json://127.0.0.1:9000/hook"} (JSON in `MARQUEE_HUB_ALERT_CHANNELS`)."""
    alert_min_severity: Literal["info", "warning", "critical"] = "warning"
    """Cases below this severity are kept but not sent."""
    alert_poll_s: float = Field(default=2.0, gt=0, le=3600)
    """How often the courier looks for new cases and deliveries due (it is also woken when one is raised)."""
    alert_backlog_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    """Open cases raised at most this long ago are sent (older ones, e.g. when a channel is added, are not)."""
    alert_retry_base_s: float = Field(default=10.0, gt=0, le=86_400)
    """A failed delivery is tried again after this, doubling at each failure (with jitter)..."""
    alert_retry_max_s: float = Field(default=900.0, gt=0, le=86_400)
    """...up to this interval, at which it keeps being tried until it is sent."""
    alert_failing_after: int = Field(default=5, ge=1, le=1000)
    """Failed attempts after which a delivery shows `failing` on its case."""
    report_channels: dict[str, SecretStr] = Field(default_factory=dict)
    """Where the daily fraud report goes each morning, with its CSV attached (same form as alert_channels)."""
    report_hour: int = Field(default=6, ge=0, le=23)
    """The local hour (the rule bundle's time zone) from which yesterday's report is sent."""

    @model_validator(mode="after")
    def _channels_understood(self) -> HubSettings:
        # Refused at start rather than at the first alert; the reason names the channel, never its URL.
        if not (self.alert_channels or self.report_channels):
            return self
        from cloud.fraud.channels import channels_problem  # apprise is loaded only when channels are set

        problem = channels_problem(self.alert_channels) or channels_problem(self.report_channels)
        if problem is not None:
            raise PydanticCustomError("bad_channel", problem)
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> HubSettings:
        # An example value in production means anyone who read the example can sign in as the hub.
        if self.demo:
            return self
        if self.mqtt_password is not None and _is_placeholder(self.mqtt_password.get_secret_value()):
            raise PydanticCustomError(
                "placeholder_secret", "mqtt_password is a placeholder; set a real one (placeholders only with demo)"
            )
        try:
            url_password = sa.make_url(self.database_url).password
        except ArgumentError:
            return self  # make_engine reports a malformed URL
        if url_password is not None and _is_placeholder(str(url_password)):
            raise PydanticCustomError(
                "placeholder_secret",
                "database_url has a placeholder password; set a real one (placeholders only with demo)",
            )
        return self

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

    @property
    def login_checks(self) -> int:
        """How many Argon2 checks may run at once."""
        if self.login_max_concurrent is not None:
            return self.login_max_concurrent
        return max(1, min(MAX_LOGIN_CHECKS, (os.cpu_count() or 1) // 2))


def _is_placeholder(secret: str) -> bool:
    return secret.strip().lower() in PLACEHOLDER_SECRETS


def load_settings(**overrides: object) -> HubSettings:
    """Settings from the environment plus `overrides`; ConfigError with a one-line reason when invalid."""
    try:
        return HubSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        # The message only, never the input: it may be a secret.
        raise ConfigError(f"invalid hub settings: {where + ': ' if where else ''}{first['msg']}") from exc
