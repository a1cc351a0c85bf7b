"""What a simulated till did and what the box's answers showed it: sales, faults, points, and (v1.2) the
benefits the chain's rules gave: money off by reason, campaign points, the members' tiers, passes used."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edge.devices import pos


@dataclass
class SimStats:
    """What the simulator did and saw; `stats["answered"]` works as well as `stats.answered`."""

    sales_sent: int = 0
    answered: int = 0
    unanswered: int = 0
    gave_up: int = 0  # NAKed more than MAX_RESENDS times
    interrupted: int = 0  # stop() came while waiting for an answer
    ok: int = 0
    rejected: int = 0
    errors: int = 0
    naks: int = 0
    resends: int = 0
    corrupted_sent: int = 0
    bad_answers: int = 0
    stale_answers: int = 0
    cards_presented: int = 0
    card_frames: int = 0
    noise_bursts: int = 0
    reader_faults: int = 0
    unplugs: int = 0
    points_seen: int = 0
    redeems_sent: int = 0
    authorised: int = 0
    declined: int = 0
    points_redeemed: int = 0
    answer_ms_max: float = 0.0
    answer_ms_total: float = 0.0
    by_loyalty: dict[str, int] = field(default_factory=dict)
    passes_bought: int = 0
    """Sales with a member card that bought the chain's pass."""
    money_off: dict[str, int] = field(default_factory=dict)
    """Money off the answers gave, in minor units, by reason (pass, birthday, member)."""
    pass_tickets: int = 0
    """Ticket units a pass covered."""
    birthday_tickets: int = 0
    member_discounts: int = 0
    """Sales where the member discount (the tier's or the spend's) took money off."""
    campaign_points: dict[str, int] = field(default_factory=dict)
    """Bonus points by campaign id."""
    daypart_points: int = 0
    tier_points: int = 0
    capped: int = 0
    tiers_seen: dict[str, int] = field(default_factory=dict)
    """Members by the last tier their answers showed."""
    signins: int = 0
    own_card_sales: int = 0
    """Sales the till's dishonest cashier swiped their own card on."""
    fraud: dict[str, int] = field(default_factory=dict)
    """Answers by what the fraud rules did (flag, hold, decline)."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict, for logs and JSON."""
        return asdict(self)

    def snapshot(self) -> SimStats:
        """A copy the till's thread no longer changes (dict() copies at once, unlike a loop over one)."""
        copied = replace(self)
        for name, value in vars(copied).items():
            if isinstance(value, dict):
                setattr(copied, name, dict(value))
        return copied


def _add(counts: dict[str, int], key: str, value: int) -> None:
    counts[key] = counts.get(key, 0) + value


class RulesTally:
    """Counts what the v1.2 answers showed into `stats`; remembers each card's last tier (never logged)."""

    def __init__(self, stats: SimStats) -> None:
        self.stats = stats
        self._tiers: dict[str, str] = {}

    def count(self, request: pos.PosRequest, loyalty: pos.Loyalty, card: str | None) -> None:
        """One answer's loyalty part for `request`; `card`: which member card was shown (None: none)."""
        stats = self.stats
        for part in loyalty.earned_by or ():
            if part.rule.startswith("campaign:"):
                _add(stats.campaign_points, part.rule.removeprefix("campaign:"), part.points)
            elif part.rule.startswith("daypart:"):
                stats.daypart_points += part.points
            elif part.rule.startswith("tier:"):
                stats.tier_points += part.points
        items = request.items if isinstance(request, pos.SaleRequest) else []
        member = False
        for benefit in loyalty.benefits or ():
            _add(stats.money_off, benefit.reason, benefit.amount)
            line = benefit.line
            if benefit.reason == "pass" and line is not None and 0 <= line < len(items) and items[line].price:
                stats.pass_tickets += benefit.amount // items[line].price
            member = member or benefit.reason == "member"
        stats.member_discounts += member
        stats.birthday_tickets += loyalty.birthday_reward == "used"
        stats.capped += loyalty.capped is not None
        if loyalty.tier is not None and card is not None:
            before = self._tiers.get(card)
            if before != loyalty.tier.id:
                if before is not None:
                    _add(stats.tiers_seen, before, -1)
                    if not stats.tiers_seen[before]:
                        del stats.tiers_seen[before]
                _add(stats.tiers_seen, loyalty.tier.id, 1)
                self._tiers[card] = loyalty.tier.id
