"""Recomputing every member's activity from the stored sales: for sales stored before member analytics existed,
or after the visit rules changed.

Run with ingest stopped (after an upgrade, before the hub starts): a batch stored meanwhile would be counted
twice. The tables are emptied, then the stored sales are read in pages per device, in seq order, and added as
ingest adds them (`add_activity`), each run of events one batch stored with its arrival time. Members' cards
are today's: a card since moved to another member counts for that member."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from cloud.analytics.member_activity import add_activity
from cloud.db.member_analytics_tables import (
    campaign_effects,
    member_activity,
    member_campaigns,
    member_snapshot_state,
    member_snapshots,
    member_visits,
)
from cloud.db.schema import events
from cloud.ingest.store import check_payload
from protocol.events import Event, SaleRecorded

PAGE = 2000
"""Events read (and added in one transaction) at a time."""


def rebuild_members(engine: sa.Engine, *, progress: Callable[[int], None] | None = None) -> int:
    """Empty the member analytics tables and add every stored sale again; returns how many sales were read."""
    with engine.begin() as conn:
        for table in (member_activity, member_visits, member_campaigns, campaign_effects, member_snapshots,
                      member_snapshot_state):
            conn.execute(table.delete())
    read = 0
    after: tuple[str, int] = ("", 0)
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                sa.select(events.c.device_id, events.c.seq, events.c.site_id, events.c.received_at, events.c.body)
                .where(events.c.type == SaleRecorded.event_type,
                       sa.tuple_(events.c.device_id, events.c.seq) > sa.tuple_(*after))
                .order_by(events.c.device_id, events.c.seq).limit(PAGE)).all()
            run: list[tuple[Event, object]] = []
            key: tuple[str, datetime] | None = None
            for row in rows:
                if "payload_refused" in row.body:  # kept without its payload: ingest counted nothing
                    continue
                event = Event.model_validate(row.body)
                if key is not None and key != (row.site_id, row.received_at):
                    add_activity(conn, stored=run, site_id=key[0], received_at=key[1])
                    run = []
                key = (row.site_id, row.received_at)
                run.append((event, check_payload(event, site_id=row.site_id)))
            if run and key is not None:
                add_activity(conn, stored=run, site_id=key[0], received_at=key[1])
        read += len(rows)
        if progress is not None:
            progress(read)
        if len(rows) < PAGE:
            return read
        after = (rows[-1].device_id, int(rows[-1].seq))
