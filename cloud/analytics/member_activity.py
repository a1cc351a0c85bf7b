"""Each member's activity, kept on ingest in the batch's transaction (`member_activity`, `member_visits`,
`member_campaigns`), after the ledger has folded the batch's points.

A visit is a local day (the site's time zone) with at least one sale with the member's card; two sites on one
day make one visit, counted at the site stored first. A sale counts at the time the ledger folds it (its own,
unless its box's clock could not be trusted: then when the hub received it), on the site's local day as the
box-office rollups count it (`cloud.analytics.localtime`).

Guarantees: each stored event counts once (ingest hands over newly stored events only, so a redelivered batch
adds nothing); the activity does not depend on the order sales arrive in (but for the site a day with sales
at two sites counts at): visit days are rows of their own (inserted once, whoever inserts first), and a visit
older than the member's last one makes the usual interval recomputed from every visit day.

A few statements per batch: one lookup of the cards, one insert of the visit days, one row lock of the members
touched (in member order), one update of their rows, one read of their accounts for their tier standing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloud.analytics.localtime import sale_time, site_zone
from cloud.analytics.members_churn import churn_day, next_interval, usual_interval
from cloud.analytics.members_sales import SaleFacts, counted, sale_facts
from cloud.analytics.members_tiers import account_columns
from cloud.db.dialect import upsert_add
from cloud.db.member_analytics_tables import member_activity, member_campaigns, member_visits
from cloud.db.schema import member_cards
from cloud.members.accounts import running_bundle
from protocol.events import Event, SaleRecorded


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def add_activity(conn: sa.Connection, *, stored: Sequence[tuple[Event, object]], site_id: str,
                 received_at: datetime) -> None:
    """Add the batch's sales with a member's card to their activity."""
    sales = [(event, payload) for event, payload in stored if isinstance(payload, SaleRecorded) and counted(payload)]
    if not sales:
        return
    tokens = sorted({payload.card_token for _, payload in sales if payload.card_token is not None})
    holders = dict(conn.execute(sa.select(member_cards.c.card_token, member_cards.c.member_id)
                                .where(member_cards.c.card_token.in_(tokens))).all())
    if not holders:
        return
    bundle = running_bundle(conn)
    tz = site_zone(conn, site_id=site_id)
    facts = [sale_facts(payload, member_id=holders[payload.card_token], at=sale_time(event, received_at), tz=tz,
                        genres_of=bundle.genres_of)
             for event, payload in sales if payload.card_token in holders]
    if not facts:
        return
    new_days = _add_visits(conn, facts, site_id)
    _update_members(conn, facts, new_days, site_id, received_at)
    _add_campaigns(conn, facts)


def _add_visits(conn: sa.Connection, facts: Sequence[SaleFacts], site_id: str) -> dict[str, list[date]]:
    """Add the sales to their members' visit days; the days that are new visits, per member."""
    days: dict[tuple[str, date], list[int]] = {}
    for fact in facts:
        totals = days.setdefault((fact.member_id, fact.day), [0, 0])
        totals[0] += 1
        totals[1] += fact.spend
    rows = [{"member_id": member_id, "day": day, "site_id": site_id, "sales": sales, "spend": spend}
            for (member_id, day), (sales, spend) in sorted(days.items())]
    stmt = _insert(conn, member_visits).values(rows).on_conflict_do_nothing()
    inserted = {(row.member_id, row.day) for row in conn.execute(
        stmt.returning(member_visits.c.member_id, member_visits.c.day))}
    # Days another batch made a visit first: this batch's sales and spend are added to them.
    upsert_add(conn, member_visits, [row for row in rows if (row["member_id"], row["day"]) not in inserted],
               key=("member_id", "day"), add=("sales", "spend"))
    new: dict[str, list[date]] = {}
    for member_id, day in sorted(inserted):
        new.setdefault(member_id, []).append(day)
    return new


def _update_members(conn: sa.Connection, facts: Sequence[SaleFacts], new_days: Mapping[str, list[date]],
                    site_id: str, at: datetime) -> None:
    touched = sorted({fact.member_id for fact in facts})
    conn.execute(_insert(conn, member_activity).values([{"member_id": member_id} for member_id in touched])
                 .on_conflict_do_nothing())
    # Row locks in member order, as the ledger takes the members' own: two hub processes cannot deadlock.
    rows = {row.member_id: row for row in conn.execute(
        sa.select(member_activity).where(member_activity.c.member_id.in_(touched))
        .order_by(member_activity.c.member_id).with_for_update())}
    late = [member_id for member_id, days in new_days.items()
            if rows[member_id].last_visit is not None and min(days) < rows[member_id].last_visit]
    history: dict[str, list[date]] = {}
    if late:
        for member_id, day in conn.execute(sa.select(member_visits.c.member_id, member_visits.c.day)
                                           .where(member_visits.c.member_id.in_(sorted(late)))):
            history.setdefault(member_id, []).append(day)
    by_member: dict[str, list[SaleFacts]] = {}
    for fact in facts:
        by_member.setdefault(fact.member_id, []).append(fact)
    tiers = account_columns(conn, touched, now=at)
    updates = [{"b_member_id": member_id, **_values(rows[member_id], by_member[member_id],
                                                      new_days.get(member_id, []), history.get(member_id), site_id),
                **tiers.get(member_id, {}), "updated_at": at} for member_id in touched]
    columns = sorted({name for update in updates for name in update} - {"b_member_id"})
    for update in updates:  # one executemany: every row sets the same columns
        for name in columns:
            update.setdefault(name, getattr(rows[update["b_member_id"]], name))
    conn.execute(member_activity.update().where(member_activity.c.member_id == sa.bindparam("b_member_id"))
                 .values({name: sa.bindparam(name) for name in columns}), updates)


def _favourite(counts: Mapping[str, int]) -> str | None:
    """The most counted key (a tie: the first in name order)."""
    return min(counts, key=lambda key: (-counts[key], key)) if counts else None


def _values(row: Any, facts: Sequence[SaleFacts], new_days: Sequence[date], history: Sequence[date] | None,
            site_id: str) -> dict[str, Any]:
    """The member's activity columns with `facts` added (`new_days`: their new visit days; `history`: every visit
    day, read when one arrived out of order)."""
    genres = Counter({str(key): int(value) for key, value in (row.genres or {}).items()})
    parts = Counter({str(key): int(value) for key, value in (row.day_parts or {}).items()})
    for fact in facts:
        genres.update(fact.genres)
        parts[fact.day_part] += 1
    site_visits = {str(key): int(value) for key, value in (row.site_visits or {}).items()}
    if new_days:
        site_visits[site_id] = site_visits.get(site_id, 0) + len(new_days)
    visits = int(row.visits) + len(new_days)
    first, last, interval = row.first_visit, row.last_visit, row.interval_days
    if history is not None:
        interval = usual_interval(history)
    else:
        for day in sorted(new_days):
            if last is not None:
                interval = next_interval(interval, (day - last).days)
            last = day
    if new_days:
        first = min([first, *new_days]) if first is not None else min(new_days)
        last = max([last, *new_days]) if last is not None else max(new_days)
    tickets = sum(fact.tickets for fact in facts)
    ticket_spend = sum(fact.ticket_spend for fact in facts)
    concession_spend = sum(fact.concession_spend for fact in facts)
    return {
        "home_site": min(site_visits, key=lambda site: (-site_visits[site], site)) if site_visits else row.home_site,
        "first_visit": first, "last_visit": last, "visits": visits, "sales": int(row.sales) + len(facts),
        "tickets": int(row.tickets) + tickets, "ticket_spend": int(row.ticket_spend) + ticket_spend,
        "concession_spend": int(row.concession_spend) + concession_spend,
        "spend": int(row.spend) + ticket_spend + concession_spend,
        "points_earned": int(row.points_earned) + sum(fact.points for fact in facts),
        "interval_days": interval, "churn_at": churn_day(last_visit=last, interval=interval, visits=visits),
        "site_visits": site_visits, "genres": dict(sorted(genres.items())), "day_parts": dict(sorted(parts.items())),
        "favourite_genre": _favourite(genres), "favourite_day_part": _favourite(parts),
    }


def _add_campaigns(conn: sa.Connection, facts: Sequence[SaleFacts]) -> None:
    """Record the members each campaign paid, with the first time it did and the points."""
    reached: dict[tuple[str, str], list[Any]] = {}
    for fact in facts:
        for campaign_id, points in fact.campaigns:
            seen = reached.setdefault((campaign_id, fact.member_id), [fact.at, 0])
            seen[0] = min(seen[0], fact.at)
            seen[1] += points
    if not reached:
        return
    stmt = _insert(conn, member_campaigns)
    table = member_campaigns.c
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["campaign_id", "member_id"],
        set_={"points": table.points + stmt.excluded.points,
              "first_at": sa.case((stmt.excluded.first_at < table.first_at, stmt.excluded.first_at),
                                  else_=table.first_at)}),
        [{"campaign_id": campaign_id, "member_id": member_id, "first_at": first, "points": points}
         for (campaign_id, member_id), (first, points) in sorted(reached.items())])


def merge_activity(conn: sa.Connection, *, source: str, into: str, at: datetime) -> None:
    """Move `source`'s activity into `into`'s (an anonymous account merged into a member, before its row goes):
    visit days, counts, campaigns; the visit-derived values recomputed from the merged visit days."""
    rows = {row.member_id: row for row in conn.execute(
        sa.select(member_activity).where(member_activity.c.member_id.in_(sorted({source, into})))
        .order_by(member_activity.c.member_id).with_for_update())}
    if source not in rows or source == into:
        return
    v = member_visits.c
    moved = [{"member_id": into, "day": row.day, "site_id": row.site_id, "sales": row.sales, "spend": row.spend}
             for row in conn.execute(sa.select(member_visits).where(v.member_id == source).order_by(v.day))]
    upsert_add(conn, member_visits, moved, key=("member_id", "day"), add=("sales", "spend"))
    conn.execute(member_visits.delete().where(v.member_id == source))
    days = conn.execute(sa.select(v.day, v.site_id).where(v.member_id == into)).all()
    old, other = rows[source], rows.get(into)
    values: dict[str, Any] = {}
    for name in ("sales", "tickets", "ticket_spend", "concession_spend", "spend", "points_earned"):
        values[name] = int(getattr(old, name)) + (int(getattr(other, name)) if other is not None else 0)
    for name in ("genres", "day_parts"):
        merged = Counter({str(key): int(value) for key, value in (getattr(old, name) or {}).items()})
        merged.update({str(key): int(value) for key, value in
                       ((getattr(other, name) or {}) if other is not None else {}).items()})
        values[name] = dict(sorted(merged.items()))
    site_visits = dict(Counter(str(site) for _, site in days))
    visit_days = [day for day, _ in days]
    interval = usual_interval(visit_days)
    last = max(visit_days, default=None)
    values.update(
        home_site=min(site_visits, key=lambda site: (-site_visits[site], site)) if site_visits else None,
        first_visit=min(visit_days, default=None), last_visit=last, visits=len(visit_days), interval_days=interval,
        churn_at=churn_day(last_visit=last, interval=interval, visits=len(visit_days)), site_visits=site_visits,
        favourite_genre=_favourite(values["genres"]), favourite_day_part=_favourite(values["day_parts"]),
        updated_at=at, **account_columns(conn, [into], now=at).get(into, {}))
    if other is None:
        conn.execute(member_activity.insert().values(member_id=into, **values))
    else:
        conn.execute(member_activity.update().where(member_activity.c.member_id == into).values(**values))
    conn.execute(member_activity.delete().where(member_activity.c.member_id == source))
    c = member_campaigns.c
    for row in conn.execute(sa.select(member_campaigns).where(c.member_id == source)).all():
        kept = conn.execute(sa.select(c.first_at).where(c.campaign_id == row.campaign_id, c.member_id == into)).first()
        if kept is None:
            conn.execute(member_campaigns.insert().values(campaign_id=row.campaign_id, member_id=into,
                                                          first_at=row.first_at, points=row.points))
        else:
            conn.execute(member_campaigns.update().where(c.campaign_id == row.campaign_id, c.member_id == into)
                         .values(first_at=min(kept.first_at, row.first_at), points=c.points + row.points))
    conn.execute(member_campaigns.delete().where(c.member_id == source))
