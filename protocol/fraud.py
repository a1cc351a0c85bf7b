"""Fraud rules: the part of the signed bundle that says what looks like abuse, and what a box does about it.

Every rule has a threshold and an action. A rule fires when what it counts would go *above* its limit with
this sale (at the limit is allowed). The strongest action of the rules that fire is the sale's:
`allow` < `flag` (loyalty as usual, an alert raised) < `hold` (the loyalty part waits for a supervisor's
approval at the till) < `decline` (no loyalty part: nothing earned, paid or given). Fraud never blocks a
sale: the till always sells, and the answer says why the loyalty part was withheld (`REASONS`).

Pure data. The rules are evaluated at the box against its recent sales (`protocol.fraud_window`); the hub
checks what needs every site at once (impossible travel, offline overdrafts, broken journals).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

FraudAction = Literal["allow", "flag", "hold", "decline"]
ACTION_RANK: Final[dict[str, int]] = {"allow": 0, "flag": 1, "hold": 2, "decline": 3}
Severity = Literal["info", "warning", "critical"]

REASONS: Final[dict[str, str]] = {
    # At the box, per sale or staff action.
    "card_points_day": "points earned by this card today above the limit",
    "card_points_shift": "points earned by this card in this cashier's shift above the limit",
    "card_points_till_day": "points earned by this card at this till today above the limit",
    "same_card_till": "this card on too many sales at this till in a short time",
    "staff_own_card": "a staff member's own card on a sale they ring up",
    "velocity": "this card used too often in a short time",
    "two_tills": "this card used at two tills at once",
    "redeem_after_earning": "points redeemed soon after a burst of earning",
    "refund_rate": "refunds and voids of sales that earned points above this cashier's limit",
    "override_rate": "manual discounts and overrides above this cashier's limit",
    "blocklist": "this card or member is on the chain's blocklist",
    # At the hub, across sites and boxes.
    "impossible_travel": "the same card at two sites too far apart for the time between",
    "overdraft": "a member's points spent twice by boxes that could not see each other",
    "journal_altered": "a box's journal row was altered on its disk",
    "chain_gap": "an event is missing from a box's journal",
    "chain_conflict": "a box's hash chain breaks: two signed events under one number",
    "storage_damaged": "a box's journal file is damaged",
}
"""Every reason code, with the sentence a till or a manager reads."""

Limit = Annotated[int, Field(ge=1, le=10**9)]
Minutes = Annotated[int, Field(ge=1, le=7 * 24 * 60)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointsLimit(_Rule):
    """Points one card may earn in a span (a local day, a shift) before `action`."""

    limit: Limit
    action: FraudAction = "hold"


class CountLimit(_Rule):
    """At most `limit` of something in any `minutes` before `action`."""

    limit: Limit
    minutes: Minutes
    action: FraudAction = "hold"


class TwoTills(_Rule):
    """One card on sales at two tills of a site within `seconds` of each other."""

    seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    action: FraudAction = "hold"


class RedeemAfterEarning(_Rule):
    """A redemption by a card that earned more than `points` in the `minutes` before it."""

    points: Limit
    minutes: Minutes
    action: FraudAction = "hold"


class Travel(_Rule):
    """At the hub: a card at two sites further apart than a trip at `kmh` allows in the time between."""

    kmh: Annotated[int, Field(ge=1, le=2000)] = 200
    min_km: Annotated[int, Field(ge=0, le=20_000)] = 50
    """Sites closer than this never raise it (neighbouring sites, a city's multiplex and its annex)."""


class FraudRules(_Rule):
    """The chain's fraud rules. Each rule is off when absent (None), except the blocklist's and the staff
    card's actions, which are on by default; `enabled` false turns every rule of the box off."""

    enabled: bool = True
    card_points_day: PointsLimit | None = None
    """Points one card earns on a local day at this site's box."""
    card_points_shift: PointsLimit | None = None
    """Points one card earns during one cashier's shift at one till (sign-in to sign-out)."""
    card_points_till_day: PointsLimit | None = None
    """Points one card earns at one till on a local day."""
    same_card_till: CountLimit | None = None
    """Sales with one card at one till in any `minutes` (the cashier's own card on customers' sales)."""
    staff_own_card: FraudAction = "hold"
    """A card of a staff member's own membership on a sale that staff member rings up."""
    velocity: CountLimit | None = None
    """Sales with one card at any till of the site in any `minutes`."""
    two_tills: TwoTills | None = None
    redeem_after_earning: RedeemAfterEarning | None = None
    refund_rate: CountLimit | None = None
    """Refunds and voids of sales that earned points, by one cashier in any `minutes`."""
    override_rate: CountLimit | None = None
    """Manual discounts and price overrides by one cashier in any `minutes`."""
    blocklist: FraudAction = "decline"
    travel: Travel | None = Travel()


class FraudOutcome(BaseModel):
    """What the fraud rules decided for a sale or a staff action, as recorded and shown at the till."""

    model_config = ConfigDict(extra="allow", frozen=True)

    action: FraudAction
    reasons: Annotated[list[Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]], Field(max_length=20)] = Field(
        default_factory=list)
    """Reason codes (`REASONS`) of the rules that fired, strongest first."""


def stronger(first: FraudAction, second: FraudAction) -> FraudAction:
    """The stronger of two actions."""
    return first if ACTION_RANK[first] >= ACTION_RANK[second] else second


def severity_of(action: FraudAction) -> Severity:
    """An alert's severity from the action its rule took: a decline or hold is a warning, a flag is info."""
    return "warning" if ACTION_RANK[action] >= ACTION_RANK["hold"] else "info"
