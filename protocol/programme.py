"""The parts of a loyalty programme inside the rule bundle: earning, tiers, discount, expiry, inactivity
burn, the monthly bonus, the birthday reward, passes and caps; and the chain-wide parts: day parts, the film
catalogue and campaigns.

Pure data, refusing fields they do not know (a box must never run half of a newer bundle). Money is in
minor units of the bundle's currency; percentages of money in basis points (1,000 = 10 %); bonuses on
points in percent of the line's base points. Every day, week, month and time of day is the chain's local
time (`protocol.calendar`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.fields import UtcDatetime

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ItemKind = Literal["ticket", "concession"]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
Title = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")]
Percent = Annotated[int, Field(ge=0, le=1000)]
BasisPoints = Annotated[int, Field(ge=0, le=10_000)]
Money = Annotated[int, Field(ge=0, le=10**12)]
PointsCount = Annotated[int, Field(ge=0, le=10**9)]
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Earning(_Part):
    """Base points for the items of one kind, or only for those of it that it names (SKU, category, format).

    A line earns under one rule: the first naming its SKU, else the first naming its category or format,
    else its kind's rule without names. Points = amount x basis_points / 10,000, each bonus (tier, day part,
    campaign) adding its percent of that, each part rounded down per line.
    """

    rule_id: RuleId
    kind: ItemKind
    skus: tuple[Name, ...] = ()
    categories: tuple[Name, ...] = ()
    """Concession categories (popcorn, drinks) or ticket categories."""
    formats: tuple[Name, ...] = ()
    """Ticket formats (3d, imax, premium)."""
    basis_points: Annotated[int, Field(ge=0, le=100_000)]
    """Points per 10,000 minor units of the line's amount (1,000 = 10 %)."""
    day_parts: dict[RuleId, Percent] = Field(default_factory=dict)
    """Bonus percent of the base points for a line in a day part (a show's start, else the sale's time)."""

    @property
    def named(self) -> bool:
        return bool(self.skus or self.categories or self.formats)


class TierLevel(_Part):
    """One tier: reached with `min_visits` visits or `min_spend` spend in the window (either suffices)."""

    tier_id: RuleId
    name: Name
    min_visits: PointsCount | None = None
    min_spend: Money | None = None
    bonus_percent: Percent = 0
    """Extra points, in percent of a line's base points."""
    discount_bp: BasisPoints = 0
    """The member discount this tier gives (the larger of it and the spend discount applies, never above the
    spend discount's `max_bp`: a draft whose tier asks more is refused)."""
    free_upgrade: bool = False
    early_booking: bool = False


class Tiers(_Part):
    """Tiers, lowest first. A member moves up as soon as the window's activity reaches a tier; at each review
    the tier is set from the window (`demotion`: at most one level down, or straight to what they qualify
    for). The window: the current local month and the `window_months` - 1 before it. A visit: a local day
    with at least one ticket bought."""

    levels: Annotated[tuple[TierLevel, ...], Field(min_length=1, max_length=10)]
    window_months: Annotated[int, Field(ge=1, le=36)] = 12
    review: Literal["monthly", "quarterly", "yearly"] = "yearly"
    review_day: Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-01$")] = "01-01"
    """Yearly reviews: the month (MM-01) they run on, at local midnight."""
    demotion: Literal["one_level", "to_qualified"] = "one_level"

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        ids = [level.tier_id for level in self.levels]
        if len(ids) != len(set(ids)):
            raise ValueError("tier ids must be unique")
        base = self.levels[0]
        if base.min_visits or base.min_spend:
            raise ValueError(f"the lowest tier ({base.tier_id}) is every member's: it takes no threshold")
        for field in ("min_visits", "min_spend"):
            lower: TierLevel | None = None  # the last tier below that sets this threshold
            for upper in self.levels[1:]:
                high = getattr(upper, field)
                if lower is not None and high is not None and high <= getattr(lower, field):
                    raise ValueError(f"tier {upper.tier_id} must need more {field[4:]} than {lower.tier_id}")
                lower = upper if high is not None else lower
        for level in self.levels[1:]:
            if level.min_visits is None and level.min_spend is None:
                raise ValueError(f"tier {level.tier_id} needs min_visits or min_spend")
        return self


class DiscountStep(_Part):
    lifetime_spend: Money
    discount_bp: BasisPoints


class SpendDiscount(_Part):
    """The member discount that rises with lifetime spend: `min_bp` from the first sale, each step's rate
    once lifetime spend reaches it, never above `max_bp`. Applies to the kinds listed."""

    min_bp: BasisPoints
    max_bp: BasisPoints
    steps: tuple[DiscountStep, ...] = ()
    kinds: tuple[ItemKind, ...] = ("concession",)


class Expiry(_Part):
    """Points expire first in, first out: those earned in a local month last `shelf_life_months` whole
    months after it and lapse at the next local month start (earned in January 2026 with 12: kept through
    January 2027, gone on 1 February 2027)."""

    shelf_life_months: Annotated[int, Field(ge=1, le=120)]


class Burn(_Part):
    """Every point lapses after `inactive_days` local days without a visit (at the start of the next day)."""

    inactive_days: Annotated[int, Field(ge=7, le=3650)]


class MonthlyBonus(_Part):
    """`points` to a member with at least `min_visits` visits in a local month, paid when the month ends."""

    min_visits: Annotated[int, Field(ge=1, le=31)]
    points: Annotated[int, Field(ge=1, le=10**7)]


class Birthday(_Part):
    """One free ticket a year, in the ISO week (Monday to Sunday) of the member's birthday: the dearest
    ticket line's unit, up to `max_amount` (0: no limit)."""

    max_amount: Money = 0


class PassProduct(_Part):
    """A subscription pass a member buys at the till (a line with this SKU): for `validity_days` local days
    from the purchase (a renewal extends it), `films_per_week` tickets included (ISO weeks), at most
    `per_day` a day, for the listed formats (empty: any format) up to `max_ticket_price` (0: any)."""

    pass_id: RuleId
    name: Name
    sku: Name
    validity_days: Annotated[int, Field(ge=1, le=400)]
    films_per_week: Annotated[int, Field(ge=1, le=50)]
    per_day: Annotated[int, Field(ge=1, le=10)] = 1
    formats: tuple[Name, ...] = ()
    max_ticket_price: Money = 0


class Caps(_Part):
    """Limits against abuse, per member and local day: sales that earn points, and points earned. A sale
    beyond the first earns nothing; one crossing the second earns what is left. 0: no limit."""

    earning_sales_per_day: Annotated[int, Field(ge=0, le=1000)] = 0
    points_per_day: Annotated[int, Field(ge=0, le=10**9)] = 0


class ProgrammeRules(_Part):
    """Everything one loyalty programme decides."""

    earning: tuple[Earning, ...] = ()
    tiers: Tiers | None = None
    discount: SpendDiscount | None = None
    expiry: Expiry | None = None
    burn: Burn | None = None
    monthly_bonus: MonthlyBonus | None = None
    birthday: Birthday | None = None
    passes: tuple[PassProduct, ...] = ()
    caps: Caps = Caps()

    @model_validator(mode="after")
    def _consistent(self) -> ProgrammeRules:
        ids = [rule.rule_id for rule in self.earning]
        if len(ids) != len(set(ids)):
            raise ValueError("earning rule ids must be unique")
        kind_wide = [rule.kind for rule in self.earning if not rule.named]
        if len(kind_wide) != len(set(kind_wide)):
            raise ValueError("two earning rules cover every item of one kind; keep one")
        named = [(rule.kind, sku) for rule in self.earning for sku in rule.skus]
        if len(named) != len(set(named)):
            raise ValueError("a SKU is named by two earning rules of its kind")
        passes = [product.pass_id for product in self.passes]
        skus = [product.sku for product in self.passes]
        if len(passes) != len(set(passes)) or len(skus) != len(set(skus)):
            raise ValueError("pass ids and pass SKUs must be unique")
        if self.discount is not None:
            top = max([self.discount.min_bp, *(step.discount_bp for step in self.discount.steps),
                       *(level.discount_bp for level in (self.tiers.levels if self.tiers is not None else ()))])
            if top > self.discount.max_bp:
                raise ValueError(f"a discount step of {top / 100:g} % is above the maximum of "
                                 f"{self.discount.max_bp / 100:g} %")
        return self

    def level(self, tier_id: str | None) -> TierLevel | None:
        """The tier `tier_id` (the lowest when None or unknown); None without tiers."""
        if self.tiers is None:
            return None
        return next((level for level in self.tiers.levels if level.tier_id == tier_id), self.tiers.levels[0])


class Programme(ProgrammeRules):
    programme_id: RuleId
    name: Name


class DayPart(_Part):
    """A part of the day: from `start` to before `end` (local), on the listed weekdays."""

    day_part_id: RuleId
    start: ClockTime
    end: ClockTime
    days: tuple[Weekday, ...] = WEEKDAYS


class Film(_Part):
    """A film the rules may name: its title as tills send it, its genres and its distributor."""

    title: Title
    genres: tuple[Name, ...] = ()
    distributor: Name | None = None


class CampaignMatch(_Part):
    """What a campaign pays on; each field empty: any. Films by title, as tills send them."""

    kinds: tuple[ItemKind, ...] = ("ticket",)
    films: Annotated[tuple[Title, ...], Field(max_length=100)] = ()
    genres: Annotated[tuple[Name, ...], Field(max_length=50)] = ()
    halls: Annotated[tuple[Name, ...], Field(max_length=100)] = ()
    sites: Annotated[tuple[Name, ...], Field(max_length=500)] = ()
    day_parts: Annotated[tuple[RuleId, ...], Field(max_length=20)] = ()
    formats: Annotated[tuple[Name, ...], Field(max_length=20)] = ()
    programmes: Annotated[tuple[RuleId, ...], Field(max_length=20)] = ()


class Campaign(_Part):
    """Bonus points on the lines it matches between `starts_at` and `ends_at` (sale time): `bonus_percent` of
    the line's base points and `points_per_unit` per unit bought. A sponsor (a distributor) pays for the
    bonus points at the redemption rate."""

    campaign_id: RuleId
    name: Name
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    match: CampaignMatch = CampaignMatch()
    bonus_percent: Percent = 0
    points_per_unit: Annotated[int, Field(ge=0, le=10**6)] = 0
    sponsor: Name | None = None

    @model_validator(mode="after")
    def _pays(self) -> Campaign:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"campaign {self.campaign_id} ends before it starts")
        if not self.bonus_percent and not self.points_per_unit:
            raise ValueError(f"campaign {self.campaign_id} pays nothing: set bonus_percent or points_per_unit")
        return self
