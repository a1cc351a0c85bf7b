"""MessageHandler on real databases, without a broker: forgeries, strangers, hostile payloads, refusals,
throttled logs. What a refused message leaves behind is checked in every table and every log line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db.devices import list_conflicts, revoke_device
from cloud.db.schema import devices, events, ingest_rejects, sites
from cloud.db.sites import DeviceView, list_sites
from cloud.ingest.conflicts import resolve_conflicts
from cloud.ingest.handler import MessageHandler
from protocol.chain import seal
from protocol.codec import decode, encode
from protocol.events import Event
from protocol.messages import Ack, DeviceStatus, EventBatch, LostEvent
from protocol.signing import sign_batch
from protocol.topics import device_topic
from tests.unit.hub.factories import T0, Chain, sale_payload
from tests.unit.hub.test_store import database_text

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


@pytest.fixture
def box(engine: sa.Engine) -> Chain:
    """The genuine box-1 of site-a, registered at the hub, with two sales already acked."""
    chain = Chain("site-a", "box-1")
    chain.register(engine)
    chain.sales(2)
    return chain


def forged_next(box: Chain, **payload: object) -> Event:
    """What a stranger who read the box's last hash can build: the next event, correctly hashed."""
    return seal(type="sale.recorded", device_id="box-1", seq=len(box.events) + 1,
                event_id=Chain("x", "y").add().event_id, occurred_at=T0, clock_ok=True, prev_hash=box.head,
                payload={**sale_payload("site-a"), **payload})


def test_a_forged_event_is_refused_and_the_real_box_is_not_delayed(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    send(handler, box.batch(1, 2))
    forged = forged_next(box, total=10_000_000)
    unsigned = EventBatch(site_id="site-a", device_id="box-1", events=[forged])
    stranger_signed = sign_batch(unsigned, Ed25519PrivateKey.generate())
    wrong_hash = EventBatch(site_id="site-a", device_id="box-1",
                            events=[forged.model_copy(update={"hash": "0" * 64})])

    for attack in (unsigned, stranger_signed, wrong_hash, stranger_signed):
        send(handler, attack)
    box.sales(1)
    send(handler, box.batch(3, 3))

    assert acks.sent == [box.ack(2), box.ack(3)]
    assert held(engine) == [("box-1", 1), ("box-1", 2), ("box-1", 3)]
    with engine.connect() as conn:
        device = conn.execute(sa.select(devices)).one()
    assert device.chain_error is None and device.last_hash == box.head
    assert handler.counters.unauthenticated == 4
    with engine.connect() as conn:
        refusals = conn.execute(sa.select(ingest_rejects.c.reason, ingest_rejects.c.count)).all()
    # Refusals before authentication reach the database once a minute per device and reason: a flood
    # grows no table and costs no write per message.
    assert [tuple(row) for row in refusals] == [("bad_signature", 1)]
    assert len(warnings(caplog)) == 1


def test_an_unregistered_or_revoked_device_creates_nothing(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain
) -> None:
    newcomer = Chain("site-new", "box-new")
    newcomer.sales(2)
    handler.handle(device_topic("site-new", "box-new", "events"), encode(newcomer.batch(1, 2)))
    handler.handle(device_topic("site-new", "box-new", "status"), encode(newcomer.status(backlog=2)))
    with engine.begin() as conn:
        revoke_device(conn, device_id="box-1", at=NOW)
    send(handler, box.batch(1, 2))

    assert acks.sent == []
    assert held(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sites.c.site_id)).scalars().all() == ["site-a"]
        assert conn.execute(sa.select(devices.c.device_id)).scalars().all() == ["box-1"]
    # The unregistered device leaves no row either; the revoked one (still in the registry) does.
    assert [(device, reason) for device, reason, _ in rejects(engine)] == [("box-1", "revoked_device")]
    assert handler.counters.unregistered == 3


def test_a_batch_on_another_sites_topic_is_refused_without_an_ack(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain
) -> None:
    handler.handle(device_topic("site-b", "box-1", "events"), encode(box.batch(1, 2)))
    handler.handle(device_topic("site-b", "box-1", "events"), encode(box.batch(1, 2, site_id="site-b")))

    assert acks.sent == [] and held(engine) == []
    assert [reason for _, reason, _ in rejects(engine)] == ["site_mismatch", "device_site_mismatch"]


CARD = "4111111111111111"


def test_a_card_number_in_a_refused_message_is_kept_nowhere(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"{CARD} 12/29 123"
    forged = EventBatch(site_id="site-a", device_id="box-1", events=[forged_next(box, cashier_id=secret)])
    wire = json.loads(encode(box.batch(1, 2)))
    wire["events"][0]["payload"]["cashier_id"] = secret + "\u0001"
    box.add({**sale_payload("site-a"), "cashier_id": secret + "\u0001"})  # genuine, signed, but invalid

    send(handler, forged)
    send(handler, json.dumps(wire).encode())
    send(handler, json.dumps({"site_id": "site-a", "device_id": "box-1", "events": secret}).encode())
    send(handler, box.batch(1, 3))

    assert acks.sent == [box.ack(3)]
    everything = database_text(engine) + "\n".join(record.getMessage() for record in caplog.records)
    assert CARD not in everything and "12/29" not in everything
    assert "cashier_id" in everything  # the refusal names the field


def test_statuses_must_be_signed_and_a_replayed_one_is_ignored(
    handler: MessageHandler, engine: sa.Engine, box: Chain
) -> None:
    status_topic = device_topic("site-a", "box-1", "status")
    old = box.status(sent_at=NOW - timedelta(minutes=5), last_seq=2, backlog=2)
    new = box.status(sent_at=NOW, last_seq=7, backlog=1)
    handler.handle(status_topic, encode(new))
    handler.handle(status_topic, encode(old))
    handler.handle(status_topic, encode(new.model_copy(update={"backlog": 0})))  # altered after signing
    forged_offline = DeviceStatus(site_id="site-a", device_id="box-1", online=False)
    handler.handle(status_topic, encode(forged_offline))

    view = sites_view(engine)
    assert (view.online, view.backlog) == (True, 1)
    assert handler.counters.stale_statuses == 1 and handler.counters.unauthenticated == 2

    handler.handle(status_topic, encode(box.status(online=False, last_seq=3, backlog=1)))  # the last will
    view = sites_view(engine)
    assert view.online is False and view.backlog == 7  # what the box last said it held, none acked yet


def sites_view(engine: sa.Engine) -> DeviceView:
    with engine.connect() as conn:
        return list_sites(conn, now=NOW, offline_after=timedelta(minutes=5))[0].devices[0]


def test_a_repeated_conflict_is_counted_each_time_and_logged_once(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    box.sales(1)
    send(handler, box.batch(1, 3))
    rebuilt = Chain("site-a", "box-1", key=box.key)
    rebuilt.sales(2)
    caplog.clear()

    for _ in range(4):
        send(handler, rebuilt.batch(1, 2))

    assert acks.sent[1:] == [
        box.ack(0, error="chain_conflict", refused_seq=1, refused_hash=rebuilt.events[0].hash)
    ] * 4
    assert handler.counters.conflicts == 4
    assert rejects(engine) == [("box-1", "chain_conflict", 1)]
    assert len(warnings(caplog)) == 1


def test_an_event_id_clash_is_a_rejected_batch_not_a_database_outage(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    send(handler, box.batch(1, 2))
    other = Chain("site-a", "box-2")
    other.register(engine)
    clash = seal(type="sale.recorded", device_id="box-2", seq=1, event_id=box.events[0].event_id,  # UNIQUE
                 occurred_at=T0, clock_ok=True, prev_hash="0" * 64, payload=sale_payload("site-a"))
    other.events.append(clash)
    honest = Chain("site-a", "box-3")
    honest.register(engine)
    honest.sales(1)

    send(handler, other.batch(1, 1), "box-2")
    send(handler, other.batch(1, 1), "box-2")
    send(handler, honest.batch(1, 1), "box-3")

    assert acks.sent == [
        box.ack(2),
        other.ack(0, error="rejected", refused_seq=1, refused_hash=clash.hash),
        other.ack(0, error="rejected", refused_seq=1, refused_hash=clash.hash),
        honest.ack(1),
    ]
    assert held(engine) == [("box-1", 1), ("box-1", 2), ("box-3", 1)]
    assert rejects(engine) == [("box-2", "rejected", 1)]
    counters = handler.counters
    assert (counters.rejected, counters.store_failures, counters.acks_sent) == (2, 0, 4)
    assert not any("database unavailable" in record.getMessage() for record in warnings(caplog))


def test_a_nul_character_is_answered_never_taken_for_a_database_outage(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain
) -> None:
    # PostgreSQL's JSONB cannot hold \u0000 (a DataError); SQLite can. Either way the box gets an answer.
    odd = Chain("site-a", "box-5")
    odd.register(engine)
    odd.add({**sale_payload("site-a"), "note": "pop\u0000corn"})
    honest = Chain("site-a", "box-3")
    honest.register(engine)
    honest.sales(1)
    send(handler, odd.batch(1, 1), "box-5")
    send(handler, honest.batch(1, 1), "box-3")
    assert len(acks.sent) == 2 and acks.sent[1] == honest.ack(1)
    assert acks.sent[0] in (odd.ack(1), odd.ack(0, error="rejected", refused_seq=1, refused_hash=odd.head))
    assert handler.counters.store_failures == 0


def test_a_float_no_box_could_sign_is_malformed_and_unanswered(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain
) -> None:
    wire = json.loads(encode(box.batch(1, 2)))
    wire["events"][1]["payload"]["total"] = 2850.5  # no canonical encoding: the hash cannot even be checked

    send(handler, json.dumps(wire).encode())

    assert acks.sent == [] and held(engine) == []
    assert handler.counters.malformed == 1


def test_a_replayed_conflict_already_settled_gets_no_answer(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain
) -> None:
    send(handler, box.batch(1, 2))
    clone = Chain("site-a", "box-1", key=box.key, events=list(box.events[:1]))
    clone.sales(1)
    send(handler, clone.batch(1, 2))
    with engine.begin() as conn:
        resolve_conflicts(conn, device_id="box-1", keep="hub", at=NOW, note=None)
    answered = len(acks.sent)

    for _ in range(3):  # anyone who recorded the clone's batch replays it
        send(handler, clone.batch(1, 2))
    box.sales(1)
    send(handler, box.batch(3, 3))

    assert acks.sent[answered:] == [box.ack(3)]  # no error reached the genuine box's ack topic
    assert handler.counters.replays == 3


def test_a_heartbeat_replayed_after_the_last_will_does_not_bring_a_dead_box_back(
    handler: MessageHandler, engine: sa.Engine, box: Chain
) -> None:
    status_topic = device_topic("site-a", "box-1", "status")
    will = box.status(online=False, sent_at=NOW - timedelta(hours=3))  # written when the box connected
    heartbeats = [box.status(sent_at=NOW - timedelta(hours=3) + timedelta(minutes=n), last_seq=2) for n in (1, 2)]
    for heartbeat in heartbeats:
        handler.handle(status_topic, encode(heartbeat))
    handler.handle(status_topic, encode(will))  # the box died; the broker published its will

    for replayed in (*heartbeats, heartbeats[-1]):
        handler.handle(status_topic, encode(replayed))

    assert sites_view(engine).online is False
    assert handler.counters.stale_statuses == 3


def test_a_flood_of_refusals_costs_one_row_a_minute_and_strangers_none(
    handler: MessageHandler, engine: sa.Engine, box: Chain
) -> None:
    forged = EventBatch(site_id="site-a", device_id="box-1", events=[forged_next(box)])
    for n in range(200):
        send(handler, forged)
        handler.handle(device_topic("site-a", f"made-up-{n}", "events"), b"garbage")

    with engine.connect() as conn:
        rows = conn.execute(sa.select(ingest_rejects.c.device_id, ingest_rejects.c.reason)).all()
    assert [tuple(row) for row in rows] == [("box-1", "bad_signature")]
    assert handler.counters.unauthenticated == 200 and handler.counters.malformed == 200


def test_an_old_last_will_replayed_after_the_box_reconnected_changes_nothing(
    handler: MessageHandler, engine: sa.Engine, box: Chain
) -> None:
    status_topic = device_topic("site-a", "box-1", "status")
    old_will = box.status(online=False, session="aaaa0001", sent_at=NOW - timedelta(days=3))
    handler.handle(status_topic, encode(box.status(session="bbbb0002", sent_at=NOW)))

    handler.handle(status_topic, encode(old_will))

    assert sites_view(engine).online is True and handler.counters.stale_statuses == 1
    handler.handle(status_topic, encode(box.status(online=False, session="bbbb0002", sent_at=NOW)))
    assert sites_view(engine).online is False  # the will of the connection last heard from counts


def test_new_signed_events_show_a_box_online_whatever_its_clock_says(
    handler: MessageHandler, engine: sa.Engine, box: Chain
) -> None:
    status_topic = device_topic("site-a", "box-1", "status")
    handler.handle(status_topic, encode(box.status(session="aaaa0001", sent_at=NOW)))
    handler.handle(status_topic, encode(box.status(online=False, session="aaaa0001", sent_at=NOW)))
    # It reboots without a real-time clock: its heartbeats are stamped in the past, so they count as stale.
    handler.handle(status_topic, encode(box.status(session="cccc0003", sent_at=NOW - timedelta(hours=5))))
    assert sites_view(engine).online is False

    send(handler, box.batch(1, 2))

    assert sites_view(engine).online is True


def test_a_stolen_key_cannot_erase_the_boxs_sales_with_nameless_lost_events(
    handler: MessageHandler, acks: Acks, engine: sa.Engine, box: Chain
) -> None:
    send(handler, box.batch(1, 2))
    box.sales(3)  # the genuine box's sales 3 to 5, not yet sent
    thief = EventBatch(site_id="site-a", device_id="box-1", events=[],
                       lost=[LostEvent(seq=seq, hash=None, reason="unreadable") for seq in (3, 4, 5)])
    send(handler, sign_batch(thief, box.key))
    assert acks.sent[-1] == box.ack(0).model_copy(update={"acked_seq": 5})  # held as gaps, names no hash

    send(handler, box.batch(3, 5))  # the genuine box's own events arrive where the gaps are

    assert acks.sent[-1].error == "chain_conflict" and acks.sent[-1].refused_seq == 3
    with engine.connect() as conn:
        assert [c.seq for c in list_conflicts(conn)] == [3]
    with engine.begin() as conn:  # the owner takes the box's side: the gaps go, its events come in
        resolve_conflicts(conn, device_id="box-1", keep="box", at=NOW, note=None)
    send(handler, box.batch(3, 5))
    assert acks.sent[-1] == box.ack(5) and held(engine) == [("box-1", n) for n in range(1, 6)]
