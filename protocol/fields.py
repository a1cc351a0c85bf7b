"""Field types every message shares: instants, ids, hashes, money, counters, bounded text; and `Payload`,
the base of event payloads (`protocol.events` and the modules of each concept's events build on it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from protocol.ids import ID_PATTERN

HASH_PATTERN = r"^[0-9a-f]{64}$"
_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic would read 1700000000 (or "1700000000") as seconds since 1970: a number is not a date here.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_INSTANT.match(value):
        return value
    raise ValueError("a timestamp must be an ISO 8601 string with a time zone, e.g. 2026-11-23T19:30:00Z")


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    if not 1970 <= value.year <= 2200:  # a local time of year 9999 is past what datetime can hold
        raise ValueError("timestamps must fall between the years 1970 and 2200")
    return value.astimezone(UTC)


def _format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_iso_only),
    AfterValidator(_as_utc),
    PlainSerializer(_format_utc, return_type=str, when_used="json"),
]
"""A timezone-aware instant, stored in UTC and always written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""

Id = Annotated[str, Field(pattern=ID_PATTERN)]
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def text(max_length: int, min_length: int = 0) -> Any:
    # No control characters: PostgreSQL's JSONB cannot hold \u0000, and none belongs in a receipt line.
    return Field(min_length=min_length, max_length=max_length, pattern=_PRINTABLE)



Hash = Annotated[str, Field(pattern=HASH_PATTERN)]
MinorUnits = Annotated[int, Field(ge=0, le=10**12)]
INT64_MAX = 2**63 - 1
"""Every counter on the wire fits a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT)."""
Seq = Annotated[int, Field(ge=1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


Token = Annotated[str, Field(pattern=r"^[0-9a-f]{32,64}$")]
"""A card token (HMAC of the card id under the chain's pepper)."""


class Payload(BaseModel):
    """Base of event payloads: unknown fields are kept, values are frozen."""

    model_config = ConfigDict(extra="allow", frozen=True)
    event_type: ClassVar[str]
