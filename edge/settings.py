"""The agent's configuration: one TOML file, overridable by `MARQUEE_EDGE_*` environment variables."""

from __future__ import annotations

import stat
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.errors import ConfigError
from protocol.ids import ID_PATTERN

Id = Annotated[str, Field(pattern=ID_PATTERN)]
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "pepper", "replace-with-the-chain-pepper"}


class MqttSettings(BaseModel):
    """How the box reaches the broker."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30


class SyncSettings(BaseModel):
    """Batching and retry of the uplink."""

    batch_max_events: Annotated[int, Field(ge=1, le=500)] = 200
    window_batches: Annotated[int, Field(ge=1, le=64)] = 4
    ack_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    heartbeat_s: Annotated[float, Field(gt=0, le=3600)] = 15.0


class LoyaltySettings(BaseModel):
    """The earning rule until signed rule bundles arrive from the hub."""

    rule_id: str = "earn-tickets"
    ticket_percent: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)] = Decimal("10")

    @property
    def ticket_basis_points(self) -> int:
        return int(self.ticket_percent * 100)


class TillSettings(BaseModel):
    """One till: its POS line and the card reader beside it."""

    till_id: Id
    pos_port: str
    pos_baudrate: int = 9600
    card_port: str | None = None
    card_baudrate: int = 9600
    card_hold_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """How long a presented card waits for the till's next sale."""
    pos_inter_byte_timeout_s: Annotated[float, Field(ge=0.1, le=5)] = 0.5
    """Silence after which a partial POS frame is dropped (docs/pos-protocol.md); the line reads in 0.1 s steps."""


class EdgeSettings(BaseSettings):
    """Everything `marquee-edge run` needs; see deploy/edge.example.toml."""

    model_config = SettingsConfigDict(env_prefix="MARQUEE_EDGE_", env_nested_delimiter="__", extra="forbid")

    site_id: Id
    device_id: Id
    data_dir: Path
    master_key_file: Path | None = None
    identity_key_file: Path | None = None
    pepper: SecretStr
    demo: bool = False
    mqtt: MqttSettings = MqttSettings()
    sync: SyncSettings = SyncSettings()
    loyalty: LoyaltySettings = LoyaltySettings()
    tills: list[TillSettings] = Field(default_factory=list)

    @field_validator("pepper")
    @classmethod
    def _pepper_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("pepper must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _no_placeholder_outside_demo(self) -> EdgeSettings:
        if not self.demo and self.pepper.get_secret_value().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("pepper is a placeholder; set the chain's pepper (placeholders only with demo = true)")
        ids = [till.till_id for till in self.tills]
        if len(ids) != len(set(ids)):
            raise ValueError("till ids must be unique")
        return self

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.db"

    @property
    def key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "keys" / "master.key"

    @property
    def identity_path(self) -> Path:
        """The box's Ed25519 identity key (PKCS#8 PEM), beside the master key by default."""
        return self.identity_key_file or self.key_path.parent / "identity.key"


def _refuse_open_pepper(config_file: Path, pepper: str) -> None:
    """The pepper turns every card number into its token: a file that holds the pepper in use must not be
    world-readable (a placeholder overridden by MARQUEE_EDGE_PEPPER is no secret)."""
    try:
        mode = config_file.stat().st_mode
        holds_pepper = tomllib.loads(config_file.read_text(encoding="utf-8")).get("pepper") == pepper
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # already read once by the loader: a file that changed since is read again next start
    if holds_pepper and mode & stat.S_IROTH:
        raise ConfigError(
            f"{config_file} holds the pepper and every user of this machine can read it; "
            f"run: chmod 600 {config_file} (or chmod 640 with the agent's group), "
            "or move the pepper to the MARQUEE_EDGE_PEPPER environment variable"
        )


def load_settings(config_file: Path | None) -> EdgeSettings:
    """Read the TOML file (if any) under the environment's overrides; ConfigError says what is wrong."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")

    class _FromFile(EdgeSettings):
        model_config = SettingsConfigDict(toml_file=config_file)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls))
            return tuple(sources)

    try:
        loaded = _FromFile()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {config_file}: {exc}") from exc
    if config_file is not None:
        _refuse_open_pepper(config_file, loaded.pepper.get_secret_value())
    return loaded
