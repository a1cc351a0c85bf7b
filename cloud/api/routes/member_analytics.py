"""/api/v1/analytics/members: summary, RFM segments, churn warnings, top members, tier changes within reach,
preferences and campaign effect (docs/members.md, "Member analytics").

Members by pseudonymous id only: no personal data in any answer. A site manager sees the members whose home
site (where they visit most) is one of theirs; `site` narrows to one site (403 when not the viewer's). Lists are
keyset pages: `next` is the `before` of the next page."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, BackgroundTasks, HTTPException, Path, Query, status
from pydantic import BaseModel

from cloud.analytics import campaign_effect, members_churn, members_rfm
from cloud.analytics.members_lists import Cursor, MemberLine
from cloud.analytics.members_snapshot import MemberCounts, counts, refresh_quietly
from cloud.analytics.members_tiers import REACH, close_to_change
from cloud.analytics.members_top import TopBy, top_members
from cloud.api.deps import ConnDep, EngineDep, SettingsDep, ViewerDep
from cloud.api.schemas import ErrorOut
from cloud.members.accounts import running_bundle
from cloud.settings import HubSettings
from protocol.ids import ID_PATTERN

router = APIRouter(prefix="/analytics/members", tags=["analytics"])

CURSOR_PATTERN = r"^-?[0-9]{1,18}:[a-z0-9][a-z0-9_-]{0,63}$"
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The site is not one of this site manager's."}}

Site = Annotated[str | None, Query(pattern=ID_PATTERN, description="One home site; default every site the "
                                                                   "viewer sees")]
Limit = Annotated[int, Query(ge=1, le=500)]
Before = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="The `next` of the previous page")]


def _cursor(before: str | None) -> Cursor | None:
    if before is None:
        return None
    value, member_id = before.split(":", 1)
    return int(value), member_id


def _next(cursor: Cursor | None) -> str | None:
    return f"{cursor[0]}:{cursor[1]}" if cursor is not None else None


def _counts(engine: sa.Engine, conn: sa.Connection, settings: HubSettings, background: BackgroundTasks,
            sites: frozenset[str] | None) -> MemberCounts:
    now = datetime.now(UTC)
    found, stale = counts(engine, conn, sites=sites, now=now, max_age=settings.member_snapshot_s)
    if stale:  # answered from the snapshot; refreshed after the answer, for the next reads
        background.add_task(refresh_quietly, engine, now=now, max_age=settings.member_snapshot_s)
    return found


class SummaryOut(BaseModel):
    """Members with at least one visit (home site in scope), as of the snapshot `as_of`. Money in minor units of
    `currency`; active: a visit in the last 30 (90) local days."""

    as_of: datetime | None
    currency: str
    members: int
    active_30d: int
    active_90d: int
    new_this_month: int
    visits_per_active_member_30d: float
    spend_per_member: float
    spend_per_active_member_30d: float


@router.get("/summary", responses=_FORBIDDEN)
def summary(conn: ConnDep, engine: EngineDep, settings: SettingsDep, viewer: ViewerDep,
            background: BackgroundTasks, site: Site = None) -> SummaryOut:
    """How many members, how many active, new this month, visits per active member, spend per member."""
    found = _counts(engine, conn, settings, background, viewer.scope(site))
    t = found.totals

    def ratio(top: int, bottom: int) -> float:
        return round(top / bottom, 2) if bottom else 0.0

    return SummaryOut(as_of=found.as_of, currency=running_bundle(conn).currency, members=t["members"],
                      active_30d=t["active_30d"], active_90d=t["active_90d"], new_this_month=t["new_this_month"],
                      visits_per_active_member_30d=ratio(t["visits_30d"], t["active_30d"]),
                      spend_per_member=ratio(t["spend"], t["members"]),
                      spend_per_active_member_30d=ratio(t["spend_30d"], t["active_30d"]))


class SegmentOut(BaseModel):
    segment: str
    members: int
    share: float
    """Of the members in scope, 0 to 1."""
    avg_visits: float
    avg_spend: float


class CellOut(BaseModel):
    r: int
    f: int
    m: int
    members: int


class ThresholdsOut(BaseModel):
    """R is 5 within recency_days[0] days, 4 within [1], ...; F is 5 from frequency_visits[0] visits, ...; M is 5
    from money_spend[0] (minor units), ...; 1 beyond the last."""

    recency_days: list[int]
    frequency_visits: list[int]
    money_spend: list[int]


class SegmentsOut(BaseModel):
    as_of: datetime | None
    members: int
    thresholds: ThresholdsOut
    segments: list[SegmentOut]
    cells: list[CellOut]


@router.get("/segments", responses=_FORBIDDEN)
def segments(conn: ConnDep, engine: EngineDep, settings: SettingsDep, viewer: ViewerDep,
             background: BackgroundTasks, site: Site = None) -> SegmentsOut:
    """RFM segments with their members, share, average visits and spend, and the R/F/M cells they come from."""
    found = _counts(engine, conn, settings, background, viewer.scope(site))
    named: dict[str, list[int]] = {name: [0, 0, 0] for name in members_rfm.SEGMENTS}
    for (r, f, m), values in found.rfm.items():
        for index, value in enumerate(values):
            named[members_rfm.segment(r, f, m)][index] += value
    total = sum(values[0] for values in named.values())
    return SegmentsOut(
        as_of=found.as_of, members=total,
        thresholds=ThresholdsOut(recency_days=list(members_rfm.RECENCY_DAYS),
                                 frequency_visits=list(members_rfm.FREQUENCY_VISITS),
                                 money_spend=list(members_rfm.MONEY_SPEND)),
        segments=[SegmentOut(segment=name, members=count, share=round(count / total, 4) if total else 0.0,
                             avg_visits=round(visits / count, 2) if count else 0.0,
                             avg_spend=round(spend / count, 2) if count else 0.0)
                  for name, (count, visits, spend) in named.items()],
        cells=[CellOut(r=r, f=f, m=m, members=values[0]) for (r, f, m), values in sorted(found.rfm.items())])


class MemberOut(BaseModel):
    """A member by id: activity (money in minor units), points, tier, RFM scores and segment today."""

    member_id: str
    status: str | None
    home_site: str | None
    first_visit: date | None
    last_visit: date | None
    days_since: int | None
    visits: int
    sales: int
    spend: int
    points_earned: int
    balance: int
    tier: str | None
    interval_days: float | None
    """The usual interval between visits (an exponentially weighted mean of the gaps)."""
    r: int
    f: int
    m: int
    segment: str


class MemberPage(BaseModel):
    items: list[MemberOut]
    next: str | None
    """The `before` of the next page (None: the last page)."""


class ChurnPage(MemberPage):
    rule: str


def _page(found: tuple[list[MemberLine], Cursor | None]) -> dict[str, Any]:
    lines, cursor = found
    return {"items": [MemberOut.model_validate(line, from_attributes=True) for line in lines], "next": _next(cursor)}


@router.get("/churn", responses=_FORBIDDEN)
def churn(conn: ConnDep, viewer: ViewerDep, site: Site = None, limit: Limit = 50, before: Before = None) -> ChurnPage:
    """Members drifting away (the rule is in `rule`), highest spend first, with last visit, usual interval,
    days since, visits and spend."""
    rule = (f"at least {members_churn.MIN_VISITS} visits, and days since the last visit above "
            f"{members_churn.FACTOR:g} x the usual interval and above {members_churn.MIN_DAYS}")
    found = members_churn.churn_list(conn, sites=viewer.scope(site), limit=limit, before=_cursor(before),
                                     now=datetime.now(UTC))
    return ChurnPage(rule=rule, **_page(found))


@router.get("/top", responses=_FORBIDDEN)
def top(conn: ConnDep, viewer: ViewerDep,
        by: Annotated[TopBy, Query(description="points: lifetime points earned by sales; balance: points held "
                                               "now; visits; spend")] = "points",
        site: Site = None, limit: Limit = 50, before: Before = None) -> MemberPage:
    """Top members by points earned, visits, balance or spend, highest first."""
    found = top_members(conn, by=by, sites=viewer.scope(site), limit=limit, before=_cursor(before),
                        now=datetime.now(UTC))
    return MemberPage(**_page(found))


class TierOut(BaseModel):
    """`up`: `target` is the next tier, `gap` the share of its threshold still missing; `down`: the review in
    `review_month` gives `target` unless the member makes up `gap` of their tier's threshold."""

    member_id: str
    home_site: str | None
    tier: str | None
    change: Literal["up", "down"]
    target: str | None
    gap: float
    visits_short: int | None
    spend_short: int | None
    review_month: str | None


class TierPage(BaseModel):
    reach: float
    """An upgrade is listed from this share of a threshold of the next tier."""
    items: list[TierOut]
    next: str | None


@router.get("/tier-close", responses=_FORBIDDEN)
def tier_close(conn: ConnDep, viewer: ViewerDep, site: Site = None,
               change: Annotated[Literal["up", "down"] | None, Query()] = None,
               limit: Limit = 50, before: Before = None) -> TierPage:
    """Members close to a tier change under the running bundle, smallest gap first."""
    found, cursor = close_to_change(conn, sites=viewer.scope(site), change=change, limit=limit,
                                    before=_cursor(before), now=datetime.now(UTC))
    items = [TierOut(member_id=item.member_id, home_site=item.home_site, tier=item.progress.tier,
                     change=item.progress.change or "up", target=item.progress.target,
                     gap=(item.progress.gap or 0) / 1000, visits_short=item.progress.visits_short,
                     spend_short=item.progress.spend_short, review_month=item.progress.review_month)
             for item in found]
    return TierPage(reach=REACH, items=items, next=_next(cursor))


class ShareOut(BaseModel):
    name: str
    members: int
    share: float


class PreferencesOut(BaseModel):
    """Members by favourite genre (most tickets) and favourite day part (most sales), as of `as_of`."""

    as_of: datetime | None
    genres: list[ShareOut]
    day_parts: list[ShareOut]


@router.get("/preferences", responses=_FORBIDDEN)
def preferences(conn: ConnDep, engine: EngineDep, settings: SettingsDep, viewer: ViewerDep,
                background: BackgroundTasks, site: Site = None) -> PreferencesOut:
    """Genre and day-part shares over members, most members first."""
    found = _counts(engine, conn, settings, background, viewer.scope(site))

    def shares(counted: dict[str, int]) -> list[ShareOut]:
        total = sum(counted.values())
        return [ShareOut(name=name, members=count, share=round(count / total, 4))
                for name, count in sorted(counted.items(), key=lambda item: (-item[1], item[0]))]

    return PreferencesOut(as_of=found.as_of, genres=shares(found.genres), day_parts=shares(found.day_parts))


class GroupOut(BaseModel):
    """Per member, in the window before the start and the window from it (money in minor units)."""

    members: int
    visits_before: float
    visits_after: float
    spend_before: float
    spend_after: float


class StratumOut(BaseModel):
    pre_visits: str
    reached: int
    comparable: int
    reached_visits_before: float
    reached_visits_after: float
    comparable_visits_before: float
    comparable_visits_after: float
    reached_spend_before: float
    reached_spend_after: float
    comparable_spend_before: float
    comparable_spend_after: float


class DifferenceOut(BaseModel):
    visits: float
    spend: float


class CampaignEffectOut(BaseModel):
    """The difference in differences, per member reached (docs/members.md states the method)."""

    campaign_id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    days: int
    before_from: date
    after_to: date
    complete: bool
    """The window after the start is over."""
    reached: int
    reached_new: int
    unmatched: int
    reached_group: GroupOut
    comparable: GroupOut
    effect: DifferenceOut
    strata: list[StratumOut]
    computed_at: datetime


@router.get("/campaigns/{campaign_id}/effect",
            responses={**_FORBIDDEN, 404: {"model": ErrorOut, "description": "No published bundle has this campaign."}})
def campaign_effect_of(conn: ConnDep, engine: EngineDep, settings: SettingsDep, viewer: ViewerDep,
                       campaign_id: Annotated[str, Path(pattern=ID_PATTERN)],
                       days: Annotated[int, Query(ge=1, le=365, description="Days in each window")] = 28,
                       site: Site = None) -> CampaignEffectOut:
    """Visits and spend per member reached by the campaign, `days` days before and from its start, against
    comparable members not reached, and the difference in differences."""
    sites = viewer.scope(site)
    found = campaign_effect.find_campaign(conn, campaign_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no published bundle has this campaign")
    campaign, tz = found
    body = campaign_effect.effect(engine, conn, campaign=campaign, tz=tz, days=days, sites=sites,
                                  now=datetime.now(UTC), max_age=settings.member_snapshot_s)
    return CampaignEffectOut.model_validate(body)
