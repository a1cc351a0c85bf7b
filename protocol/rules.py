"""The rule bundle HQ publishes to every box: every loyalty rule, versioned and signed by the hub.

Pure: the box and the hub compute the same figures from the same bundle and events (time, when a rule
needs it, is an argument). A bundle refuses fields it does not know (`extra="forbid"`): a box must never
run half of a newer bundle; it keeps its last good one and reports why (see `protocol.signing.verify_bundle`).

The programme parts (earning, tiers, discount, expiry, burn, monthly bonus, birthday, passes, caps) are in
`protocol.programme`; what a sale earns is `protocol.pricing`; a member's account over time is
`protocol.account`. Redemption: what points may pay for, at `points_per_unit` points per minor unit of
money, and how much one member may redeem per day at a box that cannot reach the hub.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from protocol.calendar import zone
from protocol.campaigns import first_conflict
from protocol.feedback import FEEDBACK_URL_PATTERN
from protocol.fields import UtcDatetime
from protocol.fraud import FraudRules
from protocol.programme import Campaign, DayPart, Earning, Film, ItemKind, Programme, ProgrammeRules

SIGNATURE_PATTERN = r"^[A-Za-z0-9_-]{86}$"
MAX_BUNDLE_BYTES = 256 * 1024
"""The largest bundle (its JSON, signed) a box takes: the hub refuses to publish a bigger one."""


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


class RuleBundle(ProgrammeRules):
    """Every rule a box applies, as HQ published it; `version` only ever grows.

    The bundle's own programme fields are the `default` programme's; `programmes` adds others, each a whole
    set of its own. Redemption, day parts, the film catalogue and campaigns are chain-wide.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["marquee.rules/1"] = Field(default="marquee.rules/1", alias="schema")
    version: Annotated[int, Field(ge=0)]
    """0 is the built-in default a box runs before its first bundle; HQ publishes from 1 on."""
    published_at: UtcDatetime
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    """The chain's time zone (IANA): days, weeks, months and day parts are local to it."""
    redemption: Redemption = Redemption()
    programmes: Annotated[tuple[Programme, ...], Field(max_length=20)] = ()
    day_parts: Annotated[tuple[DayPart, ...], Field(max_length=20)] = ()
    films: Annotated[tuple[Film, ...], Field(max_length=2000)] = ()
    campaigns: Annotated[tuple[Campaign, ...], Field(max_length=200)] = ()
    fraud: FraudRules = FraudRules()
    """The fraud rules (`protocol.fraud`): chain-wide, whatever the member's programme."""
    feedback_url: Annotated[str, Field(max_length=200, pattern=FEEDBACK_URL_PATTERN)] | None = None
    """Where the chain's audience feedback form is (`https://hq.example.com/f`): a till that asks gets, with a
    sale's answer, the link `<feedback_url>/<site>/<code>` to print on the ticket (`protocol.feedback`). None: no
    link. Left out of the bundle's JSON when None, so a bundle without it reads (and is signed) as before."""
    signature: Annotated[str, Field(pattern=SIGNATURE_PATTERN)] | None = None
    _genres: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> RuleBundle:
        zone(self.timezone)
        ids = ["default", *(programme.programme_id for programme in self.programmes)]
        if len(ids) != len(set(ids)):
            raise ValueError("programme ids must be unique (and not 'default': the bundle's own rules are it)")
        parts = {part.day_part_id for part in self.day_parts}
        if len(parts) != len(self.day_parts):
            raise ValueError("day part ids must be unique")
        titles = [film.title.casefold() for film in self.films]
        if len(titles) != len(set(titles)):
            raise ValueError("a film is listed twice in the catalogue")
        for rules in (self, *self.programmes):
            for rule in rules.earning:
                for part in rule.day_parts:
                    if part not in parts:
                        raise ValueError(f"earning rule {rule.rule_id} names day part {part!r}, which is not defined")
        campaign_ids = [campaign.campaign_id for campaign in self.campaigns]
        if len(campaign_ids) != len(set(campaign_ids)):
            raise ValueError("campaign ids must be unique")
        for campaign in self.campaigns:
            for part in campaign.match.day_parts:
                if part not in parts:
                    raise ValueError(f"campaign {campaign.campaign_id} names day part {part!r}, which is not defined")
            for programme in campaign.match.programmes:
                if programme not in ids:
                    raise ValueError(f"campaign {campaign.campaign_id} names programme {programme!r}, which is "
                                     "not in the bundle")
        problem = first_conflict(self.campaigns, self.genres_of, {part.day_part_id: part for part in self.day_parts})
        if problem:
            raise ValueError(problem)
        return self

    @model_serializer(mode="wrap")
    def _without_unset_feedback(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Boxes from before the field refuse a bundle that names it, and bundles signed before it keep their
        # signature: a bundle without a feedback address serialises exactly as it did.
        data: dict[str, Any] = handler(self)
        if data.get("feedback_url", "") is None:
            del data["feedback_url"]
        return data

    def rules_for(self, programme_id: str | None) -> ProgrammeRules:
        """The rules of programme `programme_id`: the bundle's own for `default` or one it does not know."""
        return next((programme for programme in self.programmes if programme.programme_id == programme_id), self)

    def genres_of(self, title: str | None) -> tuple[str, ...]:
        """The genres the catalogue gives the film `title` (none when it is not listed)."""
        if title is None:
            return ()
        return self._genres.get(title.casefold(), ())

    def model_post_init(self, context: object, /) -> None:
        # Looked up for every ticket line and by the conflict check: a dict, not a scan of 2,000 films.
        self._genres = {film.title.casefold(): film.genres for film in self.films}


def default_bundle(currency: str, published_at: datetime) -> RuleBundle:
    """What a box runs before HQ's first bundle reaches it: 10 % of ticket prices earned, no redemption.

    Safe by design: it can only give points, never let a member spend them without the hub's rules.
    """
    return RuleBundle(
        version=0, published_at=published_at, currency=currency,
        earning=(Earning(rule_id="default-tickets", kind="ticket", basis_points=1_000),),
    )
