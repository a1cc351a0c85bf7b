"""Points held for a sale the till has not completed yet: two-phase redemption, like a card payment.

A hold is open until exactly one of: the till's sale captures it (before it expires), the till cancels
it, or it expires. Pure state; the agent journals each transition and keeps the open holds in the store
so that a restart neither frees nor loses them. Times are wall-clock seconds (they must survive a restart).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

HoldState = Literal["open", "captured", "released"]


def new_hold_id() -> str:
    """`h` and 16 hex digits, random: what the till sends back with the sale or the cancel."""
    return "h" + os.urandom(8).hex()


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    till_id: str
    sale_id: str
    token: str
    points: int
    amount: int
    expires_at: float
    state: HoldState = "open"


class HoldBook:
    """The open holds of a box, by id; a closed hold leaves the book."""

    def __init__(self, holds: Iterable[Hold] = ()) -> None:
        self._open: dict[str, Hold] = {hold.hold_id: hold for hold in holds if hold.state == "open"}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, hold: Hold) -> None:
        if hold.hold_id in self._open:
            raise ValueError("hold ids are unique")
        self._open[hold.hold_id] = hold

    def get(self, hold_id: str) -> Hold | None:
        return self._open.get(hold_id)

    def for_sale(self, till_id: str, sale_id: str) -> Hold | None:
        """The open hold of a till's sale (one per sale)."""
        return next((hold for hold in self._open.values() if (hold.till_id, hold.sale_id) == (till_id, sale_id)),
                    None)

    def capture(self, hold_id: str, now: float) -> Hold | None:
        """Close an open, unexpired hold as captured; None (and nothing changed) otherwise."""
        hold = self._open.get(hold_id)
        if hold is None or now >= hold.expires_at:
            return None
        del self._open[hold_id]
        return replace(hold, state="captured")

    def release(self, hold_id: str) -> Hold | None:
        """Close an open hold as released (cancelled, expired, or answered too late); None if not open."""
        hold = self._open.pop(hold_id, None)
        return replace(hold, state="released") if hold is not None else None

    def expired(self, now: float) -> list[Hold]:
        """Open holds whose time is up (still open: the caller releases each and journals why)."""
        return [hold for hold in self._open.values() if now >= hold.expires_at]

    def held(self, tokens: Iterable[str]) -> int:
        """Points held on these cards (a member's cards)."""
        wanted = set(tokens)
        return sum(hold.points for hold in self._open.values() if hold.token in wanted)
