"""Alerts: what the fraud rules and the chain's integrity checks raise for HQ to act on.

A box raises an alert as an event (`alert.raised`) in its journal, so it reaches the hub however long the
site was offline, exactly once (the hub keeps one case per `(site, key)`). Its `key` deduplicates: the same
rule firing again for the same subject on the same local day is the same alert (the box counts repeats in
memory and says how many in its next alert of another day; the hub counts the events it got). The hub raises
its own (impossible travel, overdrafts, broken journals) under the same codes (`protocol.fraud.REASONS`).

Nothing in an alert reads as a person: cards are tokens, members and staff are ids.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar

from pydantic import Field

from protocol.fields import Id, Payload, Token, UtcDatetime, text
from protocol.fraud import FraudAction, Severity
from protocol.staff import StaffId

AlertKey = Annotated[str, Field(pattern=r"^[a-z_]{1,40}:[A-Za-z0-9_.:-]{1,160}$")]


def alert_key(code: str, subject: str, day: date) -> str:
    """The key that makes one alert of a rule firing again and again for one subject on one local day."""
    return f"{code}:{subject}:{day.isoformat()}"


class AlertRaised(Payload):
    """A fraud rule fired at this box for the first time today for its subject (a card, a cashier, a till)."""

    event_type: ClassVar[str] = "alert.raised"

    site_id: Id
    key: AlertKey
    code: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]
    severity: Severity
    action: FraudAction
    """What the box did (flag, hold, decline)."""
    first_at: UtcDatetime
    till_id: Id | None = None
    cashier_id: Annotated[str, text(64, 1)] | None = None
    """The till's cashier code as the till sent it (a sale's may be any printable text)."""
    card_token: Token | None = None
    member_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None
    staff_id: StaffId | None = None
    """The staff member the card belongs to, when it is a staff member's own."""
    sale_id: Annotated[str, text(64, 1)] | None = None
    summary: Annotated[str, text(300, 1)]
    """One line a manager reads (codes and figures, no personal data)."""
    figures: Annotated[dict[str, int], Field(max_length=20)] = Field(default_factory=dict)
    """What the rule counted and its limit (`points`, `limit`, `sales`, `minutes`...)."""


PAYLOADS: dict[str, type[Payload]] = {AlertRaised.event_type: AlertRaised}

