"""The rule bundle HQ publishes to every box: earning and redemption, versioned and signed by the hub.

Pure: the box and the hub compute the same points from the same bundle and items (time, when a rule needs
it, is an argument). A bundle refuses fields it does not know (`extra="forbid"`): a box must never run
half of a newer bundle; it keeps its last good one and reports why (see `protocol.signing.verify_bundle`).

Earning: each line item earns `basis_points` / 10,000 of its amount under the one rule that matches it,
rounded down per line; a rule naming the item's SKU wins over a rule for its whole kind. Redemption: what
points may pay for, at `points_per_unit` points per minor unit of money, and how much one member may
redeem per day at a box that cannot reach the hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.events import LineItem, UtcDatetime

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ItemKind = Literal["ticket", "concession"]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
SIGNATURE_PATTERN = r"^[A-Za-z0-9_-]{86}$"


class Earning(BaseModel):
    """Points for the items of one kind, or only for the listed SKUs of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_id: RuleId
    kind: ItemKind
    skus: tuple[Sku, ...] = ()
    """Empty: every item of `kind` that no SKU rule names."""
    basis_points: Annotated[int, Field(ge=0, le=100_000)]
    """Points per 10,000 minor units of the line's amount (1,000 = 10 %); rounded down per line."""


class Redemption(BaseModel):
    """Paying with points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    kinds: tuple[ItemKind, ...] = ("ticket",)
    """What points may pay for."""
    points_per_unit: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Points that pay for one minor unit of money (1: a point is worth a cent)."""
    partial: bool = True
    """Points may pay part of an item's price (else only whole items)."""
    min_points: Annotated[int, Field(ge=0)] = 0
    """The smallest redemption accepted."""
    offline_daily_cap: Annotated[int, Field(ge=0)] = 0
    """Points one member may redeem per day at one box beyond what the hub has confirmed to it (the box's
    member directory): what two boxes cut off from the hub can spend twice is bounded by it. 0: no cap."""
    hold_s: Annotated[int, Field(ge=10, le=3600)] = 300
    """How long authorised points stay held for a sale the till has not confirmed."""


class RuleBundle(BaseModel):
    """Every rule a box applies, as HQ published it; `version` only ever grows."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.rules/1"] = Field(default="marquee.rules/1", alias="schema")
    version: Annotated[int, Field(ge=0)]
    """0 is the built-in default a box runs before its first bundle; HQ publishes from 1 on."""
    published_at: UtcDatetime
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    earning: tuple[Earning, ...] = ()
    redemption: Redemption = Redemption()
    signature: Annotated[str, Field(pattern=SIGNATURE_PATTERN)] | None = None

    @model_validator(mode="after")
    def _no_conflicting_rules(self) -> RuleBundle:
        ids = [rule.rule_id for rule in self.earning]
        if len(ids) != len(set(ids)):
            raise ValueError("earning rule ids must be unique")
        kind_wide = [rule.kind for rule in self.earning if not rule.skus]
        if len(kind_wide) != len(set(kind_wide)):
            raise ValueError("two earning rules cover every item of one kind; keep one")
        named = [(rule.kind, sku) for rule in self.earning for sku in rule.skus]
        if len(named) != len(set(named)):
            raise ValueError("a SKU is named by two earning rules of its kind")
        return self

    def rule_for(self, item: LineItem) -> Earning | None:
        """The earning rule that applies to `item`: one naming its SKU, else its kind's, else none."""
        fallback = None
        for rule in self.earning:
            if rule.kind != item.kind:
                continue
            if item.sku in rule.skus:
                return rule
            if not rule.skus:
                fallback = rule
        return fallback


def points_earned(
    bundle: RuleBundle, items: Sequence[LineItem], paid_with_points: Sequence[int] = ()
) -> tuple[int, tuple[str, ...]]:
    """Points the items earn under `bundle`, and the ids of the rules that earned them (in bundle order).

    `paid_with_points[i]` is the part of line i's amount paid with points: it earns nothing.
    """
    total = 0
    used: set[str] = set()
    for index, item in enumerate(items):
        rule = bundle.rule_for(item)
        if rule is None:
            continue
        paid = paid_with_points[index] if index < len(paid_with_points) else 0
        points = max(0, item.amount - paid) * rule.basis_points // 10_000
        if points:
            total += points
            used.add(rule.rule_id)
    return total, tuple(rule.rule_id for rule in bundle.earning if rule.rule_id in used)


def default_bundle(currency: str, published_at: datetime) -> RuleBundle:
    """What a box runs before HQ's first bundle reaches it: 10 % of ticket prices earned, no redemption.

    Safe by design: it can only give points, never let a member spend them without the hub's rules.
    """
    return RuleBundle(
        version=0, published_at=published_at, currency=currency,
        earning=(Earning(rule_id="default-tickets", kind="ticket", basis_points=1_000),),
    )
