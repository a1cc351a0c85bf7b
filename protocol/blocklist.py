"""The chain's blocklist: cards and members the fraud rules decline wherever they show up.

HQ publishes it whole, signed by the hub's key (the one that signs rule bundles), retained on
`marquee/v1/chain/blocklist`; a box keeps the newest version it verified and applies it offline. A card is
listed by its token, a member by id (every card they hold).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from protocol.fields import UtcDatetime
from protocol.ids import ID_PATTERN

BLOCKLIST_SCHEMA: Final = "marquee.blocklist/1"
MAX_BLOCKLIST: Final = 20_000
"""Entries of each kind a blocklist may hold: 20,000 card tokens and 20,000 member ids make under 3 MB, under
the 4 MB a box takes in one message (`protocol.codec`)."""


class Blocklist(BaseModel):
    """Every listed card token and member id, as of `version` (the version only ever grows: a box takes none
    older than the one it holds)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.blocklist/1"] = Field(default=BLOCKLIST_SCHEMA, alias="schema")
    version: Annotated[int, Field(ge=0, le=2**63 - 1)]
    issued_at: UtcDatetime
    cards: Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{32,64}$")]], Field(max_length=MAX_BLOCKLIST)] = (
        Field(default_factory=list))
    members: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(max_length=MAX_BLOCKLIST)] = Field(
        default_factory=list)
    signature: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")] | None = None
    _cards: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _members: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def lists(self, token: str | None, member_id: str | None) -> bool:
        """True when the card or its member is listed."""
        return (token is not None and token in self._cards) or (member_id is not None and member_id in self._members)

    def model_post_init(self, context: object, /) -> None:
        # Checked on every sale: sets, not scans of 50,000 entries.
        self._cards = frozenset(self.cards)
        self._members = frozenset(self.members)
