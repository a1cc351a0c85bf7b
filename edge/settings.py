"""The agent's configuration: one TOML file, overridable by `MARQUEE_EDGE_*` environment variables."""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.errors import ConfigError
from protocol.cards import CardScheme
from protocol.errors import SignatureError
from protocol.ids import ID_PATTERN
from protocol.signing import parse_public_key

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


ReaderKind = Literal["rdm6300", "magstripe", "nfc-line", "pn532", "wiegand", "barcode"]
READER_KINDS: tuple[ReaderKind, ...] = ("rdm6300", "magstripe", "nfc-line", "pn532", "wiegand", "barcode")
DEFAULT_BAUD: dict[str, int] = {"pn532": 115200}
"""Each family's usual speed where it is not 9600 (reference/devices.md)."""
Parity = Literal["N", "E", "O", "M", "S"]


class SerialPortSettings(BaseModel):
    """How a serial port is opened; `port` is a path (prefer /dev/serial/by-id/...) or a pyserial URL."""

    model_config = ConfigDict(extra="forbid")

    port: Annotated[str, Field(min_length=1, max_length=512)]
    baud: Annotated[int, Field(ge=300, le=4_000_000)] | None = None
    """None: the family's usual speed (9600; 115200 for a PN532)."""
    parity: Parity = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1


class ReaderSettings(SerialPortSettings):
    """One card reader on its own port, beside one till."""

    till: Annotated[str, Field(pattern=ID_PATTERN, max_length=32)]
    kind: ReaderKind
    name: Id | None = None
    """How status and logs name it; default `<till>-<kind>`, numbered when a till has two of a kind."""
    lrc: bool = False
    """magstripe: the reader sends an LRC after each track (MagTek does not by default)."""
    reverse_uid: bool = False
    """nfc-line: the reader prints the UID bytes reversed ("rotate bytewise"); the box puts them back."""
    wiegand_output: Literal["bits", "hex", "decimal"] = "bits"
    """wiegand: what the converter is configured to send per card."""
    wiegand_bits: Literal[26, 34] = 26
    """wiegand: the reader's frame length (Wiegand-26 or -34); decimal output relies on it."""

    @property
    def baudrate(self) -> int:
        return self.baud or DEFAULT_BAUD.get(self.kind, 9600)

    @model_validator(mode="after")
    def _options_of_its_kind(self) -> ReaderSettings:
        owners = {"lrc": "magstripe", "reverse_uid": "nfc-line", "wiegand_output": "wiegand", "wiegand_bits": "wiegand"}
        defaults = type(self).model_fields
        # A default written out (a generated file) is harmless; a setting for another kind is a mistake.
        stray = [option for option, kind in owners.items()
                 if kind != self.kind and getattr(self, option) != defaults[option].default]
        if stray:
            raise ValueError(f"{', '.join(stray)} do not apply to a {self.kind} reader")
        return self


TillId = Annotated[str, Field(pattern=ID_PATTERN, max_length=32)]
"""Short enough that every device name built on it (`t1-pos`, `t1-magstripe-2`) stays a valid name."""


class TillSettings(BaseModel):
    """One till: its POS line (a serial port, or a TCP connection the till opens to the box)."""

    model_config = ConfigDict(extra="forbid")

    till_id: TillId
    pos_transport: Literal["serial", "tcp"] = "serial"
    pos_port: str | None = None
    """serial: the till's port (a path or a pyserial URL such as socket://10.0.0.12:4001)."""
    pos_baudrate: Annotated[int, Field(ge=300, le=4_000_000)] = 9600
    pos_parity: Parity = "N"
    pos_peers: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    """tcp: the addresses this till may connect from (an address or a network); required for a TCP till."""
    card_hold_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """How long a presented card waits for the till's next sale."""
    pos_inter_byte_timeout_s: Annotated[float, Field(ge=0.1, le=5)] = 0.5
    """Silence after which a partial POS frame is dropped (docs/pos-protocol.md); the line reads in 0.1 s steps."""

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: object) -> object:
        if isinstance(data, dict) and ("card_port" in data or "card_baudrate" in data):
            raise ValueError("card_port moved: describe each card reader in its own [[readers]] section "
                             "(till = \"...\", kind = \"rdm6300\", port = \"...\"); see deploy/edge.example.toml")
        return data

    @model_validator(mode="after")
    def _transport_settings(self) -> TillSettings:
        if self.pos_transport == "serial" and not self.pos_port:
            raise ValueError(f"till {self.till_id}: pos_port is needed for pos_transport = \"serial\"")
        if self.pos_transport == "tcp" and self.pos_port:
            raise ValueError(f"till {self.till_id}: a TCP till dials the box; drop pos_port (see [pos_tcp])")
        if self.pos_transport == "serial" and self.pos_peers:
            raise ValueError(f"till {self.till_id}: pos_peers applies to pos_transport = \"tcp\" only")
        if self.pos_transport == "tcp" and not self.pos_peers:
            # Till ids are short and guessable: without an address any machine on the LAN could sell as one.
            raise ValueError(f"till {self.till_id}: a TCP till needs pos_peers, the addresses it connects from "
                             "(e.g. [\"10.0.0.12/32\"])")
        return self


class PosTcpSettings(BaseModel):
    """Where the box listens for tills that speak the POS line protocol over TCP."""

    model_config = ConfigDict(extra="forbid")

    listen: Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")] = "0.0.0.0:7100"
    """host:port (an IPv6 address in brackets)."""
    hello_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        if not 0 <= int(value.rsplit(":", 1)[1]) <= 65535:
            raise ValueError("the port is 0 to 65535")
        return value


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
    hub_public_key: str | None = None
    """The hub's rule-signing public key (`ed25519:...`); without it the box runs the
    built-in default rules and refuses every bundle, since it cannot tell the hub's from a forgery."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    """The currency of the built-in default rules (a bundle from the hub carries its own)."""
    cards: CardScheme = CardScheme()
    """Chain-wide: the same on every box and at the hub (docs/cards.md)."""
    tills: list[TillSettings] = Field(default_factory=list)
    readers: list[ReaderSettings] = Field(default_factory=list)
    pos_tcp: PosTcpSettings | None = None

    @field_validator("hub_public_key")
    @classmethod
    def _a_public_key(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_public_key(value)
            except SignatureError as exc:
                raise ValueError(f"hub_public_key: {exc}") from exc
        return value

    @model_validator(mode="before")
    @classmethod
    def _moved_loyalty(cls, data: object) -> object:
        if isinstance(data, dict) and "loyalty" in data:
            raise ValueError("[loyalty] is gone: the earning rules come from the hub as a signed bundle "
                             "(set hub_public_key); until one arrives the box earns 10% of ticket prices")
        return data

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
        ports = [_device(reader.port) for reader in self.readers]
        ports += [_device(till.pos_port) for till in self.tills if till.pos_port]
        # loop:// is a fresh loopback at each open (tests, benchmarks), not a device.
        shared = sorted({port for port in ports if ports.count(port) > 1 and not port.startswith("loop://")})
        if shared:
            # Two readers of one port split its bytes between them: cards and sales would be lost.
            raise ValueError(f"a port serves one device: {', '.join(shared)} is configured more than once")
        for reader in self.readers:
            if reader.till not in ids:
                raise ValueError(f"reader {reader.kind} on {reader.port} names till {reader.till}, "
                                 "which is not configured")
            if reader.kind == "wiegand" and self.cards.em4100 == "tag32" and reader.wiegand_bits == 26:
                raise ValueError(f"a Wiegand-26 reader on {reader.port} gives 24 bits of a card; the chain's "
                                 "cards.em4100 = \"tag32\" needs 32: set wiegand_bits = 34 if the reader sends "
                                 "34-bit frames, else cards.em4100 = \"wiegand24\" chain-wide (docs/cards.md)")
        names = [name for name, _ in self.named_readers()] + [f"{till_id}-pos" for till_id in ids]
        if len(names) != len(set(names)):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"device names must be unique: {', '.join(twice)}")
        if any(till.pos_transport == "tcp" for till in self.tills) and self.pos_tcp is None:
            raise ValueError("a till has pos_transport = \"tcp\": add a [pos_tcp] section with listen = \"host:port\"")
        return self

    def named_readers(self) -> list[tuple[str, ReaderSettings]]:
        """Every reader with the name status and logs use: its own, or `<till>-<kind>` (`-2`, `-3`... for more)."""
        seen: dict[str, int] = {}
        named = []
        for reader in self.readers:
            base = reader.name or f"{reader.till}-{reader.kind}"
            seen[base] = seen.get(base, 0) + 1
            named.append((base if seen[base] == 1 or reader.name else f"{base}-{seen[base]}", reader))
        return named

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


def _device(port: str) -> str:
    """The device a port names: /dev/serial/by-id/... and /dev/ttyUSB0 can be one adapter. Only /dev is
    resolved: the simulator's links elsewhere are replaced while a box starts, and name what they say."""
    return os.path.realpath(port) if port.startswith("/dev/") else port


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
