"""What a backtest adds up, per site and chain-wide, for the recorded sales (baseline) and the replay
(proposed), and the JSON it answers with. Every figure is an integer: points, or money in minor units."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from protocol.account import Effect

COUNTS = ("points_issued", "discounts", "points_redeemed", "redemptions", "redemptions_declined")


@dataclass(slots=True)
class Figures:
    """One side's sums over some sales."""

    points_issued: int = 0
    discounts: int = 0
    """Money off the sales (pass, birthday ticket, member discount)."""
    points_redeemed: int = 0
    redemptions: int = 0
    """Sales paid in part with points."""
    redemptions_declined: int = 0
    """Recorded redemptions the proposed balance (or redemption rules) could not have paid."""
    sponsor_points: dict[str, int] = field(default_factory=dict)

    def add_sponsor(self, sponsor: str, points: int) -> None:
        self.sponsor_points[sponsor] = self.sponsor_points.get(sponsor, 0) + points

    def as_json(self, points_per_unit: int) -> dict[str, Any]:
        """The figures, sponsors with the money their points are worth at `points_per_unit` (rounded down)."""
        return {**{name: getattr(self, name) for name in COUNTS},
                "sponsors": {sponsor: {"points": points, "money": points // points_per_unit}
                             for sponsor, points in sorted(self.sponsor_points.items())}}


@dataclass(slots=True)
class Tiers:
    """Members who bought in the scope, and how their tier at the end of the period compares: `changed`
    when the tier ids differ, `up` and `down` by position in the tiers (the lowest is 0). A side without
    tiers counts as the lowest tier (tiers introduced: only those above it have changed)."""

    members: int = 0
    changed: int = 0
    up: int = 0
    down: int = 0

    def count(self, baseline: tuple[str | None, int], proposed: tuple[str | None, int]) -> None:
        self.members += 1
        if baseline[0] is None or proposed[0] is None:
            self.changed += baseline[1] != proposed[1]
        else:
            self.changed += baseline[0] != proposed[0]
        self.up += proposed[1] > baseline[1]
        self.down += proposed[1] < baseline[1]


@dataclass(slots=True)
class Scope:
    """A site, or the chain."""

    sales: int = 0
    baseline: Figures = field(default_factory=Figures)
    proposed: Figures = field(default_factory=Figures)
    tiers: Tiers = field(default_factory=Tiers)

    def as_json(self, baseline_rate: int, proposed_rate: int) -> dict[str, Any]:
        baseline, proposed = self.baseline.as_json(baseline_rate), self.proposed.as_json(proposed_rate)
        return {"sales": self.sales, "baseline": baseline, "proposed": proposed,
                "difference": difference(baseline, proposed),
                "tiers": {item.name: getattr(self.tiers, item.name) for item in fields(Tiers)}}


def difference(baseline: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    """Proposed minus baseline, figure by figure (a sponsor missing on one side counts 0 there)."""
    zero = {"points": 0, "money": 0}
    sponsors = sorted(set(baseline["sponsors"]) | set(proposed["sponsors"]))
    return {**{name: proposed[name] - baseline[name] for name in COUNTS},
            "sponsors": {sponsor: {unit: proposed["sponsors"].get(sponsor, zero)[unit]
                                   - baseline["sponsors"].get(sponsor, zero)[unit] for unit in ("points", "money")}
                         for sponsor in sponsors}}


@dataclass(slots=True)
class TimeRules:
    """What the time-based rules did to the accounts during the period (chain-wide: they belong to no sale)."""

    monthly_bonus: int = 0
    expired: int = 0
    burnt: int = 0

    def add(self, effects: list[Effect]) -> None:
        for effect in effects:
            if effect.kind == "bonus":
                self.monthly_bonus += effect.points
            elif effect.kind == "expiry":
                self.expired -= effect.points
            elif effect.kind == "burn":
                self.burnt -= effect.points

    def as_json(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in fields(TimeRules)}
