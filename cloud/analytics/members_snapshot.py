"""The member counts the dashboard shows (summary, RFM segments, preferences), from a snapshot per home site.

Counting a million members by segment is a scan, and recency changes with time alone, so the counts are not
kept on ingest: a refresh computes them with a few GROUP BY queries over `member_activity` and `member_visits`
(a few seconds for a million members in PostgreSQL) and stores one small row per home site and one for the whole
chain; a request reads the chain's row, or sums those of its viewer's sites. Recency, "active", "new this month"
are as of the refresh.

The refresh runs on demand: a read finding the snapshot older than `member_snapshot_s` answers from it and starts
a refresh after its answer (before the first snapshot, the read computes one). A refresh is claimed in the
database first (`member_snapshot_state.claimed_until`), so however many hub processes serve reads one refreshes
at a time; a claim left by a process that died lapses after `CLAIM`. Each refresh also copies balances changed
without a sale (`members_top.sync_balances`) and re-evaluates a batch of members' tier standing once a month
(`members_tiers.reevaluate`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.analytics.members_lists import today
from cloud.analytics.members_rfm import score_columns
from cloud.analytics.members_tiers import reevaluate
from cloud.analytics.members_top import sync_balances
from cloud.db.dialect import insert_or_ignore
from cloud.db.member_analytics_tables import member_activity, member_snapshot_state, member_snapshots, member_visits

log = logging.getLogger(__name__)
CLAIM = timedelta(minutes=10)
"""How long a refresh is one process's to finish before another may take it over."""
TRY_EVERY = 10.0
"""Seconds between one process's attempts to claim a due refresh."""
ACTIVE_DAYS = (30, 90)
"""Active: a visit in the last 30 (90) local days, today included."""
CHAIN = "*"
"""The row adding up every home site's (no site id is "*"): what a chain-wide read takes alone."""
_ADDED = ("members", "visits", "spend", "active_30d", "active_90d", "new_this_month", "visits_30d", "spend_30d")


@dataclass
class MemberCounts:
    """Member counts over some home sites, as of the snapshot (`as_of`)."""

    as_of: datetime | None
    totals: Counter[str] = field(default_factory=Counter)
    rfm: dict[tuple[int, int, int], list[int]] = field(default_factory=dict)
    """(R, F, M) -> [members, visits, spend]."""
    genres: Counter[str] = field(default_factory=Counter)
    """Members per favourite genre."""
    day_parts: Counter[str] = field(default_factory=Counter)
    """Members per favourite day part."""

    def add(self, body: dict[str, Any]) -> None:
        """Add one site's snapshot body."""
        self.totals.update({name: int(body.get(name, 0)) for name in _ADDED})
        for key, values in body.get("rfm", {}).items():
            r, f, m = (int(part) for part in key.split("."))
            cell = self.rfm.setdefault((r, f, m), [0, 0, 0])
            for index, value in enumerate(values[:3]):
                cell[index] += int(value)
        self.genres.update({str(key): int(value) for key, value in body.get("genres", {}).items()})
        self.day_parts.update({str(key): int(value) for key, value in body.get("day_parts", {}).items()})


def compute(conn: sa.Connection, *, now: datetime) -> dict[str, dict[str, Any]]:
    """Every home site's snapshot body, counted now."""
    on = today(conn, now)
    a = member_activity.c
    home = sa.func.coalesce(a.home_site, "").label("home")
    r, f, m = score_columns(member_activity, on)

    def since(days: int) -> date:
        return on - timedelta(days=days - 1)

    def flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    bodies: dict[str, dict[str, Any]] = {}

    def body(site: str) -> dict[str, Any]:
        return bodies.setdefault(site, {"rfm": {}, "genres": {}, "day_parts": {}})

    cells = sa.select(home, r, f, m, sa.func.count(), sa.func.sum(a.visits), sa.func.sum(a.spend),
                      flag(a.last_visit >= since(ACTIVE_DAYS[0])), flag(a.last_visit >= since(ACTIVE_DAYS[1])),
                      flag(a.first_visit >= on.replace(day=1))).where(a.visits > 0).group_by(home, r, f, m)
    for site, *scores, count, visits, spend, active30, active90, new in conn.execute(cells):
        target = body(site)
        target["rfm"][".".join(str(score) for score in scores)] = [int(count), int(visits or 0), int(spend or 0)]
        for name, value in (("members", count), ("visits", visits), ("spend", spend), ("active_30d", active30),
                            ("active_90d", active90), ("new_this_month", new)):
            target[name] = target.get(name, 0) + int(value or 0)
    v = member_visits.c
    recent = (sa.select(home, sa.func.count(), sa.func.sum(v.spend))
              .select_from(member_visits.join(member_activity, a.member_id == v.member_id))
              .where(v.day >= since(ACTIVE_DAYS[0])).group_by(home))
    for site, visits, spend in conn.execute(recent):
        body(site).update(visits_30d=int(visits), spend_30d=int(spend or 0))
    for column, name in ((a.favourite_genre, "genres"), (a.favourite_day_part, "day_parts")):
        for site, key, count in conn.execute(sa.select(home, column, sa.func.count())
                                             .where(column.is_not(None)).group_by(home, column)):
            body(site)[name][key] = int(count)
    if bodies:
        bodies[CHAIN] = _total(bodies.values())
    return bodies


def _total(bodies: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One body adding up `bodies`."""
    total = MemberCounts(None)
    for body in bodies:
        total.add(body)
    return {**{name: total.totals[name] for name in _ADDED},
            "rfm": {".".join(str(score) for score in key): values for key, values in sorted(total.rfm.items())},
            "genres": dict(total.genres), "day_parts": dict(total.day_parts)}


def _store(conn: sa.Connection, bodies: dict[str, dict[str, Any]], now: datetime) -> None:
    conn.execute(member_snapshots.delete())
    if bodies:
        conn.execute(member_snapshots.insert(), [{"site_id": site, "as_of": now, "body": body}
                                                 for site, body in sorted(bodies.items())])
    conn.execute(member_snapshot_state.update().where(member_snapshot_state.c.id == 1)
                 .values(refreshed_at=now, claimed_until=None))


def _claim(engine: sa.Engine, now: datetime, max_age: float | None) -> bool:
    state = member_snapshot_state.c
    with engine.begin() as conn:
        insert_or_ignore(conn, member_snapshot_state, {"id": 1})
        query = member_snapshot_state.update().where(
            state.id == 1, sa.or_(state.claimed_until.is_(None), state.claimed_until < now))
        if max_age is not None:  # fresh enough by now (another process refreshed it): nothing to do
            query = query.where(sa.or_(state.refreshed_at.is_(None),
                                       state.refreshed_at < now - timedelta(seconds=max_age)))
        return bool(conn.execute(query.values(claimed_until=now + CLAIM)).rowcount)


def refresh(engine: sa.Engine, *, now: datetime, max_age: float | None = None) -> bool:
    """Recompute and store every site's snapshot, unless another process holds the refresh or (with `max_age`
    seconds) it is fresh; True when this call refreshed it."""
    if not _claim(engine, now, max_age):
        return False
    try:
        with engine.begin() as conn:
            sync_balances(conn)
            reevaluate(conn, now=now)
        with engine.begin() as conn:
            _store(conn, compute(conn, now=now), now)
    except Exception:
        with engine.begin() as conn:  # give the claim back: the next read tries again
            conn.execute(member_snapshot_state.update().where(member_snapshot_state.c.id == 1)
                         .values(claimed_until=None))
        raise
    return True


def refresh_quietly(engine: sa.Engine, *, now: datetime, max_age: float) -> None:
    """`refresh` after a request's answer: a failure is logged (the next read tries again), never raised."""
    try:
        refresh(engine, now=now, max_age=max_age)
    except Exception:  # the top of a background task: nobody else would see it
        log.warning("refreshing the member analytics snapshot failed; the next read tries again", exc_info=True)


def counts(engine: sa.Engine, conn: sa.Connection, *, sites: frozenset[str] | None, now: datetime,
           max_age: float) -> tuple[MemberCounts, bool]:
    """The counts over the home sites `sites` (None: all), and whether the snapshot is due a refresh. Before the
    first snapshot this computes one (stored when no other process is at it)."""
    refreshed = conn.execute(sa.select(member_snapshot_state.c.refreshed_at)
                             .where(member_snapshot_state.c.id == 1)).scalar()
    if refreshed is None:
        if not refresh(engine, now=now):
            bodies = compute(conn, now=now)
            result = MemberCounts(now)
            for site, body in bodies.items():
                if site in ({CHAIN} if sites is None else sites):
                    result.add(body)
            return result, False
        conn.rollback()  # a read transaction begun before the refresh (SQLite) would not see its rows
        refreshed = now
    query = sa.select(member_snapshots.c.body).where(
        member_snapshots.c.site_id.in_(sorted(sites) if sites is not None else [CHAIN]))
    result = MemberCounts(refreshed)
    for (body,) in conn.execute(query):
        result.add(body)
    return result, refreshed < now - timedelta(seconds=max_age) and _may_try(max_age)


_tried = [0.0]
_tried_lock = threading.Lock()


def _may_try(max_age: float) -> bool:
    """At most one refresh attempt per process per `TRY_EVERY` (or `max_age`, when shorter): while one process
    refreshes, the reads of the others would each try to claim it."""
    with _tried_lock:
        now = time.monotonic()
        if now - _tried[0] < min(TRY_EVERY, max_age):
            return False
        _tried[0] = now
        return True
