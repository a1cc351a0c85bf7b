"""Members' accounts at the hub: folded at ingest as the box folds them, refolded when a late event arrives,
kept across a programme change, sent in the directory, and built for members a hub held before accounts."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.bundles import publish_draft
from cloud.db.engine import make_engine, migrate
from cloud.db.schema import directory_changes, member_cards, member_ledger, members
from cloud.ingest.store import ingest_batch
from cloud.members.accounts import DERIVED_KINDS
from cloud.members.clock import RulesClock
from cloud.members.store import update
from cloud.members.vault import MemberVault
from protocol.account import Account, Effect, Move, fold
from protocol.directory import DirectoryEntry
from protocol.events import RedemptionReversed, SaleRecorded
from protocol.loyalty import reversal_move, sale_moves
from protocol.rules import RuleBundle
from tests.unit.hub.factories import Chain, sale_payload

TOKEN = "ef" * 16
SITE = "riverside"


def at(day: str, hour: int = 12) -> datetime:
    """An instant on a day given as YYYY-MM-DD (UTC)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def publish(engine: sa.Engine, *, published: datetime = datetime(2024, 1, 1, tzinfo=UTC), **rules: Any) -> RuleBundle:
    """Publish a bundle with these programme parts (10 % of tickets earned) at `published`, as HQ does."""
    draft = {"currency": "EUR", "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000}], **rules}
    with engine.begin() as conn:
        return publish_draft(conn, draft, Ed25519PrivateKey.generate(), at=published)


def card_sale(sale_id: str, *, earned: int = 0, redeemed: int = 0, visit: bool = True, spend: int = 0,
              token: str = TOKEN, site: str = SITE) -> dict[str, Any]:
    """A sale with a member card: `earned` points, `redeemed` paid with points, counting `spend` and `visit`."""
    return sale_payload(site, sale_id=sale_id) | {"card_token": token, "loyalty": {
        "status": "earned", "points_earned": earned, "points_redeemed": redeemed, "amount_redeemed": redeemed // 10,
        "hold_id": "h" + "1" * 16 if redeemed else None, "spend": spend, "visit": visit}}


def moves_of_chain(*chains: Chain) -> list[Move]:
    """Every account move of the chains' events, derived as the box derives them."""
    moves: list[Move] = []
    for chain in chains:
        for event in chain.events:
            payload = event.typed_payload()
            order = (event.device_id, event.seq)
            if isinstance(payload, SaleRecorded):
                moves += sale_moves(payload, event.occurred_at, order)
            elif isinstance(payload, RedemptionReversed):
                moves.append(reversal_move(payload, event.occurred_at, order))
    return moves


def member_of(conn: sa.Connection, token: str = TOKEN) -> Any:
    member_id = conn.execute(sa.select(member_cards.c.member_id).where(member_cards.c.card_token == token)).scalar_one()
    return conn.execute(sa.select(members).where(members.c.member_id == member_id)).one()


def derived(conn: sa.Connection, member_id: str) -> list[tuple[str, int, datetime, str]]:
    """The member's ledger rows the time-based rules wrote: kind, points, when, detail."""
    rows = conn.execute(sa.select(member_ledger).where(member_ledger.c.member_id == member_id,
                                                       member_ledger.c.kind.in_(DERIVED_KINDS))
                        .order_by(member_ledger.c.occurred_at, member_ledger.c.id)).all()
    return [(row.kind, int(row.points), row.occurred_at, row.detail["detail"]) for row in rows]


def as_rows(effects: list[Effect]) -> list[tuple[str, int, datetime, str]]:
    return [(effect.kind, effect.points, effect.at, effect.detail) for effect in effects]


def ingest(engine: sa.Engine, chain: Chain, first: int, last: int, received_at: datetime) -> None:
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(first, last), site_id=chain.site_id, received_at=received_at)


TIERED = {
    "timezone": "Europe/Paris",
    "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                         {"tier_id": "silver", "name": "Silver", "min_visits": 2},
                         {"tier_id": "gold", "name": "Gold", "min_visits": 4}],
              "window_months": 3, "review": "monthly"},
    "expiry": {"shelf_life_months": 2},
    "monthly_bonus": {"min_visits": 2, "points": 25},
}


def test_the_account_after_ingest_is_the_fold_of_the_members_moves(engine: sa.Engine) -> None:
    bundle = publish(engine, **TIERED)
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    chain.add(card_sale("s-1", earned=240, spend=2400), occurred_at=at("2025-01-10"))
    chain.add(card_sale("s-2", earned=120, spend=1200), occurred_at=at("2025-01-18"))
    chain.add(card_sale("s-3", redeemed=200, spend=450, visit=False), occurred_at=at("2025-02-02"))
    chain.add(card_sale("s-4", earned=60, spend=600), occurred_at=at("2025-04-05"))
    ingest(engine, chain, 1, 2, at("2025-01-19"))
    ingest(engine, chain, 3, 4, at("2025-04-06"))

    expected, effects = fold(moves_of_chain(chain), bundle.rules_for("default"), "Europe/Paris")
    with engine.connect() as conn:
        member = member_of(conn)
        earn = conn.execute(sa.select(member_ledger.c.detail).where(member_ledger.c.seq == 1,
                                                                    member_ledger.c.kind == "earn")).scalar_one()
        rows = derived(conn, member.member_id)
        total = conn.execute(sa.select(sa.func.sum(member_ledger.c.points))
                             .where(member_ledger.c.member_id == member.member_id)).scalar_one()
    assert Account.model_validate(member.account) == expected
    assert expected.tier == "silver" and expected.lots == {"2025-02": 25, "2025-04": 60}
    assert member.balance == expected.balance == total == 85
    assert earn == {"spend": 2400, "visit": True, "earning_sale": True, "pass_uses": [], "passes_bought": [],
                    "birthday_year": None}
    # Silver at the second January visit; 1 February pays January's bonus; 1 April (Paris midnight) expires
    # what January's lot kept after the redemption (360 - 200), two months of shelf life after January.
    assert rows == as_rows(effects) == [
        ("tier", 0, at("2025-01-18"), "->silver"),
        ("bonus", 25, datetime(2025, 1, 31, 23, tzinfo=UTC), "2025-01"),
        ("expiry", -160, datetime(2025, 3, 31, 22, tzinfo=UTC), "2025-01"),
    ]
    # Due next: 1 May, the review of a silver member and the end of February's lot.
    assert member.account_due == datetime(2025, 4, 30, 22, tzinfo=UTC)


def test_a_late_redemption_refolds_the_expiry_of_100_and_50_less_40_to_keep_50_not_10(engine: sa.Engine) -> None:
    bundle = publish(engine, expiry={"shelf_life_months": 12})
    home, away = Chain(SITE, "riverside-box1"), Chain("harbour", "harbour-box1")
    for chain in (home, away):
        chain.register(engine)
    home.add(card_sale("s-1", earned=100), occurred_at=at("2024-01-10"))
    home.add(card_sale("s-2", earned=50), occurred_at=at("2024-06-10"))
    away.add(card_sale("h-1", redeemed=40, visit=False, site="harbour"), occurred_at=at("2024-12-20"))
    ingest(engine, home, 1, 2, at("2024-06-11"))
    lapse = datetime(2025, 2, 1, tzinfo=UTC)  # January 2024's lot with 12 months of shelf life
    with engine.connect() as conn:
        assert member_of(conn).account_due == lapse

    clock_at = datetime(2025, 2, 1, 0, 0, 30, tzinfo=UTC)
    assert RulesClock(engine).run_once(clock_at) == 1
    with engine.connect() as conn:
        member = member_of(conn)
        assert member.balance == 50 and derived(conn, member.member_id) == [("expiry", -100, lapse, "2024-01")]

    # The harbour box was offline: its redemption of 20 December took 40 of January's lot before it lapsed.
    ingest(engine, away, 1, 1, at("2025-02-03"))
    with engine.connect() as conn:
        member = member_of(conn)
        rows = derived(conn, member.member_id)
    assert member.balance == 50 and rows == [("expiry", -60, lapse, "2024-01")]
    expected, _ = fold(moves_of_chain(home, away), bundle, "UTC", until=clock_at)
    assert Account.model_validate(member.account) == expected and expected.lots == {"2024-06": 50}


def test_a_late_february_sale_refolds_each_span_under_its_bundle_and_keeps_januarys_bonus_720_not_220(
        engine: sa.Engine) -> None:
    v1 = publish(engine, published=at("2025-01-01", 0), monthly_bonus={"min_visits": 2, "points": 500})
    home, away = Chain(SITE, "riverside-box1"), Chain(SITE, "riverside-box2")
    for chain in (home, away):
        chain.register(engine)
    home.add(card_sale("s-1", earned=100, spend=1000), occurred_at=at("2025-01-10"))
    home.add(card_sale("s-2", earned=100, spend=1000), occurred_at=at("2025-01-20"))
    home.add(card_sale("s-3", earned=10, spend=100), occurred_at=at("2025-03-05"))
    ingest(engine, home, 1, 2, at("2025-01-21"))
    assert RulesClock(engine).run_once(at("2025-02-01", 6)) == 1  # January's two visits: 500 on 1 February
    v2 = publish(engine, published=at("2025-02-10"))  # HQ drops the monthly bonus
    ingest(engine, home, 3, 3, at("2025-03-05", 13))
    with engine.connect() as conn:
        assert member_of(conn).balance == 100 + 100 + 500 + 10

    # The second box was offline: its sale of 15 February refolds the member. January and 1 February were
    # v1's: the bonus stays (a refold under v2 alone would take it back: 220).
    away.add(card_sale("x-1", earned=10, spend=100), occurred_at=at("2025-02-15"))
    ingest(engine, away, 1, 1, at("2025-03-06"))
    with engine.connect() as conn:
        member = member_of(conn)
        rows = derived(conn, member.member_id)
        versions = conn.execute(sa.select(member_ledger.c.rules_version).where(
            member_ledger.c.member_id == member.member_id, member_ledger.c.kind == "bonus")).scalars().all()
    assert member.balance == 720
    assert rows == [("bonus", 500, datetime(2025, 2, 1, tzinfo=UTC), "2025-01")] and versions == [1]
    moves = moves_of_chain(home, away)
    first, _ = fold([move for move in moves if move.at <= v2.published_at], v1, "UTC", until=v2.published_at)
    expected, _ = fold([move for move in moves if move.at > v2.published_at], v2, "UTC", start=first)
    assert Account.model_validate(member.account) == expected and expected.balance == 720


def test_a_programme_change_keeps_the_balance_and_sets_the_tier_the_activity_qualifies_for(
        engine: sa.Engine) -> None:
    publish(engine, **TIERED, programmes=[{
        "programme_id": "plus", "name": "Plus", "earning": [{"rule_id": "t", "kind": "ticket", "basis_points": 2000}],
        "tiers": {"levels": [{"tier_id": "bronze", "name": "Bronze"},
                             {"tier_id": "platinum", "name": "Platinum", "min_visits": 3}]}}])
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    for day in ("2025-03-03", "2025-03-04", "2025-03-05"):
        chain.add(card_sale(f"s-{day}", earned=100, spend=1000), occurred_at=at(day))
    ingest(engine, chain, 1, 3, at("2025-03-06"))
    with engine.begin() as conn:
        before = member_of(conn)
        assert Account.model_validate(before.account).tier == "silver"
        update(conn, MemberVault(os.urandom(32)), before.member_id, {"programme": "plus"}, at=at("2025-03-20"))
        after = member_of(conn)
        rows = derived(conn, before.member_id)
        [entry] = conn.execute(sa.select(directory_changes.c.entry)
                               .where(directory_changes.c.card_token == TOKEN)).scalars().all()
    kept, moved = Account.model_validate(before.account), Account.model_validate(after.account)
    assert after.programme == "plus" and after.balance == before.balance == 300
    assert moved == kept.model_copy(update={"tier": "platinum"})
    assert rows[-1] == ("tier", 0, at("2025-03-20"), "silver>platinum")
    assert DirectoryEntry.model_validate(entry).account == moved and entry["programme"] == "plus"


def test_the_directory_entry_carries_the_account(engine: sa.Engine) -> None:
    publish(engine, **TIERED)
    chain = Chain(SITE, "riverside-box1")
    chain.register(engine)
    chain.add(card_sale("s-1", earned=70, spend=700), occurred_at=at("2025-03-03"))
    ingest(engine, chain, 1, 1, at("2025-03-04"))
    with engine.connect() as conn:
        member = member_of(conn)
        [entry] = conn.execute(sa.select(directory_changes.c.entry)).scalars().all()
    box = DirectoryEntry.model_validate(entry)
    assert box.account == Account.model_validate(member.account) and box.balance == box.account.balance == 70
    assert box.seen == {"riverside-box1": 1}


def test_an_upgraded_hub_folds_the_accounts_of_the_members_it_holds(db_url: str) -> None:
    from cloud.db import ingest as db

    engine = make_engine(db_url)
    try:
        migrate(engine, "0004")
        chain = Chain(SITE, "riverside-box1")
        chain.register(engine)
        legacy = {"status": "earned", "points_earned": 120, "balance": 120}  # a sale recorded before accounts
        chain.add(sale_payload(SITE, sale_id="s-1") | {"card_token": TOKEN, "loyalty": legacy},
                  occurred_at=at("2025-01-10"))
        chain.add(card_sale("s-2", earned=80, spend=900), occurred_at=at("2025-03-14"))
        with engine.begin() as conn:
            db.insert_events(conn, batch=chain.events, site_id=SITE, received_at=at("2025-03-15"))
        migrate(engine, "0005")
        bundle = publish(engine, expiry={"shelf_life_months": 1})
        migrate(engine)
        with engine.connect() as conn:
            member = member_of(conn)
            details = conn.execute(sa.select(member_ledger.c.detail).where(member_ledger.c.kind == "earn")
                                   .order_by(member_ledger.c.seq)).scalars().all()
            rows = derived(conn, member.member_id)
            [entry] = conn.execute(sa.select(directory_changes.c.entry)).scalars().all()
            version = conn.execute(sa.text("SELECT version FROM directory_state")).scalar_one()
        assert member.account_due is None  # the rules clock sets it when it first runs
        assert RulesClock(engine).refresh_dues() == 1
        with engine.connect() as conn:
            due = member_of(conn).account_due
    finally:
        engine.dispose()
    # The legacy sale counts its total (two tickets and a popcorn) and a visit, as the box would read it.
    assert [(detail["spend"], detail["visit"]) for detail in details] == [(2850, True), (900, True)]
    expected, effects = fold(moves_of_chain(chain), bundle.rules_for("default"), "UTC")
    assert Account.model_validate(member.account) == expected and expected.lifetime_spend == 2850 + 900
    assert rows == as_rows(effects) == [("expiry", -120, datetime(2025, 3, 1, tzinfo=UTC), "2025-01")]
    assert member.balance == 80 and due == datetime(2025, 5, 1, tzinfo=UTC)
    assert entry["account"] == member.account and entry["balance"] == 80 and version == 2


# The box's and the hub's figures agree: one member visiting three sites, their boxes' batches reaching the
# hub in any order (each box's in its own order), late ones refolding.
PROPERTY_RULES = {
    "timezone": "Europe/Paris",
    "tiers": {"levels": [{"tier_id": "regular", "name": "Regular"},
                         {"tier_id": "silver", "name": "Silver", "min_visits": 3},
                         {"tier_id": "gold", "name": "Gold", "min_spend": 20000}],
              "window_months": 3, "review": "quarterly", "demotion": "one_level"},
    "expiry": {"shelf_life_months": 3},
    "burn": {"inactive_days": 45},
    "monthly_bonus": {"min_visits": 2, "points": 30},
}
sales = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 23), st.integers(0, 400), st.integers(0, 250),
                           st.booleans(), st.integers(0, 9000)), min_size=1, max_size=6)


Devices = list[list[tuple[int, int, int, int, bool, int]]]
START = datetime(2025, 1, 1, tzinfo=UTC)


def deliver(devices: Devices, data: st.DataObject, published: list[tuple[datetime, dict[str, Any]]]
            ) -> tuple[list[Chain], list[RuleBundle], Any, list[tuple[str, int, datetime, str]]]:
    """Publish the bundles, then ingest each device's sales in batches, the devices' batches interleaved as
    `data` draws; the chains, the bundles, the member row and their derived rows."""
    chains = [Chain(f"site{n}", f"site{n}-box1") for n in range(len(devices))]
    for chain, device_sales in zip(chains, devices, strict=True):
        for n, (day, hour, earned, redeemed, visit, spend) in enumerate(sorted(device_sales)):
            chain.add(card_sale(f"s-{n}", earned=earned, redeemed=redeemed, visit=visit, spend=spend,
                                site=chain.site_id), occurred_at=START + timedelta(days=day, hours=hour))
    batches: list[list[tuple[int, int]]] = []
    for chain in chains:
        cuts = sorted(data.draw(st.sets(st.integers(1, len(chain.events) - 1), max_size=3))) if len(
            chain.events) > 1 else []
        bounds = [0, *cuts, len(chain.events)]
        batches.append([(low + 1, high) for low, high in zip(bounds, bounds[1:], strict=False)])
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'hub.db'}")
        try:
            migrate(engine)
            bundles = [publish(engine, published=when, **rules) for when, rules in published]
            for chain in chains:
                chain.register(engine)
            while any(batches):
                index = data.draw(st.sampled_from([n for n, left in enumerate(batches) if left]))
                first, last = batches[index].pop(0)
                ingest(engine, chains[index], first, last, START + timedelta(days=500))
            with engine.connect() as conn:
                member = member_of(conn)
                rows = derived(conn, member.member_id)
        finally:
            engine.dispose()
    return chains, bundles, member, rows


@given(st.lists(sales, min_size=1, max_size=3), st.data())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_stored_account_is_the_fold_of_every_move_whatever_order_boxes_deliver_in(
        devices: Devices, data: st.DataObject) -> None:
    chains, [bundle], member, rows = deliver(devices, data, [(datetime(2024, 1, 1, tzinfo=UTC), PROPERTY_RULES)])
    expected, effects = fold(moves_of_chain(*chains), bundle.rules_for("default"), bundle.timezone)
    assert Account.model_validate(member.account) == expected and member.balance == expected.balance
    assert Counter(rows) == Counter(as_rows(effects))


# HQ changes the rules in mid-May: whatever order the boxes deliver in, what happened before is the first
# bundle's doing and what happened after the second's.
MAY_RULES = {"timezone": "Europe/Paris", "expiry": {"shelf_life_months": 1},
             "monthly_bonus": {"min_visits": 1, "points": 50}, "burn": {"inactive_days": 20}}


@given(st.lists(sales, min_size=1, max_size=3), st.data())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_stored_account_folds_each_move_under_the_bundle_in_force_then_whatever_order_boxes_deliver_in(
        devices: Devices, data: st.DataObject) -> None:
    switch = datetime(2025, 5, 15, 9, tzinfo=UTC)
    chains, [first, second], member, rows = deliver(
        devices, data, [(datetime(2024, 1, 1, tzinfo=UTC), PROPERTY_RULES), (switch, MAY_RULES)])
    moves = moves_of_chain(*chains)
    before, after = [move for move in moves if move.at <= switch], [move for move in moves if move.at > switch]
    expected, effects = fold(before, first, first.timezone, until=switch if after else None)
    if after:
        expected, later = fold(after, second, second.timezone, start=expected)
        effects += later
    assert Account.model_validate(member.account) == expected and member.balance == expected.balance
    assert Counter(rows) == Counter(as_rows(effects))
