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

    # Access (cloud/access/; docs/access.md): lockout, browser sessions, the HTTP Basic cache.
    lockout_failures: int = Field(default=10, ge=1, le=1000)
    """Wrong passwords in a row after which an account refuses every password for `lockout_minutes`."""
    lockout_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)
    session_key: SecretStr | None = None
    """The key that signs session cookies and derives CSRF tokens (at least 32 characters); every hub process
    of a chain needs the same. Unset: read from `session_key_file`, created (0600) on first use."""
    session_key_file: Path = Path("marquee-hub-session.key")
    # At least 5: a session's last use is written at most once a minute.
    session_idle_minutes: int = Field(default=12 * 60, ge=5, le=30 * 24 * 60)
    """A browser session unused this long ends (an HQ office day)."""
    session_max_days: int = Field(default=7, ge=1, le=90)
    """A browser session ends this long after its login, however busy."""
    cookie_secure: bool = False
    """Mark cookies Secure even when the hub itself sees plain HTTP (behind a TLS-terminating proxy)."""
    basic_cache_seconds: int = Field(default=300, ge=0, le=3600)
    """How long a verified HTTP Basic password is remembered in memory (0: Argon2 on every request)."""

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
    member_snapshot_s: float = Field(default=600.0, gt=0, le=86_400)
    """Member analytics (docs/members.md): how old the member counts (summary, segments, preferences) and a
    campaign's effect may get before a read starts their refresh (one hub process at a time refreshes)."""
    live_poll_s: float = Field(default=1.0, ge=0.05, le=60)
    """How often each hub process reads today's sales for the dashboard's live overview (one read per
    process feeds every open stream)."""
    live_heartbeat_s: float = Field(default=15.0, ge=0.05, le=300)
    """Idle seconds after which a live stream sends a comment line, so proxies keep it open."""
    live_stream_max_s: float = Field(default=15.0, ge=1, le=3600)
    """A live stream ends after this long and the browser reconnects at once: a hub stopping waits for no
    longer than this for its open streams, and a reconnect may land on another hub process."""
    live_max_streams: int = Field(default=500, ge=1, le=100_000)
    """Open live streams one hub process serves at most (503 beyond, and the browser retries)."""
    analytics_rollups: bool = True
    """Keep the box-office and occupancy rollups on ingest (docs/analytics.md). Off only to measure ingest
    without them: the dashboard then shows no new sales until `marquee-hub analytics rebuild`."""

    # Audience feedback (cloud/feedback; docs/feedback.md): the public form's window and rate limits, where a low
    # score goes, complaints' response deadlines.
    feedback_window_days: int = Field(default=14, ge=1, le=365)
    """The form takes an answer until this many days after the show (after the sale, without a showtime)."""
    # An audience on the cinema's guest Wi-Fi or a carrier's shared address answers from one address: one answer
    # per (unguessable) ticket code already stops ballot stuffing, so this only bounds a flood.
    feedback_client_limit: int = Field(default=120, ge=1, le=1_000_000)
    feedback_client_window_s: int = Field(default=600, ge=1, le=86_400)
    """At most `feedback_client_limit` requests to the public form from one address in any such window..."""
    feedback_site_limit: int = Field(default=2000, ge=1, le=10_000_000)
    feedback_site_window_s: int = Field(default=600, ge=1, le=86_400)
    """...and `feedback_site_limit` to one site's form (per hub process); beyond, 429 with Retry-After."""
    site_alert_channels: dict[str, list[str]] = Field(default_factory=dict)
    """Alert channels of a site's own (its manager's), e.g. {"riverside": ["riverside-manager"]}: each one of
    `alert_channels`; such a channel gets its sites' cases only, the other channels every case."""
    complaint_response_hours: dict[str, float] = Field(default_factory=dict)
    """A complaint's response deadline per category in hours, e.g. {"accessibility": 24}; others 48."""
    export_max_concurrent: int = Field(default=2, ge=1, le=64)
    """Transaction exports one hub process streams at once (docs/reports.md); beyond, 429 with Retry-After."""

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
    def _feedback_settings(self) -> HubSettings:
        # A typo in a site's channel would drop its manager's alerts without a word: refused at start.
        from cloud.feedback.categories import CATEGORIES
        from protocol.ids import is_valid_id

        for site_id, names in self.site_alert_channels.items():
            if not is_valid_id(site_id):
                raise PydanticCustomError("bad_site", "site_alert_channels: a key is not a site id")
            unknown = [name for name in names if name not in self.alert_channels]
            if unknown:
                raise PydanticCustomError("bad_channel", f"site_alert_channels: {site_id} names channel "
                                          f"{unknown[0][:64]!r}, which is not one of alert_channels")
        for category, hours in self.complaint_response_hours.items():
            if category not in CATEGORIES:
                raise PydanticCustomError("bad_category", f"complaint_response_hours: unknown category "
                                          f"{category[:32]!r}; expected one of {', '.join(CATEGORIES)}")
            if not 0 < hours <= 24 * 365:
                raise PydanticCustomError("bad_hours", f"complaint_response_hours: {category} must be more than "
                                          "0 and at most a year")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> HubSettings:
        # An example value in production means anyone who read the example can sign in as the hub.
        if self.session_key is not None and len(self.session_key.get_secret_value().strip()) < 32:
            # Whoever guesses it signs cookies as anyone: never a word, even in the demo.
            raise PydanticCustomError("weak_secret", "session_key must have at least 32 characters")
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
