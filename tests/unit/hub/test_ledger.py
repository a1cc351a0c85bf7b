"""The points ledger at the hub: earned and redeemed in event time, overdrafts when two sites spent the
same points, the balance a box computes from the directory equal to the hub's."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.db.engine import make_engine, migrate
from cloud.db.schema import member_cards, members, overdrafts
from cloud.ingest.store import ingest_batch
from cloud.members.directory import entry_of
from cloud.members.overdrafts import list_overdrafts
from protocol.directory import DirectoryEntry, balance_at_box
from tests.unit.hub.factories import T0, Chain, sale_payload

TOKEN = "cd" * 16


def sale(site: str, sale_id: str, *, earned: int = 0, redeemed: int = 0) -> dict[str, Any]:
    return sale_payload(site, sale_id=sale_id) | {"card_token": TOKEN, "loyalty": {
        "status": "earned", "points_earned": earned, "points_redeemed": redeemed, "amount_redeemed": redeemed // 10,
        "hold_id": "h" + "0" * 16 if redeemed else None}}


def member_row(conn: sa.Connection) -> Any:
    member_id = conn.execute(sa.select(member_cards.c.member_id).where(member_cards.c.card_token == TOKEN)).scalar_one()
    return conn.execute(sa.select(members).where(members.c.member_id == member_id)).one()


def test_two_sites_spending_the_same_points_leave_one_overdraft_record(engine: sa.Engine) -> None:
    home, away, third = Chain("riverside", "riverside-box1"), Chain("harbour", "harbour-box1"), Chain("dock", "dock-1")
    for chain in (home, away, third):
        chain.register(engine)
    home.add(sale("riverside", "s-1", earned=1000))
    home.add(sale("riverside", "s-2", redeemed=800), occurred_at=T0 + timedelta(hours=2))
    away.add(sale("harbour", "s-9", redeemed=700), occurred_at=T0 + timedelta(hours=3))
    with engine.begin() as conn:
        ingest_batch(conn, batch=home.batch(1, 2), site_id="riverside", received_at=T0 + timedelta(hours=4))
        assert member_row(conn).balance == 200 and list_overdrafts(conn, open_only=True, limit=10) == []
    with engine.begin() as conn:
        ingest_batch(conn, batch=away.batch(1, 1), site_id="harbour", received_at=T0 + timedelta(hours=5))
        row = member_row(conn)
        [overdraft] = list_overdrafts(conn, open_only=True, limit=10)
    assert (row.balance, row.redeemed, row.seen) == (-500, 1500, {"riverside-box1": 2, "harbour-box1": 1})
    assert (overdraft.member_id, overdraft.amount, overdraft.balance, overdraft.sites) == (
        row.member_id, 500, -500, ["harbour", "riverside"])
    assert [(event["site_id"], event["seq"], event["points"]) for event in overdraft.events] == [
        ("riverside", 2, 800), ("harbour", 1, 700)]

    third.add(sale("dock", "s-3", earned=600), occurred_at=T0 + timedelta(hours=6))
    with engine.begin() as conn:
        ingest_batch(conn, batch=third.batch(1, 1), site_id="dock", received_at=T0 + timedelta(hours=7))
        settled = conn.execute(sa.select(overdrafts)).one()
    assert settled.settled_at is not None and settled.balance == 100 and settled.amount == 500


def test_a_reversed_redemption_gives_the_points_back(engine: sa.Engine) -> None:
    chain = Chain("riverside", "riverside-box1")
    chain.register(engine)
    chain.add(sale("riverside", "s-1", earned=1000))
    sold = chain.add(sale("riverside", "s-2", redeemed=400))
    chain.add({"site_id": "riverside", "till_id": "till-1", "sale_id": "s-2", "hold_id": "h" + "0" * 16,
               "card_token": TOKEN, "points": 400, "sale_seq": sold.seq, "reason": "late"},
              type="redemption.reversed")
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(1, 3), site_id="riverside", received_at=T0 + timedelta(hours=1))
        row = member_row(conn)
    assert (row.balance, row.redeemed) == (1000, 0)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 500)), min_size=1, max_size=12), st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_balance_a_box_computes_equals_the_hubs(moves: list[tuple[bool, int]], data: st.DataObject) -> None:
    # The box's events for one card; the hub holds the first `ingested` of them (the rest are in transit).
    ingested = data.draw(st.integers(0, len(moves)))
    chain = Chain("riverside", "riverside-box1")
    points = []
    for n, (earn, amount) in enumerate(moves, start=1):
        chain.add(sale("riverside", f"s-{n}", earned=amount if earn else 0, redeemed=0 if earn else amount))
        points.append(amount if earn else -amount)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'hub.db'}")
        try:
            migrate(engine)
            chain.register(engine)
            entry = None
            if ingested:
                with engine.begin() as conn:
                    ingest_batch(conn, batch=chain.batch(1, ingested), site_id="riverside", received_at=T0)
                    row = member_row(conn)
                    card = conn.execute(sa.select(member_cards).where(member_cards.c.card_token == TOKEN)).one()
                    entry = DirectoryEntry.model_validate(entry_of(row, card))
                    assert row.balance == sum(points[:ingested])
            local = list(enumerate(points, start=1))
            assert balance_at_box(entry, "riverside-box1", local) == sum(points)
            assert balance_at_box(entry, "another-box", []) == sum(points[:ingested])
        finally:
            engine.dispose()


def test_an_upgraded_hub_keeps_the_points_earned_before_members_existed(db_url: str) -> None:
    from cloud.db import ingest as db
    from cloud.db.engine import make_engine as make
    from cloud.db.schema import directory_changes, member_ledger

    engine = make(db_url)
    try:
        migrate(engine, "0004")
        chain = Chain("riverside", "riverside-box1")
        chain.register(engine)
        chain.add(sale("riverside", "s-1", earned=120))
        chain.add(sale_payload("riverside", sale_id="s-2") | {"card_token": None})
        chain.add(sale("riverside", "s-3", earned=80))
        with engine.begin() as conn:
            db.insert_events(conn, batch=chain.events, site_id="riverside", received_at=T0)
        migrate(engine)
        with engine.connect() as conn:
            row = member_row(conn)
            kinds = conn.execute(sa.select(member_ledger.c.kind, member_ledger.c.points, member_ledger.c.seq)
                                 .order_by(member_ledger.c.seq)).all()
            [entry] = conn.execute(sa.select(directory_changes.c.entry)).scalars().all()
        assert (row.status, row.balance, row.seen) == ("anonymous", 200, {"riverside-box1": 3})
        assert [tuple(kind) for kind in kinds] == [("earn", 120, 1), ("earn", 80, 3)]
        # The box's balance stays what it was: the directory's entry includes both sales.
        local = [(1, 120), (3, 80), (4, 30)]
        assert balance_at_box(DirectoryEntry.model_validate(entry), "riverside-box1", local) == 230
    finally:
        engine.dispose()


def test_the_ledger_pages_in_event_time_even_for_rows_ledgered_late(engine: sa.Engine) -> None:
    from cloud.members.ledger import ledger_of

    early, late = Chain("riverside", "riverside-box1"), Chain("harbour", "harbour-box1")
    for chain in (early, late):
        chain.register(engine)
    for n in range(3):
        early.add(sale("riverside", f"r-{n}", earned=10 + n), occurred_at=T0 + timedelta(hours=2 * n + 1))
    late.add(sale("harbour", "h-0", earned=99), occurred_at=T0 + timedelta(hours=2))  # an offline box, ingested last
    with engine.begin() as conn:
        ingest_batch(conn, batch=early.batch(1, 3), site_id="riverside", received_at=T0 + timedelta(hours=6))
        ingest_batch(conn, batch=late.batch(1, 1), site_id="harbour", received_at=T0 + timedelta(hours=7))
        member_id = member_row(conn).member_id
        first = ledger_of(conn, member_id, limit=2)
        second = ledger_of(conn, member_id, limit=2, before_id=first[-1].id)
    assert [row.points for row in first] == [12, 11] and [row.points for row in second] == [99, 10]
