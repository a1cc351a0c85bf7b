"""Members close to a tier change, under the running bundle's tiers and each member's account.

- Upgrade within reach: the next tier up, with at least `REACH` of one of its thresholds (visits or spend)
  reached in the current window (the local month and the `window_months` - 1 before it).
- Downgrade at the next review: the tier the review would give them (its window ending with the month before
  the review, their activity so far, the bundle's demotion rule) is lower than theirs, unless they buy more
  before it.

The gap, what the list is ordered by, is the share of the threshold still missing (of the next tier's, or of
the one to keep), in thousandths: smallest first, the members a small push moves.

Kept on ingest for the members a batch touched (`account_columns`), re-evaluated once a month for the others by
the snapshot refresh (`reevaluate`, windows slide without visits), and recomputed from the account when listed
(`close_to_change`), so what is listed is exact for the running bundle and today."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from cloud.db.member_analytics_tables import member_activity
from cloud.db.schema import members
from cloud.members.accounts import running_bundle, stored_account
from protocol.account import Account, qualified
from protocol.calendar import add_months, local_day, month_key
from protocol.programme import ProgrammeRules
from protocol.rules import RuleBundle

REACH = 0.8
"""An upgrade is within reach from this share of one of the next tier's thresholds."""
REEVALUATE_BATCH = 5000
"""Members re-evaluated per snapshot refresh, at most (the rest at the next ones)."""
MAX_PAGES = 4
"""Pages of candidates one request looks at, at most: a page of the list may be short (its `next` goes on)."""

Change = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class TierProgress:
    """Where a member stands: their tier, and the change within reach (None: none)."""

    tier: str | None
    change: Change | None = None
    target: str | None = None
    gap: int | None = None
    """Thousandths of the threshold still missing."""
    visits_short: int | None = None
    spend_short: int | None = None
    review_month: str | None = None
    """Downgrades: the month whose start runs the review."""


def _window(activity: dict[str, tuple[int, int]], last_month: str, months: int) -> tuple[int, int]:
    first = add_months(last_month, 1 - months)
    chosen = [values for month, values in activity.items() if first <= month <= last_month]
    return sum(values[0] for values in chosen), sum(values[1] for values in chosen)


def _short(level_visits: int | None, level_spend: int | None, visits: int,
           spend: int) -> tuple[int, int | None, int | None]:
    """The gap (thousandths, the smaller over the thresholds set) and what is missing of each."""
    gaps, short_v, short_s = [], None, None
    if level_visits:
        short_v = max(0, level_visits - visits)
        gaps.append(short_v * 1000 // level_visits)
    if level_spend:
        short_s = max(0, level_spend - spend)
        gaps.append(short_s * 1000 // level_spend)
    return min(gaps), short_v, short_s


def _next_review(rules: ProgrammeRules, month: str) -> str:
    assert rules.tiers is not None
    for ahead in range(1, 13):
        candidate = add_months(month, ahead)
        number = int(candidate[5:7])
        if rules.tiers.review == "monthly" or (rules.tiers.review == "quarterly" and number in (1, 4, 7, 10)) or (
                rules.tiers.review == "yearly" and number == int(rules.tiers.review_day[:2])):
            return candidate
    raise AssertionError("a review falls in every 12 months")


def progress(account: Account, rules: ProgrammeRules, *, month: str) -> TierProgress | None:
    """The member's standing in local month `month` (None when the programme has no tiers)."""
    tiers = rules.tiers
    if tiers is None:
        return None
    levels = tiers.levels
    ids = [level.tier_id for level in levels]
    rank = ids.index(account.tier) if account.tier in ids else 0
    current = levels[rank]
    review = _next_review(rules, month)
    ended = add_months(review, -1)
    if rank > 0:
        given = qualified(rules, account.activity, ended)
        assert given is not None
        new = ids.index(given.tier_id)
        if new < rank and tiers.demotion == "one_level":
            new = rank - 1
        if new < rank:
            visits, spend = _window(account.activity, ended, tiers.window_months)
            gap, short_v, short_s = _short(current.min_visits, current.min_spend, visits, spend)
            return TierProgress(current.tier_id, "down", ids[new], gap, short_v, short_s, review)
    if rank + 1 < len(levels):
        upper = levels[rank + 1]
        visits, spend = _window(account.activity, month, tiers.window_months)
        gap, short_v, short_s = _short(upper.min_visits, upper.min_spend, visits, spend)
        if gap <= round((1 - REACH) * 1000):
            return TierProgress(current.tier_id, "up", upper.tier_id, gap, short_v, short_s)
    return TierProgress(current.tier_id)


def _columns(found: TierProgress | None, month: str) -> dict[str, Any]:
    return {"tier": found.tier if found else None, "tier_change": found.change if found else None,
            "tier_target": found.target if found else None, "tier_gap": found.gap if found else None,
            "tier_month": month}


def account_columns(conn: sa.Connection, member_ids: Sequence[str], *, now: datetime,
                    bundle: RuleBundle | None = None) -> dict[str, dict[str, Any]]:
    """The `member_activity` columns that follow each member's stored account (one query): tier standing and
    balance."""
    bundle = bundle or running_bundle(conn)
    month = month_key(local_day(now, bundle.timezone))
    rows = conn.execute(sa.select(members.c.member_id, members.c.programme, members.c.account, members.c.balance)
                        .where(members.c.member_id.in_(sorted(member_ids)))).all()
    values: dict[str, dict[str, Any]] = {}
    for row in rows:
        account = stored_account(row.account) or Account()
        values[row.member_id] = {**_columns(progress(account, bundle.rules_for(row.programme), month=month), month),
                                 "balance": int(row.balance)}
    return values


def reevaluate(conn: sa.Connection, *, now: datetime) -> int:
    """Recompute the tier columns of members last evaluated before this local month (at most
    `REEVALUATE_BATCH`, in member order); returns how many."""
    bundle = running_bundle(conn)
    month = month_key(local_day(now, bundle.timezone))
    stale = sa.or_(member_activity.c.tier_month.is_(None), member_activity.c.tier_month < month)
    query = (sa.select(member_activity.c.member_id).where(stale).order_by(member_activity.c.member_id)
             .limit(REEVALUATE_BATCH))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # ingest sets those it holds itself
    ids = list(conn.execute(query).scalars())
    if not ids:
        return 0
    values = account_columns(conn, ids, now=now, bundle=bundle)
    rows = [{"b_member_id": member_id, **values.get(member_id, {**_columns(None, month), "balance": 0})}
            for member_id in ids]
    conn.execute(member_activity.update().where(member_activity.c.member_id == sa.bindparam("b_member_id"))
                 .values({name: sa.bindparam(name) for name in rows[0] if name != "b_member_id"}), rows)
    return len(ids)


@dataclass(frozen=True, slots=True)
class CloseMember:
    """A member close to a tier change, exact for the running bundle and today."""

    member_id: str
    home_site: str | None
    progress: TierProgress
    cursor: tuple[int, str]


def close_to_change(conn: sa.Connection, *, sites: frozenset[str] | None, change: Change | None, limit: int,
                    before: tuple[int, str] | None, now: datetime) -> tuple[list[CloseMember], tuple[int, str] | None]:
    """Members close to a tier change, smallest gap first (keyset after `before`), and the next page's cursor.

    Candidates come from the kept columns; each is recomputed from its account, and kept only when it still is. A
    page holds fewer than `limit` when many candidates no longer are (after a new bundle): the cursor goes on."""
    bundle = running_bundle(conn)
    month = month_key(local_day(now, bundle.timezone))
    table = member_activity
    query = (sa.select(table.c.member_id, table.c.home_site, table.c.tier_gap, members.c.programme, members.c.account)
             .join(members, members.c.member_id == table.c.member_id))
    if change is not None:
        query = query.where(table.c.tier_change == change)
    if sites is not None:
        query = query.where(table.c.home_site.in_(sorted(sites)))
    found: list[CloseMember] = []
    cursor = before
    page = limit * 2 + 10
    for _ in range(MAX_PAGES):
        # A gap is set with a change. `tier_gap >=` lets PostgreSQL use the partial indexes (it implies NOT NULL, a
        # row comparison alone does not) and estimate the rows from its histogram (with NOT NULL as well, it would
        # count the same rows out twice and sort instead of walking the index).
        paged = query.where(table.c.tier_gap.is_not(None)) if cursor is None else query.where(
            table.c.tier_gap >= cursor[0], sa.tuple_(table.c.tier_gap, table.c.member_id) > sa.tuple_(*cursor))
        rows = conn.execute(paged.order_by(table.c.tier_gap, table.c.member_id).limit(page)).all()
        for row in rows:
            cursor = (int(row.tier_gap), row.member_id)
            account = stored_account(row.account) or Account()
            fresh = progress(account, bundle.rules_for(row.programme), month=month)
            if fresh is not None and fresh.change is not None and (change is None or fresh.change == change):
                found.append(CloseMember(row.member_id, row.home_site, fresh, cursor))
                if len(found) == limit:
                    break
        if len(found) == limit:
            return found, found[-1].cursor
        if len(rows) < page:
            return found, None
    # Candidates whose kept standing is stale (a new bundle's tiers): a short page, the next one goes on.
    return found, cursor
