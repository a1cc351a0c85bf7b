"""Storing authenticated batches on real SQLite and PostgreSQL: idempotence, gaps, lost events, refused
payloads, chain conflicts and their resolution."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db.devices import list_conflicts, register_device, revoke_device
from cloud.db.engine import make_engine, migrate
from cloud.db.schema import (
    box_office,
    chain_conflicts,
    devices,
    event_archive,
    event_gaps,
    events,
    ingest_rejects,
    sites,
)
from cloud.db.sites import list_sites
from cloud.errors import IngestError, RegistryError, ReplayError
from cloud.ingest.conflicts import resolve_conflicts
from cloud.ingest.store import ingest_batch, store_batch
from protocol.chain import seal
from protocol.messages import Ack, EventBatch
from protocol.signing import public_key_text, sign_batch
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain, sale_payload

NOW = datetime(2025, 3, 14, 20, 0, tzinfo=UTC)


def ingest(engine: sa.Engine, batch: EventBatch, site_id: str = "site-a") -> Ack:
    with engine.begin() as conn:
        return ingest_batch(conn, batch=batch, site_id=site_id, received_at=NOW)


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def totals(engine: sa.Engine) -> tuple[int, int, int, int]:
    """(tickets, ticket revenue, concession revenue, sales) over the whole rollup."""
    cols = [
        box_office.c.tickets,
        box_office.c.ticket_revenue,
        box_office.c.concession_revenue,
        box_office.c.sales,
    ]
    with engine.connect() as conn:
        row = conn.execute(sa.select(*[sa.func.coalesce(sa.func.sum(col), 0) for col in cols])).one()
    return tuple(int(value) for value in row)  # type: ignore[return-value]


def rejects(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(ingest_rejects.c.reason).order_by(ingest_rejects.c.id)).scalars())


def registered(engine: sa.Engine, site_id: str = "site-a", device_id: str = "box-1") -> Chain:
    chain = Chain(site_id, device_id)
    chain.register(engine)
    return chain


def test_first_batch_is_stored_and_rolled_up(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(3, tickets=2, ticket_price=1200, concession=450)

    ack = ingest(engine, chain.batch(1, 3))

    assert ack == chain.ack(3)
    assert count(engine, events) == 3
    assert totals(engine) == (6, 7200, 1350, 3)
    with engine.connect() as conn:
        device = conn.execute(sa.select(devices)).one()
        stored = conn.execute(sa.select(events.c.body).where(events.c.seq == 2)).scalar_one()
        site = conn.execute(sa.select(sites)).one()
    assert (device.site_id, device.last_seq, device.last_hash) == ("site-a", 3, chain.events[2].hash)
    assert device.last_seen == NOW and site.first_seen == NOW
    assert stored == chain.events[1].model_dump(mode="json", by_alias=True)


def test_redelivered_batch_counts_once_and_acks_the_same(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(4)
    first = ingest(engine, chain.batch(1, 4))

    with engine.begin() as conn:
        again = store_batch(conn, batch=chain.batch(1, 4), site_id="site-a", received_at=NOW)

    assert again.ack == first == chain.ack(4)
    assert (again.stored, again.duplicates) == (0, 4)
    assert count(engine, events) == 4
    assert totals(engine)[3] == 4


def test_overlapping_batch_stores_only_the_new_events(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(5)
    ingest(engine, chain.batch(1, 3))

    with engine.begin() as conn:
        result = store_batch(conn, batch=chain.batch(2, 5), site_id="site-a", received_at=NOW)

    assert (result.ack.acked_seq, result.stored, result.duplicates) == (5, 2, 2)
    assert count(engine, events) == 5
    assert totals(engine)[3] == 5


def test_gap_asks_for_a_resend_from_the_first_missing_seq(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(6)
    ingest(engine, chain.batch(1, 2))

    ack = ingest(engine, chain.batch(5, 6))

    assert ack == chain.ack(2, resend_from=3)
    assert count(engine, events) == 2
    assert ingest(engine, chain.batch(3, 6)) == chain.ack(6)


def test_first_batch_of_a_new_device_must_start_at_seq_1(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(3)

    assert ingest(engine, chain.batch(2, 3)) == chain.ack(0, resend_from=1)


def test_a_signed_event_that_does_not_link_is_a_conflict_and_stops_the_batch(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(5)
    good = chain.events[2]
    # Sealed and signed with the device's own key, but not linked to event #2: another journal.
    other = seal(type=good.type, device_id=good.device_id, seq=good.seq, event_id=good.event_id,
                 occurred_at=good.occurred_at, clock_ok=True, prev_hash="f" * 64, payload=good.payload)
    chain.events[2] = other

    ack = ingest(engine, chain.batch(1, 5))

    assert ack == chain.ack(2, error="chain_conflict", refused_seq=3, refused_hash=other.hash)
    assert ack.resend_from is None
    assert count(engine, events) == 2 and totals(engine)[3] == 2
    assert rejects(engine) == ["chain_conflict"]
    with engine.connect() as conn:
        device = conn.execute(sa.select(devices)).one()
    assert device.chain_broken_at == NOW and "#3" in device.chain_error
    # Its fork lies before seq 3, where the hub holds only one side: taking the box's side is refused.
    with pytest.raises(RegistryError, match="does not link"), engine.begin() as conn:
        resolve_conflicts(conn, device_id="box-1", keep="box", at=NOW, note=None)


@pytest.mark.parametrize("who", ["unknown device", "device of another site"])
def test_a_device_not_registered_for_the_site_stores_nothing(engine: sa.Engine, who: str) -> None:
    registered(engine, "site-a", "box-1")
    sender = Chain("site-b", "box-9" if who == "unknown device" else "box-1")
    sender.sales(1)

    with pytest.raises(IngestError, match="not registered"), engine.begin() as conn:
        store_batch(conn, batch=sender.batch(1, 1), site_id="site-b", received_at=NOW)

    assert count(engine, events) == 0
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(sites.c.site_id)).scalars()) == {"site-a"}
        assert set(conn.execute(sa.select(devices.c.device_id)).scalars()) == {"box-1"}


def test_unknown_event_types_are_stored_not_rolled_up(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.add()
    chain.add({"door": "north", "future_field": [1, 2]}, type="door.opened")
    chain.add()

    assert ingest(engine, chain.batch(1, 3)).acked_seq == 3
    assert count(engine, events) == 3
    assert totals(engine)[3] == 2
    assert rejects(engine) == []


CARD = "4111111111111111"


def test_an_invalid_sale_keeps_its_place_in_the_chain_but_not_its_content(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.add({"site_id": "site-a", "cashier_id": f"{CARD} 12/29 CVV 123\u0001", "nonsense": True})
    chain.add()

    assert ingest(engine, chain.batch(1, 2)).acked_seq == 2
    assert count(engine, events) == 2
    assert totals(engine)[3] == 1
    with engine.connect() as conn:
        body = conn.execute(sa.select(events.c.body).where(events.c.seq == 1)).scalar_one()
        detail = conn.execute(sa.select(ingest_rejects.c.detail)).scalar_one()
    assert body["payload"] == {} and body["hash"] == chain.events[0].hash
    assert "cashier_id" in body["payload_refused"]["fields"] and "cashier_id" in detail
    assert rejects(engine) == ["bad_payload"]
    assert CARD not in database_text(engine)


def test_a_sale_naming_another_site_is_refused_from_the_figures(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.add(sale_payload("site-b"))

    assert ingest(engine, chain.batch(1, 1)).acked_seq == 1
    assert totals(engine) == (0, 0, 0, 0)
    assert rejects(engine) == ["payload_site_mismatch"]


def database_text(engine: sa.Engine) -> str:
    """Every row of every table, as text: what someone with a copy of the database could read."""
    from cloud.db.schema import metadata

    with engine.connect() as conn:
        return "\n".join(str(row) for table in metadata.sorted_tables for row in conn.execute(sa.select(table)))


def test_concurrent_writers_store_every_event_once(engine: sa.Engine, db_url: str) -> None:
    """Two engines (as two hub processes would) race on the same devices' overlapping batches."""
    chains = [registered(engine, "site-a", f"box-{n}") for n in range(3)]
    for chain in chains:
        chain.sales(30)
    batches = [chain.batch(first, min(first + 9, 30)) for chain in chains for first in range(1, 31, 5)]
    engines = [make_engine(db_url), make_engine(db_url)]
    failures: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            for _ in range(3):  # each pass retries what a gap refused, like a box resending
                for batch in batches[worker::2] + batches[1 - worker :: 2]:
                    ingest(engines[worker], batch)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    for each in engines:
        each.dispose()

    assert failures == []
    assert count(engine, events) == 90
    assert totals(engine)[3] == 90
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(devices.c.last_seq)).scalars()) == {30}


def test_a_rebuilt_box_under_the_same_identity_is_a_conflict_kept_for_the_owner(engine: sa.Engine) -> None:
    old = registered(engine)
    old.sales(3)
    ingest(engine, old.batch(1, 3))
    rebuilt = Chain("site-a", "box-1", key=old.key)  # a fresh journal under the same key: seqs 1..2 again
    rebuilt.sales(2)

    results = []
    for _ in range(3):  # the box resends what was refused
        with engine.begin() as conn:
            results.append(store_batch(conn, batch=rebuilt.batch(1, 2), site_id="site-a", received_at=NOW))

    assert {result.ack for result in results} == {
        old.ack(0, error="chain_conflict", refused_seq=1, refused_hash=rebuilt.events[0].hash)
    }
    assert (results[0].stored, results[0].duplicates, results[0].conflict) == (0, 0, True)
    assert rejects(engine) == ["chain_conflict"]
    with engine.connect() as conn:
        device = conn.execute(sa.select(devices)).one()
        held = conn.execute(sa.select(events.c.hash).order_by(events.c.seq)).scalars().all()
        conflicts = list_conflicts(conn)
    assert device.chain_broken_at == NOW and "#1" in device.chain_error
    assert held == [event.hash for event in old.events]
    assert [(c.seq, c.held_hash, c.received_hash) for c in conflicts] == [
        (1, old.events[0].hash, rebuilt.events[0].hash)
    ]


def test_resolving_a_conflict_for_the_hub_keeps_its_events(engine: sa.Engine) -> None:
    old = registered(engine)
    old.sales(3)
    ingest(engine, old.batch(1, 3))
    clone = Chain("site-a", "box-1", key=old.key)
    clone.sales(1)
    ingest(engine, clone.batch(1, 1))

    with engine.begin() as conn:
        result = resolve_conflicts(conn, device_id="box-1", keep="hub", at=NOW, note="clone in the office")

    assert (result.conflicts, result.archived, result.head_seq) == (1, 0, 3)
    assert count(engine, events) == 3 and totals(engine)[3] == 3
    with engine.connect() as conn:
        assert list_conflicts(conn) == []
        assert list_sites(conn, now=NOW, offline_after=timedelta(minutes=1))[0].devices[0].chain_ok
    with pytest.raises(RegistryError, match="no open chain conflict"), engine.begin() as conn:
        resolve_conflicts(conn, device_id="box-1", keep="hub", at=NOW, note=None)


def test_resolving_a_conflict_for_the_box_archives_the_hubs_events_and_takes_the_boxs(engine: sa.Engine) -> None:
    hub_side = registered(engine)
    hub_side.sales(4, tickets=1, ticket_price=1000, concession=0)
    ingest(engine, hub_side.batch(1, 4))
    box_side = Chain("site-a", "box-1", key=hub_side.key, events=list(hub_side.events[:2]))
    box_side.sales(3, tickets=2, ticket_price=500, concession=0)  # forks after seq 2
    assert ingest(engine, box_side.batch(1, 5)).error == "chain_conflict"

    with engine.begin() as conn:
        result = resolve_conflicts(conn, device_id="box-1", keep="box", at=NOW, note=None)

    assert (result.conflicts, result.archived, result.head_seq) == (1, 2, 2)
    assert totals(engine) == (2, 2000, 0, 2)  # the two archived sales left the figures
    assert ingest(engine, box_side.batch(1, 5)) == box_side.ack(5)
    assert totals(engine) == (8, 5000, 0, 5)
    with engine.connect() as conn:
        archived = conn.execute(sa.select(event_archive.c.seq, event_archive.c.hash)).all()
        state = conn.execute(sa.select(chain_conflicts.c.resolution)).scalars().all()
    assert sorted(archived) == sorted((e.seq, e.hash) for e in hub_side.events[2:])
    assert state == ["box"]


def test_lost_events_are_gaps_with_their_reason_and_the_chain_goes_on(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(6)

    first = ingest(engine, chain.batch(1, 4, lost=(2, 3)))
    again = ingest(engine, chain.batch(1, 4, lost=(2, 3)))  # redelivered
    rest = ingest(engine, chain.batch(5, 6))

    assert first == again == chain.ack(4)
    assert rest == chain.ack(6)
    assert totals(engine)[3] == 4
    with engine.connect() as conn:
        gaps = conn.execute(sa.select(event_gaps.c.seq, event_gaps.c.reason).order_by(event_gaps.c.seq)).all()
        view = list_sites(conn, now=NOW, offline_after=timedelta(minutes=1))[0].devices[0]
    assert [tuple(gap) for gap in gaps] == [(2, "unreadable"), (3, "unreadable")]
    assert view.lost_events == 2 and [(g.seq, g.reason) for g in view.recent_gaps] == [(3, "unreadable"),
                                                                                      (2, "unreadable")]
    assert view.last_seq == 6 and view.chain_ok


def test_a_lost_event_whose_hash_the_box_forgot_still_lets_the_chain_go_on(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(3)
    batch = chain.batch(1, 3, lost=(2,))
    forgetful = batch.model_copy(update={"lost": [batch.lost[0].model_copy(update={"hash": None})]})
    assert ingest(engine, sign_batch(forgetful, chain.key)) == chain.ack(3)


def test_a_refusal_the_box_repeats_is_recorded_once_and_counted(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(3)
    ingest(engine, chain.batch(1, 1))
    other = Chain("site-a", "box-1", key=chain.key)
    other.sales(3)

    acks = [ingest(engine, other.batch(2, 3)) for _ in range(3)]

    assert [ack.error for ack in acks] == ["chain_conflict"] * 3
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ingest_rejects.c.reason, ingest_rejects.c.seq, ingest_rejects.c.count)).all()
    assert [tuple(row) for row in rows] == [("chain_conflict", 2, 3)]


def test_a_revocation_or_a_new_key_after_the_signature_check_stores_nothing(engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(2)
    old_key = public_key_text(chain.key)
    with engine.begin() as conn:
        register_device(conn, site_id="site-a", device_id="box-1", at=NOW, replace_key=True,
                        public_key=public_key_text(Ed25519PrivateKey.generate()))
    with pytest.raises(IngestError, match="new key"), engine.begin() as conn:
        store_batch(conn, batch=chain.batch(1, 2), site_id="site-a", received_at=NOW, verified_with=old_key)
    with engine.begin() as conn:
        revoke_device(conn, device_id="box-1", at=NOW)
    with pytest.raises(IngestError, match="not registered"), engine.begin() as conn:
        store_batch(conn, batch=chain.batch(1, 2), site_id="site-a", received_at=NOW)
    assert count(engine, events) == 0


def test_after_a_clone_took_seqs_the_genuine_box_is_held_at_the_fork_and_resent_from_it(engine: sa.Engine) -> None:
    real = registered(engine)
    real.sales(2)
    ingest(engine, real.batch(1, 2))
    clone = Chain("site-a", "box-1", key=real.key, events=list(real.events))
    clone.sales(2)
    assert ingest(engine, clone.batch(3, 4)) == clone.ack(4)  # the clone spoke first
    real.sales(3)

    answer = ingest(engine, real.batch(3, 5))

    # The genuine box learns it is held up to seq 2 only, and which of its events was refused.
    assert answer == real.ack(2, error="chain_conflict", refused_seq=3, refused_hash=real.events[2].hash)
    with engine.begin() as conn:
        resolve_conflicts(conn, device_id="box-1", keep="box", at=NOW, note="the clone was the impostor")
    assert ingest(engine, real.batch(3, 5)) == real.ack(5)  # its resend from the fork is taken
    with pytest.raises(ReplayError), engine.begin() as conn:  # the clone's settled events stay out
        store_batch(conn, batch=clone.batch(3, 4), site_id="site-a", received_at=NOW)
    assert totals(engine)[3] == 5 and count(engine, events) == 5


def test_after_keeping_the_hubs_chain_the_refused_events_are_settled(engine: sa.Engine) -> None:
    real = registered(engine)
    real.sales(3)
    ingest(engine, real.batch(1, 3))
    stale = Chain("site-a", "box-1", key=real.key, events=list(real.events[:1]))
    stale.sales(2)  # a journal restored from an old backup: seq 2 and 3 again, other sales
    assert ingest(engine, stale.batch(1, 3)).error == "chain_conflict"
    with engine.begin() as conn:
        resolve_conflicts(conn, device_id="box-1", keep="hub", at=NOW, note=None)

    with pytest.raises(ReplayError), engine.begin() as conn:
        store_batch(conn, batch=stale.batch(1, 3), site_id="site-a", received_at=NOW)

    with engine.connect() as conn:
        assert list_conflicts(conn) == [] and conn.execute(sa.select(devices.c.chain_error)).scalar_one() is None
    real.sales(1)
    assert ingest(engine, real.batch(4, 4)) == real.ack(4)


def test_a_replay_racing_a_resolution_is_refused_once_the_resolution_commits(postgres_url: str) -> None:
    """A replay of the refused journal's batch that reaches the hub while the owner's `--keep box` is being
    committed waits for the device's lock, then sees the resolution: it must not bring the events back."""
    engine = make_engine(postgres_url)
    migrate(engine)
    try:
        real = registered(engine)
        real.sales(2)
        ingest(engine, real.batch(1, 2))
        clone = Chain("site-a", "box-1", key=real.key, events=list(real.events))
        clone.sales(2)
        ingest(engine, clone.batch(3, 4))
        real.sales(3)
        assert ingest(engine, real.batch(3, 5)).error == "chain_conflict"
        outcome: list[BaseException | object] = []

        def replay() -> None:
            try:
                with engine.begin() as conn:
                    outcome.append(store_batch(conn, batch=clone.batch(3, 4), site_id="site-a", received_at=NOW))
            except BaseException as exc:  # noqa: BLE001 - examined below
                outcome.append(exc)

        with engine.connect() as owner:
            owner.begin()
            resolve_conflicts(owner, device_id="box-1", keep="box", at=NOW, note=None)
            racer = threading.Thread(target=replay)
            racer.start()

            def replay_waits_for_the_lock() -> bool:
                with engine.connect() as probe:
                    waiting = probe.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%FOR UPDATE%'")).scalar_one()
                return bool(waiting)

            wait_for(replay_waits_for_the_lock, timeout=10, what="the replay waiting for the device's lock")
            owner.commit()
        racer.join(timeout=30)

        assert len(outcome) == 1 and isinstance(outcome[0], ReplayError)
        assert count(engine, events) == 2 and totals(engine)[3] == 2
    finally:
        engine.dispose()
