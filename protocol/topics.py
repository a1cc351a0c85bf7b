"""MQTT topic builders and the parser that maps a topic back to (kind, site, device)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from protocol.errors import TopicError
from protocol.ids import is_valid_id

PREFIX = "marquee/v1"
DeviceTopicKind = Literal["events", "status", "ack", "commands", "directory"]
SiteTopicKind = Literal["rules", "members"]
_DEVICE_KINDS = ("events", "status", "ack", "commands", "directory")
_SITE_KINDS = ("rules", "members")

EVENTS_ALL = f"{PREFIX}/+/+/events"
STATUS_ALL = f"{PREFIX}/+/+/status"
DIRECTORY_REQUESTS_ALL = f"{PREFIX}/+/+/directory"
BLOCKLIST = f"{PREFIX}/chain/blocklist"


def _checked(*ids: str) -> None:
    for value in ids:
        if not is_valid_id(value):
            raise TopicError(f"{value!r} is not a valid site or device id")


def device_topic(site_id: str, device_id: str, kind: DeviceTopicKind) -> str:
    """`marquee/v1/{site}/{device}/{kind}` for events, status, ack, commands, or a directory request."""
    _checked(site_id, device_id)
    return f"{PREFIX}/{site_id}/{device_id}/{kind}"


def site_topic(site_id: str, kind: SiteTopicKind) -> str:
    """`marquee/v1/{site}/{kind}` for the retained rules bundle or member directory deltas."""
    _checked(site_id)
    return f"{PREFIX}/{site_id}/{kind}"


def shared(subscription: str, group: str = "hub") -> str:
    """The MQTT 5 shared-subscription form, so several hub processes split one stream."""
    return f"$share/{group}/{subscription}"


@dataclass(frozen=True, slots=True)
class TopicRef:
    """What a topic addresses."""

    kind: str
    site_id: str | None
    device_id: str | None


def parse_topic(topic: str) -> TopicRef:
    """Map a concrete topic to its kind, site and device; TopicError when it is not one of ours."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/"):
        raise TopicError(f"not a marquee/v1 topic: {topic[:120]!r}")
    rest = parts[2:]
    if rest == ["chain", "blocklist"]:
        return TopicRef("blocklist", None, None)
    if len(rest) == 3 and rest[2] in _DEVICE_KINDS and is_valid_id(rest[0]) and is_valid_id(rest[1]):
        return TopicRef(rest[2], rest[0], rest[1])
    if len(rest) == 2 and rest[1] in _SITE_KINDS and is_valid_id(rest[0]):
        return TopicRef(rest[1], rest[0], None)
    raise TopicError(f"unknown marquee topic: {topic[:120]!r}")
