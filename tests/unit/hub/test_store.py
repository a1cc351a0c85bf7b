"""ingest_batch against real SQLite and PostgreSQL: idempotence, gaps, chain breaks, impostors."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cloud.db.engine import make_engine
from cloud.db.schema import box_office, devices, events, ingest_rejects, sites
from cloud.ingest.store import ingest_batch, store_batch
from protocol.chain import seal
from protocol.messages import Ack, EventBatch
from tests.unit.hub.factories import Chain

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


def test_first_batch_is_stored_and_rolled_up(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(3, tickets=2, ticket_price=1200, concession=450)

    ack = ingest(engine, chain.batch(1, 3))

    assert ack == Ack(device_id="box-1", acked_seq=3)
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
    chain = Chain("site-a", "box-1")
    chain.sales(4)
    first = ingest(engine, chain.batch(1, 4))

    with engine.begin() as conn:
        again = store_batch(conn, batch=chain.batch(1, 4), site_id="site-a", received_at=NOW)

    assert again.ack == first == Ack(device_id="box-1", acked_seq=4)
    assert (again.stored, again.duplicates) == (0, 4)
    assert count(engine, events) == 4
    assert totals(engine)[3] == 4


def test_overlapping_batch_stores_only_the_new_events(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(5)
    ingest(engine, chain.batch(1, 3))

    with engine.begin() as conn:
        result = store_batch(conn, batch=chain.batch(2, 5), site_id="site-a", received_at=NOW)

    assert (result.ack.acked_seq, result.stored, result.duplicates) == (5, 2, 2)
    assert count(engine, events) == 5
    assert totals(engine)[3] == 5


def test_gap_asks_for_a_resend_from_the_first_missing_seq(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(6)
    ingest(engine, chain.batch(1, 2))

    ack = ingest(engine, chain.batch(5, 6))

    assert ack == Ack(device_id="box-1", acked_seq=2, resend_from=3)
    assert count(engine, events) == 2
    assert ingest(engine, chain.batch(3, 6)) == Ack(device_id="box-1", acked_seq=6)


def test_first_batch_of_a_new_device_must_start_at_seq_1(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(3)

    assert ingest(engine, chain.batch(2, 3)) == Ack(device_id="box-1", acked_seq=0, resend_from=1)


@pytest.mark.parametrize("tamper", ["payload", "prev_hash"])
def test_tampered_event_stops_the_batch_and_is_recorded(engine: sa.Engine, tamper: str) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(5)
    good = chain.events[2]
    if tamper == "payload":
        # The payload changed after sealing: the event's own hash no longer matches.
        payload = dict(good.payload, total=good.payload["total"] + 100)
        bad = good.model_copy(update={"payload": payload})
    else:
        # Correctly sealed, but not linked to event #2: a deleted or forged predecessor.
        bad = seal(
            type=good.type,
            device_id=good.device_id,
            seq=good.seq,
            event_id=good.event_id,
            occurred_at=good.occurred_at,
            clock_ok=True,
            prev_hash="f" * 64,
            payload=good.payload,
        )
    events_sent = [*chain.events[:2], bad, *chain.events[3:]]

    ack = ingest(engine, EventBatch(site_id="site-a", device_id="box-1", events=events_sent))

    assert ack == Ack(device_id="box-1", acked_seq=2, error="chain_broken")
    assert ack.resend_from is None
    assert count(engine, events) == 2
    assert totals(engine)[3] == 2
    assert rejects(engine) == ["chain_broken"]
    with engine.connect() as conn:
        device = conn.execute(sa.select(devices)).one()
    assert device.chain_broken_at == NOW and "#3" in device.chain_error


def test_batch_whose_site_differs_from_its_topic_is_refused(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(2)

    ack = ingest(engine, chain.batch(1, 2), site_id="site-b")

    assert ack.error == "site_mismatch" and ack.acked_seq == 0
    assert count(engine, events) == 0
    assert rejects(engine) == ["site_mismatch"]


@pytest.mark.parametrize("other_site_known", [True, False])
def test_device_claiming_another_site_is_refused(engine: sa.Engine, other_site_known: bool) -> None:
    real = Chain("site-a", "box-1")
    real.sales(2)
    ingest(engine, real.batch(1, 2))
    if other_site_known:
        neighbour = Chain("site-b", "box-2")
        neighbour.sales(1)
        ingest(engine, neighbour.batch(1, 1), site_id="site-b")
    impostor = Chain("site-b", "box-1")
    impostor.sales(3)

    ack = ingest(engine, impostor.batch(1, 3), site_id="site-b")

    assert ack.error == "device_site_mismatch"
    assert rejects(engine) == ["device_site_mismatch"]
    with engine.connect() as conn:
        held = conn.execute(sa.select(events.c.seq).where(events.c.device_id == "box-1")).scalars().all()
        known_sites = set(conn.execute(sa.select(sites.c.site_id)).scalars())
    assert sorted(held) == [1, 2]
    assert known_sites == ({"site-a", "site-b"} if other_site_known else {"site-a"})


def test_unknown_event_types_are_stored_not_rolled_up(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.add()
    chain.add({"door": "north", "future_field": [1, 2]}, type="door.opened")
    chain.add()

    assert ingest(engine, chain.batch(1, 3)).acked_seq == 3
    assert count(engine, events) == 3
    assert totals(engine)[3] == 2
    assert rejects(engine) == []


def test_sale_with_an_invalid_payload_is_kept_but_not_rolled_up(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.add({"site_id": "site-a", "nonsense": True})

    assert ingest(engine, chain.batch(1, 1)).acked_seq == 1
    assert count(engine, events) == 1
    assert totals(engine) == (0, 0, 0, 0)
    assert rejects(engine) == ["bad_payload"]


def test_concurrent_writers_store_every_event_once(engine: sa.Engine, db_url: str) -> None:
    """Two engines (as two hub processes would) race on the same devices' overlapping batches."""
    chains = [Chain("site-a", f"box-{n}") for n in range(3)]
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


def test_rebuilt_box_reusing_a_device_id_is_a_chain_break_not_duplicates(engine: sa.Engine) -> None:
    old = Chain("site-a", "box-1")
    old.sales(3)
    ingest(engine, old.batch(1, 3))
    rebuilt = Chain("site-a", "box-1")  # a fresh journal: seqs 1..2 again, other sales
    rebuilt.sales(2)

    with engine.begin() as conn:
        result = store_batch(conn, batch=rebuilt.batch(1, 2), site_id="site-a", received_at=NOW)

    assert result.ack == Ack(device_id="box-1", acked_seq=3, error="chain_broken")
    assert result.ack.resend_from is None
    assert (result.stored, result.duplicates, result.chain_broken) == (0, 0, True)
    assert rejects(engine) == ["chain_broken"]
    with engine.connect() as conn:
        device = conn.execute(sa.select(devices)).one()
        held = conn.execute(sa.select(events.c.hash).order_by(events.c.seq)).scalars().all()
    assert device.chain_broken_at == NOW and "#1" in device.chain_error
    assert held == [event.hash for event in old.events]


def test_a_refusal_the_box_repeats_is_recorded_once(engine: sa.Engine) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(3)
    ingest(engine, chain.batch(1, 1))
    tampered = chain.events[1].model_copy(update={"payload": {"total": 1}})
    broken = EventBatch(site_id="site-a", device_id="box-1", events=[tampered, chain.events[2]])

    acks = [ingest(engine, broken) for _ in range(3)]
    acks += [ingest(engine, chain.batch(2, 3), site_id="site-b") for _ in range(3)]

    assert [ack.error for ack in acks] == ["chain_broken"] * 3 + ["site_mismatch"] * 3
    assert rejects(engine) == ["chain_broken", "site_mismatch"]
    with engine.connect() as conn:
        seqs = conn.execute(sa.select(ingest_rejects.c.seq).order_by(ingest_rejects.c.id)).scalars().all()
    assert seqs == [2, 2]
