"""MessageHandler on real databases, without a broker: hostile payloads, refusals, throttled logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cloud.db.schema import events, ingest_rejects
from cloud.ingest.handler import MessageHandler
from protocol.chain import seal
from protocol.codec import decode, encode
from protocol.messages import Ack, EventBatch
from protocol.topics import device_topic
from tests.unit.hub.factories import T0, Chain, sale_payload

NOW = datetime(2025, 3, 14, 20, 0, tzinfo=UTC)
HANDLER_LOG = "cloud.ingest.handler"


class Acks:
    """Collects what the handler publishes, as the publish callback."""

    def __init__(self) -> None:
        self.sent: list[Ack] = []

    def __call__(self, topic: str, payload: bytes) -> bool:
        self.sent.append(decode(Ack, payload))
        return True


@pytest.fixture
def acks() -> Acks:
    return Acks()


@pytest.fixture
def handler(engine: sa.Engine, acks: Acks) -> MessageHandler:
    return MessageHandler(engine, acks, clock=lambda: NOW)


def send(handler: MessageHandler, payload: bytes | EventBatch, device_id: str = "box-1") -> None:
    data = payload if isinstance(payload, bytes) else encode(payload)
    handler.handle(device_topic("site-a", device_id, "events"), data)


def held(engine: sa.Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.device_id, events.c.seq).order_by(events.c.device_id, events.c.seq))
        return [(row.device_id, row.seq) for row in rows]


def rejects(engine: sa.Engine) -> list[tuple[str | None, str, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ingest_rejects.c.device_id, ingest_rejects.c.reason, ingest_rejects.c.seq).order_by(
                ingest_rejects.c.id
            )
        )
        return [(row.device_id, row.reason, row.seq) for row in rows]


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == HANDLER_LOG and record.levelno >= logging.WARNING]


def test_a_float_in_an_event_is_malformed_from_that_event_on(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(3)
    wire = json.loads(encode(chain.batch(1, 3)))
    wire["events"][1]["payload"]["total"] = 2850.5  # no canonical encoding: check_hash cannot even run

    for _ in range(3):
        send(handler, json.dumps(wire).encode())

    assert acks.sent == [Ack(device_id="box-1", acked_seq=1, error="malformed")] * 3
    assert held(engine) == [("box-1", 1)]
    assert rejects(engine) == [("box-1", "malformed", 2)]
    assert handler.counters.malformed == 3 and handler.counters.store_failures == 0
    logged = warnings(caplog)
    assert len(logged) == 1 and "float" in logged[0].getMessage() and logged[0].exc_info is None


def test_a_forged_event_id_clash_is_a_rejected_batch_not_a_database_outage(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    victim = Chain("site-a", "box-1")
    victim.sales(2)
    send(handler, victim.batch(1, 2))
    forged = seal(
        type="sale.recorded",
        device_id="box-2",
        seq=1,
        event_id=victim.events[0].event_id,  # UNIQUE in the events table
        occurred_at=T0,
        clock_ok=True,
        prev_hash="0" * 64,
        payload=sale_payload("site-a"),
    )
    honest = Chain("site-a", "box-3")
    honest.sales(1)

    send(handler, EventBatch(site_id="site-a", device_id="box-2", events=[forged]), "box-2")
    send(handler, EventBatch(site_id="site-a", device_id="box-2", events=[forged]), "box-2")
    send(handler, honest.batch(1, 1), "box-3")

    assert acks.sent == [
        Ack(device_id="box-1", acked_seq=2),
        Ack(device_id="box-2", acked_seq=0, error="rejected"),
        Ack(device_id="box-2", acked_seq=0, error="rejected"),
        Ack(device_id="box-3", acked_seq=1),
    ]
    assert held(engine) == [("box-1", 1), ("box-1", 2), ("box-3", 1)]
    assert rejects(engine) == [("box-2", "rejected", 1)]
    counters = handler.counters
    assert (counters.rejected, counters.store_failures, counters.acks_sent) == (2, 0, 4)
    assert not any("database unavailable" in record.getMessage() for record in warnings(caplog))


def test_a_repeated_chain_break_is_counted_each_time_and_logged_once(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    chain = Chain("site-a", "box-1")
    chain.sales(3)
    send(handler, chain.batch(1, 3))
    rebuilt = Chain("site-a", "box-1")
    rebuilt.sales(2)
    caplog.clear()

    for _ in range(4):
        send(handler, rebuilt.batch(1, 2))

    assert acks.sent[1:] == [Ack(device_id="box-1", acked_seq=3, error="chain_broken")] * 4
    assert handler.counters.chain_breaks == 4
    assert rejects(engine) == [("box-1", "chain_broken", 1)]
    assert len(warnings(caplog)) == 1


def test_a_nul_character_is_answered_never_taken_for_a_database_outage(
    handler: MessageHandler, acks: Acks, engine: sa.Engine
) -> None:
    # PostgreSQL's JSONB cannot hold \u0000 (a DataError); SQLite can. Either way the box gets an answer.
    odd = seal(type="sale.recorded", device_id="box-1", seq=1, event_id=Chain("site-a", "box-9").add().event_id,
               occurred_at=T0, clock_ok=True, prev_hash="0" * 64,
               payload={**sale_payload("site-a"), "note": "pop\u0000corn"})
    honest = Chain("site-a", "box-3")
    honest.sales(1)
    send(handler, EventBatch(site_id="site-a", device_id="box-1", events=[odd]))
    send(handler, honest.batch(1, 1), "box-3")
    assert len(acks.sent) == 2 and acks.sent[1] == Ack(device_id="box-3", acked_seq=1)
    assert acks.sent[0] in (Ack(device_id="box-1", acked_seq=1), Ack(device_id="box-1", acked_seq=0, error="rejected"))
    assert handler.counters.store_failures == 0
