"""Identifiers: UUIDv7 built from a time and random bytes the caller supplies, and id validation."""

from __future__ import annotations

import re
from uuid import UUID

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Site, device and till ids: lower-case, safe in an MQTT topic level and a file name."""

_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """True when `value` is usable as a site or device id."""
    return bool(_ID_RE.match(value))


def uuid7(unix_ms: int, rand: bytes) -> UUID:
    """A UUIDv7 (RFC 9562) for the millisecond `unix_ms`, with 10 random bytes `rand`."""
    if len(rand) < 10:
        raise ValueError("uuid7 needs 10 random bytes")
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError("uuid7 needs a 48-bit millisecond timestamp")
    value = unix_ms << 80
    value |= 0x7 << 76
    value |= (int.from_bytes(rand[0:2], "big") & 0x0FFF) << 64
    value |= 0b10 << 62
    value |= int.from_bytes(rand[2:10], "big") & ((1 << 62) - 1)
    return UUID(int=value)


def uuid7_ms(value: UUID) -> int:
    """The millisecond timestamp inside a UUIDv7."""
    return value.int >> 80
