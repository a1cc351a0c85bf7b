"""The member directory: what a box needs to decide for a card while it cannot reach the hub.

The hub keeps one chain-wide directory, versioned: every change (a member enrolled, a card added or
blocked, a balance moved by an event, an erasure) gets the next version. It publishes each change as a
delta (`version_from` -> `version`) on every site's members topic; a box applies a delta only on top of
the version it holds, and when it lacks some (new, or offline for a while) it asks
(`DirectoryRequest`) and gets the missing deltas or a snapshot, cut in pages. Every page is signed by the
hub's key (the one that signs rule bundles): a forged page could hand anyone any balance.

Balance at a box (`balance_at_box`): the entry's balance, which includes every event of device D up to
`seen[D]`, plus the box's own events for the member's cards with a higher seq.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.account import Account
from protocol.ids import ID_PATTERN
from protocol.staff import STAFF_ID_PATTERN, StaffEntry

DIRECTORY_SCHEMA: Final = "marquee.directory/1"
REQUEST_SCHEMA: Final = "marquee.directory-request/1"
TOKEN_PATTERN = r"^[0-9a-f]{32,64}$"
MEMBER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SIGNATURE_PATTERN = r"^[A-Za-z0-9_-]{86}$"
MAX_PAGE_ENTRIES: Final = 2000
"""The most entries a box takes in one page (what hubs before accounts sent)."""
PAGE_ENTRIES: Final = 500
"""Entries the hub puts in one page: an entry with a full account (lots, a year of activity, passes) is about
1 KB, so a page stays near 500 KB, under EMQX's default 1 MB packet limit (Mosquitto's is far higher)."""

Token = Annotated[str, Field(pattern=TOKEN_PATTERN)]
Version = Annotated[int, Field(ge=0, le=2**63 - 1)]
Points = Annotated[int, Field(ge=-(10**12), le=10**12)]


class DirectoryEntry(BaseModel):
    """One card token and what a box may know of its holder."""

    model_config = ConfigDict(extra="allow", frozen=True)

    token: Token
    member_id: Annotated[str, Field(pattern=MEMBER_ID_PATTERN)]
    programme: Annotated[str, Field(pattern=MEMBER_ID_PATTERN)] = "default"
    status: Literal["active", "anonymous", "blocked"]
    """`blocked`: this card earns and pays nothing (lost, stolen, replaced, or its member suspended)."""
    balance: Points
    seen: dict[Annotated[str, Field(pattern=ID_PATTERN)], Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    """Per device, the highest seq of its events the balance includes (the watermark)."""
    redeemed_day: date | None = None
    redeemed: Annotated[int, Field(ge=0)] = 0
    """Points the member redeemed on `redeemed_day` (UTC), as far as the hub knows."""
    birthday: Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")] | None = None
    """MM-DD only: enough for a birthday offer, never the year."""
    account: Account | None = None
    """The member's account as the hub folded it (lots, tier, activity, passes, the day's counters), with
    the same watermark as `balance`; None from a hub that does not send it (the balance is then one lot)."""


class DirectoryPage(BaseModel):
    """A delta (one version step or several) or one page of a snapshot, signed by the hub."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.directory/1"] = Field(default=DIRECTORY_SCHEMA, alias="schema")
    kind: Literal["delta", "snapshot"]
    version_from: Version
    """Delta: the version a box must hold to apply it. Snapshot: 0."""
    version: Version
    """The version a box holds once it applied this (for a snapshot, once it has every page)."""
    page: Annotated[int, Field(ge=1)] = 1
    pages: Annotated[int, Field(ge=1)] = 1
    entries: Annotated[list[DirectoryEntry], Field(max_length=MAX_PAGE_ENTRIES)] = Field(default_factory=list)
    removed: Annotated[list[Token], Field(max_length=MAX_PAGE_ENTRIES)] = Field(default_factory=list)
    """Tokens the box must forget (an erased member's cards, a card moved off the directory)."""
    staff: Annotated[list[StaffEntry], Field(max_length=MAX_PAGE_ENTRIES)] = Field(default_factory=list)
    """Staff accounts added or changed (a snapshot carries them all, on its first page)."""
    staff_removed: Annotated[list[Annotated[str, Field(pattern=STAFF_ID_PATTERN)]], Field(
        max_length=MAX_PAGE_ENTRIES)] = Field(default_factory=list)
    """Staff ids the box must forget (a delta only)."""
    for_device: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    """A reply to one box's request: the others of the site ignore it."""
    signature: Annotated[str, Field(pattern=SIGNATURE_PATTERN)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DirectoryPage:
        if self.page > self.pages:
            raise ValueError("page must not exceed pages")
        if self.kind == "delta" and (self.version <= self.version_from or self.pages != 1):
            raise ValueError("a delta moves the version forward in one page")
        if self.kind == "snapshot" and (self.version_from != 0 or self.removed or self.staff_removed):
            raise ValueError("a snapshot starts from version 0 and removes nothing")
        return self


class DirectoryRequest(BaseModel):
    """A box asks for what it lacks: the deltas after `have`, or a snapshot when `have` is 0."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.directory-request/1"] = Field(default=REQUEST_SCHEMA, alias="schema")
    have: Version


def balance_at_box(entry: DirectoryEntry | None, device_id: str, local: Iterable[tuple[int, int]]) -> int:
    """The member's balance at box `device_id`: the directory's, plus its own later events.

    `local` is (seq, points) for this box's events on the member's cards, points signed (earned positive,
    redeemed negative); those at or below the entry's watermark for this box are already in its balance.
    """
    watermark = entry.seen.get(device_id, 0) if entry is not None else 0
    base = entry.balance if entry is not None else 0
    return base + sum(points for seq, points in local if seq > watermark)


def redeemed_on(entry: DirectoryEntry | None, day: date) -> int:
    """Points the hub knows the member redeemed on `day` (0 when the entry speaks of another day)."""
    return entry.redeemed if entry is not None and entry.redeemed_day == day else 0
