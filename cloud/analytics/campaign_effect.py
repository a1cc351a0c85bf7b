"""What a campaign brought: the visits and spend of the members it reached, before and after its start, against a
comparable group of members it did not reach, as a difference in differences.

- Reached: members the campaign paid points to (an `earned_by` part `campaign:<id>`), at any time.
- Windows: the N local days before the campaign's start day (the chain's time zone) and the N days from it.
- Comparable: members known before the start (a first visit before it) who were not reached, matched to the
  reached on their visits in the window before: strata of 0, 1, 2, 3 and 4 or more visits. Reached members
  whose first visit is on or after the start have no before and are counted apart (`reached_new`), as are
  reached members in a stratum without any comparable member (`unmatched`).
- Effect, per member reached: the mean over strata, weighted by the reached in each, of (after - before of the
  reached) - (after - before of the comparable members), for visits and for spend. The comparable group's
  means shown are weighted the same way, so they read as "the same members, had they not been reached".

The computation reads every member's visit days in both windows (`member_visits`, by day): seconds for a large
chain, so the result is kept (`campaign_effects`) and recomputed at most every `member_snapshot_s`."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.db.dialect import insert_or_ignore
from cloud.db.member_analytics_tables import campaign_effects, member_activity, member_campaigns, member_visits
from cloud.db.scoping import site_filter
from cloud.members.accounts import rulebook
from protocol.calendar import local_day
from protocol.programme import Campaign

STRATA = ("0", "1", "2", "3", "4+")
"""Visits in the window before, what reached and comparable members are matched on."""
_MEANS = (("visits_before", "vb"), ("visits_after", "va"), ("spend_before", "sb"), ("spend_after", "sa"))


def find_campaign(conn: sa.Connection, campaign_id: str) -> tuple[Campaign, str] | None:
    """The campaign as the newest bundle that has it defines it, and that bundle's time zone."""
    for span in reversed(rulebook(conn).spans):
        for campaign in span.bundle.campaigns:
            if campaign.campaign_id == campaign_id:
                return campaign, span.bundle.timezone
    return None


def _windows(start: date, days: int) -> sa.Subquery:
    """Per member with a visit in either window: visits and spend before the start day and from it (one pass)."""
    v = member_visits.c
    before = v.day < start

    def total(condition: sa.ColumnElement[bool], value: Any) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((condition, value), else_=0))

    return (sa.select(v.member_id, total(before, 1).label("vb"), total(~before, 1).label("va"),
                      total(before, v.spend).label("sb"), total(~before, v.spend).label("sa"))
            .where(v.day >= start - timedelta(days=days), v.day < start + timedelta(days=days))
            .group_by(v.member_id).subquery())


def _mean(total: int, count: int) -> float:
    return round(total / count, 4) if count else 0.0


def compute(conn: sa.Connection, *, campaign: Campaign, tz: str, days: int, sites: frozenset[str] | None,
            now: datetime) -> dict[str, Any]:
    """The campaign's effect over `days`-day windows among members whose home site is in `sites` (None: all)."""
    start = local_day(campaign.starts_at, tz)
    windows = _windows(start, days)
    a = member_activity.c
    reach = (sa.select(member_campaigns.c.member_id).where(member_campaigns.c.campaign_id == campaign.campaign_id)
             .subquery())
    treated = reach.c.member_id.is_not(None)
    known = sa.and_(a.first_visit < start, site_filter(a.home_site, sites))
    stratum = sa.case(*[(windows.c.vb == n, n) for n in range(4)], else_=4)
    query = (sa.select(treated.label("treated"), stratum.label("stratum"), sa.func.count(),
                       *(sa.func.sum(column) for column in (windows.c.vb, windows.c.va, windows.c.sb, windows.c.sa)))
             .select_from(windows.join(member_activity, a.member_id == windows.c.member_id)
                          .outerjoin(reach, reach.c.member_id == a.member_id))
             .where(known).group_by(treated, stratum))
    cells: dict[tuple[bool, int], list[int]] = {}
    for is_treated, level, count, *totals in conn.execute(query):
        cells[(bool(is_treated), int(level))] = [int(count), *(int(value or 0) for value in totals)]
    # Members known before the start without a visit in either window: in the stratum of none, with zeros.
    everyone = (sa.select(treated, sa.func.count()).select_from(member_activity.outerjoin(
        reach, reach.c.member_id == a.member_id)).where(known).group_by(treated))
    for is_treated, count in conn.execute(everyone):
        seen = sum(cell[0] for (flag, _), cell in cells.items() if flag == bool(is_treated))
        cell = cells.setdefault((bool(is_treated), 0), [0, 0, 0, 0, 0])
        cell[0] += int(count) - seen
    reached = int(conn.execute(sa.select(sa.func.count()).select_from(
        member_campaigns.join(member_activity, a.member_id == member_campaigns.c.member_id)).where(
        member_campaigns.c.campaign_id == campaign.campaign_id, site_filter(a.home_site, sites))).scalar() or 0)
    empty = [0, 0, 0, 0, 0]
    strata, weight = [], 0
    sums = {"t_vb": 0.0, "t_va": 0.0, "t_sb": 0.0, "t_sa": 0.0, "c_vb": 0.0, "c_va": 0.0, "c_sb": 0.0, "c_sa": 0.0}
    unmatched = 0
    for level, name in enumerate(STRATA):
        t, c = cells.get((True, level), empty), cells.get((False, level), empty)
        strata.append({"pre_visits": name, "reached": t[0], "comparable": c[0],
                       "reached_visits_before": _mean(t[1], t[0]), "reached_visits_after": _mean(t[2], t[0]),
                       "comparable_visits_before": _mean(c[1], c[0]), "comparable_visits_after": _mean(c[2], c[0]),
                       "reached_spend_before": _mean(t[3], t[0]), "reached_spend_after": _mean(t[4], t[0]),
                       "comparable_spend_before": _mean(c[3], c[0]), "comparable_spend_after": _mean(c[4], c[0])})
        if not t[0]:
            continue
        if not c[0]:
            unmatched += t[0]
            continue
        weight += t[0]
        for prefix, cell, scale in (("t", t, 1.0), ("c", c, t[0] / c[0])):
            for index, key in ((1, "vb"), (2, "va"), (3, "sb"), (4, "sa")):
                sums[f"{prefix}_{key}"] += cell[index] * scale

    def per(key: str) -> float:
        return sums[key] / weight if weight else 0.0

    groups = {
        "reached_group": {"members": weight, **{name: round(per(f"t_{key}"), 4) for name, key in _MEANS}},
        "comparable": {"members": sum(cells.get((False, level), empty)[0] for level in range(len(STRATA))),
                       **{name: round(per(f"c_{key}"), 4) for name, key in _MEANS}},
    }
    effect = {"visits": round((per("t_va") - per("t_vb")) - (per("c_va") - per("c_vb")), 4),
              "spend": round((per("t_sa") - per("t_sb")) - (per("c_sa") - per("c_sb")), 4)}
    matched = sum(cells.get((True, level), empty)[0] for level in range(len(STRATA)))
    return {"campaign_id": campaign.campaign_id, "name": campaign.name, "starts_at": campaign.starts_at.isoformat(),
            "ends_at": campaign.ends_at.isoformat(), "days": days,
            "before_from": (start - timedelta(days=days)).isoformat(), "after_to": (start + timedelta(days=days - 1))
            .isoformat(), "complete": local_day(now, tz) >= start + timedelta(days=days),
            "reached": reached, "reached_new": reached - matched, "unmatched": unmatched, **groups, "effect": effect,
            "strata": strata, "computed_at": now.isoformat()}


def scope_key(sites: frozenset[str] | None) -> str:
    """The cache key of a viewer's sites: "*" for every site, else a hash of their ids."""
    return "*" if sites is None else hashlib.sha256(",".join(sorted(sites)).encode()).hexdigest()


def effect(engine: sa.Engine, conn: sa.Connection, *, campaign: Campaign, tz: str, days: int,
           sites: frozenset[str] | None, now: datetime, max_age: float) -> dict[str, Any]:
    """The campaign's effect as kept when computed within `max_age` seconds, else computed now (on `conn`) and
    kept (through `engine`)."""
    key = {"campaign_id": campaign.campaign_id, "days": days, "scope": scope_key(sites)}
    where = [campaign_effects.c[name] == value for name, value in key.items()]
    kept = conn.execute(sa.select(campaign_effects.c.body, campaign_effects.c.computed_at).where(*where)).first()
    if kept is not None and kept.computed_at >= now - timedelta(seconds=max_age):
        body: dict[str, Any] = kept.body
        return body
    body = compute(conn, campaign=campaign, tz=tz, days=days, sites=sites, now=now)
    with engine.begin() as write:
        write.execute(campaign_effects.delete().where(*where))
        insert_or_ignore(write, campaign_effects, {**key, "computed_at": now, "body": body})  # or another's: as good
    return body
