"""The rules clock: the time-based rules run at the hub when they fall due, are ledgered and reach the boxes
through the directory; once per moment, side by side with ingest, and through failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db.engine import make_engine, migrate
from cloud.db.schema import directory_changes, members
from cloud.members.accounts import due_at, running_bundle
from cloud.members.clock import RulesClock
from cloud.members.directory import current_version
from protocol.account import Account, Move, advance, fold
from protocol.directory import DirectoryEntry
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
