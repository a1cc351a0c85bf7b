"""The rules clock: the time-based rules run at the hub when they fall due (under the bundle in force then, and
never early because a box's clock is wrong), are ledgered and reach the boxes through the directory; once per
moment, side by side with ingest, and through failures."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db.engine import make_engine, migrate
from cloud.db.schema import directory_changes, member_ledger, members
from cloud.members import ledger
from cloud.members.accounts import due_at, running_bundle
from cloud.members.clock import RulesClock
from cloud.members.directory import current_version
from protocol.account import Account, Move, advance, fold
from protocol.chain import seal
from protocol.directory import DirectoryEntry
from protocol.ids import uuid7
from protocol.rules import RuleBundle
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain
from tests.unit.hub.test_accounts import (
    PROPERTY_RULES,
    SITE,
    TIERED,
    TOKEN,
    as_rows,
    at,
    card_sale,
    derived,
    ingest,
    member_of,
    moves_of_chain,
    publish,
)

QUARTERLY = {
    "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                         {"tier_id": "silver", "name": "Silver", "min_visits": 3}],
              "window_months": 1, "review": "quarterly"},
    "monthly_bonus": {"min_visits": 2, "points": 30},
    "expiry": {"shelf_life_months": 1},
}
APRIL = datetime(2025, 4, 1, tzinfo=UTC)


@pytest.fixture
def member(engine: sa.Engine) -> Iterator[Chain]:
    """A member silver after three February visits, with two in March: 430 points, due on 1 April."""
    publish(engine, **QUARTERLY)
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    for day in ("2025-02-03", "2025-02-10", "2025-02-17"):
        chain.add(card_sale(f"s-{day}", earned=100, spend=1000), occurred_at=at(day))
    for day in ("2025-03-05", "2025-03-12"):
        chain.add(card_sale(f"s-{day}", earned=50, spend=500), occurred_at=at(day))
    ingest(engine, chain, 1, 5, at("2025-03-13"))
    yield chain


def entries(conn: sa.Connection) -> list[DirectoryEntry]:
    return [DirectoryEntry.model_validate(entry) for entry in conn.execute(
        sa.select(directory_changes.c.entry).where(directory_changes.c.card_token == TOKEN)).scalars()]


def test_on_1_april_the_clock_pays_30_demotes_silver_and_expires_300_once(engine: sa.Engine, member: Chain) -> None:
    with engine.connect() as conn:
        before = member_of(conn)
        version = current_version(conn)
    assert (before.balance, before.account_due) == (430, APRIL)
    clock = RulesClock(engine)
    assert clock.run_once(APRIL - timedelta(seconds=1)) == 0

    assert clock.run_once(APRIL + timedelta(seconds=30)) == 1
    with engine.connect() as conn:
        after = member_of(conn)
        rows = derived(conn, after.member_id)
        [entry] = entries(conn)
        assert current_version(conn) == version + 1
    account = Account.model_validate(after.account)
    # March's visits earn its bonus; March alone (a one-month window) no longer holds silver; February's lot
    # ends with its month of shelf life.
    assert rows[-3:] == [("bonus", 30, APRIL, "2025-03"), ("tier", 0, APRIL, "silver>regular"),
                         ("expiry", -300, APRIL, "2025-02")]
    assert after.balance == account.balance == 430 + 30 - 300 == 160 and account.tier == "regular"
    assert entry.account == account and entry.balance == 160
    assert after.account_due == datetime(2025, 5, 1, tzinfo=UTC)  # March's lot (and the bonus) end then

    with engine.connect() as conn:
        rules = running_bundle(conn).rules_for(None)
    expected, effects = fold(moves_of_chain(member), rules, "UTC", until=APRIL + timedelta(seconds=30))
    assert account == expected and rows == as_rows(effects)

    # Twice at the same moment, or later the same month: nothing more.
    assert clock.run_once(APRIL + timedelta(seconds=30)) == 0
    assert clock.run_once(datetime(2025, 4, 30, tzinfo=UTC)) == 0
    with engine.connect() as conn:
        assert derived(conn, after.member_id) == rows and current_version(conn) == version + 1


def test_the_clock_thread_runs_the_rules_and_says_so(engine: sa.Engine, member: Chain) -> None:
    told = threading.Event()
    clock = RulesClock(engine, 0.05, now=lambda: APRIL + timedelta(minutes=1), on_change=told.set)
    clock.start()
    try:
        wait_for(told.is_set, timeout=10, what="the clock's directory change")
        wait_for(lambda: clock.counters["runs"] >= 3, timeout=10, what="more runs")
    finally:
        clock.stop()
    with engine.connect() as conn:
        kinds = [row[0] for row in derived(conn, member_of(conn).member_id)]
    assert kinds.count("expiry") == 1 and clock.counters["members"] == 1 and clock.counters["failures"] == 0


def test_a_failing_clock_logs_once_retries_and_says_when_it_runs_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")  # not migrated yet: no tables
    try:
        clock = RulesClock(engine, 60)
        with caplog.at_level(logging.INFO, logger="cloud.members.clock"):
            clock.tick()
            clock.tick()
            migrate(engine)
            clock.tick()
            clock.tick()
    finally:
        engine.dispose()
    assert clock.counters["failures"] == 2 and clock.counters["runs"] == 4
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("ERROR", "the rules clock failed; trying again every 60s"),
        ("INFO", "the rules clock runs again (2 failed runs)")]


def test_an_account_that_does_not_validate_is_refolded_from_the_ledger_and_logged_by_field(
        engine: sa.Engine, member: Chain, caplog: pytest.LogCaptureFixture) -> None:
    with engine.begin() as conn:
        member_id = member_of(conn).member_id
        conn.execute(members.update().where(members.c.member_id == member_id).values(
            account={"lots": {"2025-02": -987654}}, balance=-987654))
    with caplog.at_level(logging.WARNING, logger="cloud.members.accounts"):
        assert RulesClock(engine).run_once(APRIL + timedelta(seconds=30)) == 1
    with engine.connect() as conn:
        row = member_of(conn)
    assert row.balance == Account.model_validate(row.account).balance == 160
    [record] = caplog.records
    assert record.getMessage() == ("a member's stored account does not validate (fields: lots.2025-02); "
                                   "refolding it from the ledger")


def test_a_new_bundle_with_a_30_day_burn_makes_a_member_due_31_days_after_the_last_visit(engine: sa.Engine) -> None:
    publish(engine)
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    chain.add(card_sale("s-1", earned=90, spend=900), occurred_at=at("2025-03-05"))
    ingest(engine, chain, 1, 1, at("2025-03-06"))
    clock = RulesClock(engine)
    assert clock.refresh_dues() == 0
    with engine.connect() as conn:
        assert member_of(conn).account_due is None  # the default bundle has no time-based rule

    publish(engine, burn={"inactive_days": 30})
    assert clock.refresh_dues() == 1 and clock.refresh_dues() == 0
    burn = datetime(2025, 4, 5, tzinfo=UTC)
    with engine.connect() as conn:
        assert member_of(conn).account_due == burn
    assert clock.run_once(burn) == 1
    with engine.connect() as conn:
        row = member_of(conn)
        assert row.balance == 0 and derived(conn, row.member_id) == [("burn", -90, burn, "2025-03")]


def test_a_member_ingest_holds_is_skipped_and_taken_next_run(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        publish(engine, expiry={"shelf_life_months": 1})
        chain = Chain(SITE, "riverside-box1")
        chain.register(engine)
        chain.add(card_sale("s-1", earned=90, spend=900), occurred_at=at("2025-01-05"))
        ingest(engine, chain, 1, 1, at("2025-01-06"))
        clock = RulesClock(engine)
        with engine.connect() as holder:
            holder.execute(sa.select(members.c.member_id).with_for_update())
            assert clock.run_once(datetime(2025, 3, 2, tzinfo=UTC)) == 0
            holder.rollback()
        assert clock.run_once(datetime(2025, 3, 2, tzinfo=UTC)) == 1
        with engine.connect() as conn:
            assert member_of(conn).balance == 0
    finally:
        engine.dispose()


def test_a_bundle_published_on_15_march_pays_no_bonus_of_500_backwards_for_january_200_not_700(
        engine: sa.Engine) -> None:
    publish(engine, published=at("2025-01-01", 0))  # v1: no time-based rule
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    chain.add(card_sale("s-1", earned=100, spend=1000), occurred_at=at("2025-01-10"))
    chain.add(card_sale("s-2", earned=100, spend=1000), occurred_at=at("2025-01-20"))
    ingest(engine, chain, 1, 2, at("2025-01-21"))
    clock = RulesClock(engine, now=lambda: at("2025-03-15", 9))
    clock.tick()
    publish(engine, published=at("2025-03-15", 8), monthly_bonus={"min_visits": 2, "points": 500})
    clock.tick()  # every due recomputed under the new bundle, then the rules due run
    with engine.connect() as conn:
        member = member_of(conn)
        assert derived(conn, member.member_id) == []
    # January's two visits were under v1, which paid no bonus on 1 February: nothing is due either.
    assert member.balance == 200 and member.account_due is None and clock.counters["failures"] == 0

    # Two visits in March after v2 came out: 1 April pays March's bonus, under v2.
    chain.add(card_sale("s-3", earned=10, spend=100), occurred_at=at("2025-03-20"))
    chain.add(card_sale("s-4", earned=10, spend=100), occurred_at=at("2025-03-25"))
    ingest(engine, chain, 3, 4, at("2025-03-26"))
    with engine.connect() as conn:
        assert member_of(conn).account_due == APRIL
    assert RulesClock(engine).run_once(APRIL + timedelta(seconds=30)) == 1
    with engine.connect() as conn:
        member = member_of(conn)
        rows = derived(conn, member.member_id)
        version = conn.execute(sa.select(member_ledger.c.rules_version)
                               .where(member_ledger.c.kind == "bonus")).scalar_one()
    assert member.balance == 220 + 500 and rows == [("bonus", 500, APRIL, "2025-03")] and version == 2


def test_a_member_whose_advance_fails_is_skipped_logged_once_and_retried_while_another_loses_90_on_1_march(
        engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    publish(engine, expiry={"shelf_life_months": 1})
    other = "cd" * 16
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    for n, token in enumerate((TOKEN, other)):
        chain.add(card_sale(f"s-{n}", earned=90, spend=900, token=token), occurred_at=at("2025-01-05"))
    ingest(engine, chain, 1, 2, at("2025-01-06"))
    broken_earn = sa.and_(member_ledger.c.card_token == other, member_ledger.c.kind == "earn")
    with engine.begin() as conn:
        broken = member_of(conn, other).member_id
        # Its stored account gone and its ledger row unreadable: refolding it raises.
        conn.execute(members.update().where(members.c.member_id == broken).values(account=None))
        conn.execute(member_ledger.update().where(broken_earn).values(detail={"pass_uses": [["cine-pass"]]}))
    clock = RulesClock(engine)
    march = datetime(2025, 3, 2, tzinfo=UTC)
    with caplog.at_level(logging.INFO, logger="cloud.members.clock"):
        assert clock.run_once(march) == 1
        assert clock.run_once(march) == 0  # tried again, and logged no more
    with engine.connect() as conn:
        fine, skipped = member_of(conn), member_of(conn, other)
        assert derived(conn, fine.member_id) == [("expiry", -90, datetime(2025, 3, 1, tzinfo=UTC), "2025-01")]
    assert fine.balance == 0 and clock.counters["member_failures"] == 2
    assert (skipped.balance, skipped.account, skipped.account_due) == (90, None, datetime(2025, 3, 1, tzinfo=UTC))
    [record] = caplog.records
    assert (record.levelname, record.getMessage()) == (
        "ERROR", f"the rules clock cannot advance member {broken}; skipped, and tried again every run")
    assert other not in caplog.text and TOKEN not in caplog.text

    with engine.begin() as conn:
        conn.execute(member_ledger.update().where(broken_earn).values(detail=None))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cloud.members.clock"):
        assert clock.run_once(march) == 1
    with engine.connect() as conn:
        assert member_of(conn, other).balance == 0
    assert [record.getMessage() for record in caplog.records] == [f"the rules clock advanced member {broken} again"]


def add_unsynced(chain: Chain, payload: dict[str, Any], occurred_at: datetime) -> None:
    """Seal the chain's next event as a box whose clock is not synchronised says so (clock_ok false)."""
    chain.events.append(seal(
        type="sale.recorded", device_id=chain.device_id, seq=len(chain.events) + 1,
        event_id=uuid7(int(occurred_at.timestamp() * 1000), os.urandom(10)), occurred_at=occurred_at,
        clock_ok=False, prev_hash=chain.head, payload=payload))


def test_a_sale_stamped_2027_by_a_box_two_years_ahead_folds_at_its_arrival_and_expires_nothing_535_not_10(
        engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    publish(engine, expiry={"shelf_life_months": 12})
    home = Chain(SITE, "riverside-box1")
    ahead = Chain("eastgate", f"eastgate-{secrets.token_hex(4)}")  # warned once per hub process: a fresh one
    for chain in (home, ahead):
        chain.register(engine)
    home.add(card_sale("s-1", earned=500), occurred_at=at("2025-03-10"))
    ingest(engine, home, 1, 1, at("2025-03-10", 13))
    ahead.add(card_sale("x-1", earned=10, site="eastgate"), occurred_at=at("2027-06-01"))
    # Not synchronised, but a time that can be (before its batch arrived, after 2020): kept, as the box folded it.
    add_unsynced(ahead, card_sale("x-2", earned=5, site="eastgate"), at("2025-03-11", 8))
    with caplog.at_level(logging.WARNING, logger="cloud.members.ledger"):
        ingest(engine, ahead, 1, 2, at("2025-03-11"))
        ahead.add(card_sale("x-3", earned=0, site="eastgate"), occurred_at=at("2027-06-02"))
        ingest(engine, ahead, 3, 3, at("2025-03-11", 14))
    home.add(card_sale("s-2", earned=20), occurred_at=at("2025-03-12"))
    ingest(engine, home, 2, 2, at("2025-03-12", 13))
    with engine.connect() as conn:
        member = member_of(conn)
        rows = derived(conn, member.member_id)
        times = conn.execute(sa.select(member_ledger.c.occurred_at).where(member_ledger.c.device_id == ahead.device_id)
                             .order_by(member_ledger.c.seq)).scalars().all()
    # Folded in 2027, the 10 points would have run time on to then: March's 525 expired on 1 April 2026, 10 left.
    assert member.balance == 500 + 10 + 5 + 20 == 535 and rows == []
    assert Account.model_validate(member.account).as_of == at("2025-03-12")
    assert times == [at("2025-03-11"), at("2025-03-11", 8), at("2025-03-11", 14)]  # the ledger keeps the time folded
    assert ledger.retimed[ahead.device_id] == 2
    [warning] = caplog.records
    assert warning.levelname == "WARNING" and ahead.device_id in warning.getMessage()
    assert TOKEN not in caplog.text

    # A refold reads the ledger's times: an older sale arriving late changes nothing else.
    late = Chain("harbour", "harbour-box1")
    late.register(engine)
    late.add(card_sale("h-1", earned=7, site="harbour"), occurred_at=at("2025-03-01"))
    ingest(engine, late, 1, 1, at("2025-03-13"))
    with engine.connect() as conn:
        member = member_of(conn)
        assert member.balance == 542 and derived(conn, member.member_id) == []
    assert Account.model_validate(member.account).as_of == at("2025-03-12")


# The clock's schedule restates when `protocol.account` runs each rule: it must never be later than a rule.
stays = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 23), st.integers(0, 300), st.integers(0, 200),
                           st.booleans()), min_size=1, max_size=8)


@given(stays, st.sampled_from([TIERED, PROPERTY_RULES, QUARTERLY]))
@settings(max_examples=200, deadline=None)
def test_no_time_based_rule_runs_before_the_due_instant(visits: list[tuple[int, int, int, int, bool]],
                                                        rules: dict[str, object]) -> None:
    bundle = RuleBundle.model_validate({"version": 1, "published_at": "2025-01-01T00:00:00Z", "currency": "EUR",
                                        **rules})
    start = datetime(2025, 1, 1, tzinfo=UTC)
    moves = []
    for n, (day, hour, earned, redeemed, visit) in enumerate(visits):
        when = start + timedelta(days=day, hours=hour)
        moves.append(Move(at=when, kind="earn", points=earned, spend=earned * 10, visit=visit,
                          earning_sale=earned > 0, order=("box", n)))
        if redeemed:
            moves.append(Move(at=when, kind="redeem", points=-redeemed, order=("box", n)))
    account, _ = fold(moves, bundle, bundle.timezone)
    due = due_at(account, bundle, bundle.timezone)
    assert account.as_of is not None
    quiet_until = due - timedelta(microseconds=1) if due is not None else account.as_of + timedelta(days=3 * 366)
    assert advance(account, bundle, quiet_until, bundle.timezone)[1] == []
    if due is not None:
        assert due > account.as_of


def test_a_box_whose_clock_was_never_set_stamps_1970_and_its_sale_folds_at_arrival_keeping_its_10_points(
        engine: sa.Engine) -> None:
    publish(engine, expiry={"shelf_life_months": 12})
    box = Chain("eastgate", f"eastgate-{secrets.token_hex(4)}")
    box.register(engine)
    add_unsynced(box, card_sale("z-1", earned=10, site="eastgate"), datetime(1970, 1, 2, tzinfo=UTC))
    ingest(engine, box, 1, 1, at("2025-03-11"))
    with engine.connect() as conn:
        member = member_of(conn)
        [time] = conn.execute(sa.select(member_ledger.c.occurred_at)
                              .where(member_ledger.c.device_id == box.device_id)).scalars().all()
    assert (member.balance, time) == (10, at("2025-03-11"))  # folded in 1970, 12 months of expiry would take it
