"""The ingest worker against a real Mosquitto and a real database: acks, rollups, bad input, status."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db.schema import box_office, events, ingest_rejects
from cloud.db.sites import list_sites
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings
from protocol.codec import encode
from protocol.topics import device_topic
from tests.integration.hub.box import FakeBox
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain

EVENTS = device_topic("site-a", "box-1", "events")
STATUS = device_topic("site-a", "box-1", "status")


def start_worker(broker: Mosquitto, engine: sa.Engine, **settings: object) -> IngestWorker:
    url = engine.url.render_as_string(hide_password=False)
    hub = HubSettings(database_url=url, mqtt_host=broker.host, mqtt_port=broker.port, **settings)  # type: ignore[arg-type]
    worker = IngestWorker(hub, engine)
    worker.start()
    wait_for(lambda: worker.subscribed, timeout=15, what="the worker's subscriptions")
    return worker


@pytest.fixture
def worker(mosquitto: Mosquitto, engine: sa.Engine) -> Iterator[IngestWorker]:
    worker = start_worker(mosquitto, engine)
    yield worker
    worker.stop()


@pytest.fixture
def box(mosquitto: Mosquitto) -> Iterator[FakeBox]:
    box = FakeBox(mosquitto.host, mosquitto.port)
    yield box
    box.close()


def registered(engine: sa.Engine) -> Chain:
    """site-a's box-1, its key registered at the hub."""
    chain = Chain("site-a", "box-1")
    chain.register(engine)
    return chain


def sales_held(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(box_office.c.sales), 0))).scalar_one())


def test_batch_is_stored_rolled_up_and_acked(worker: IngestWorker, box: FakeBox, engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(5)

    box.publish(EVENTS, chain.batch(1, 5))

    acks = wait_for(lambda: box.acks_of("box-1"), timeout=10, what="the hub's ack")
    assert acks == [chain.ack(5)]
    assert sales_held(engine) == 5
    box.publish(EVENTS, chain.batch(1, 5))  # redelivery: acked again, counted once
    wait_for(lambda: len(box.acks_of("box-1")) == 2, timeout=10, what="the second ack")
    assert box.acks_of("box-1")[1] == chain.ack(5)
    assert sales_held(engine) == 5
    counters = worker.counters.as_dict()
    assert (counters["received"], counters["stored"], counters["duplicates"], counters["acks_sent"]) == (
        2,
        5,
        5,
        2,
    )


def test_gap_is_acked_with_resend_from(worker: IngestWorker, box: FakeBox, engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(4)

    box.publish(EVENTS, chain.batch(3, 4))

    acks = wait_for(lambda: box.acks_of("box-1"), timeout=10, what="the hub's ack")
    assert acks == [chain.ack(0, resend_from=1)]
    assert worker.counters.gaps == 1


def test_garbage_is_counted_and_the_next_batch_still_ingested(
    worker: IngestWorker, box: FakeBox, engine: sa.Engine
) -> None:
    chain = registered(engine)
    chain.sales(2)

    box.publish(EVENTS, b"\x00\xff garbage \x9c")
    box.publish(EVENTS, b'{"schema": "marquee.batch/1", "site_id": "site-a", "events": "nope"}')
    box.publish(EVENTS, chain.batch(1, 2))

    wait_for(lambda: box.acks_of("box-1"), timeout=10, what="the ack of the good batch")
    assert box.acks_of("box-1") == [chain.ack(2)]
    assert worker.counters.malformed == 2
    assert sales_held(engine) == 2
    with engine.connect() as conn:
        reasons = conn.execute(sa.select(ingest_rejects.c.reason, ingest_rejects.c.device_id)).all()
    assert [tuple(row) for row in reasons] == [("malformed", "box-1")]  # one row a minute per kind


def test_a_forged_event_gets_no_ack_and_the_real_batch_does(
    worker: IngestWorker, box: FakeBox, engine: sa.Engine
) -> None:
    chain = registered(engine)
    chain.sales(3)
    forger = Chain("site-a", "box-1", events=list(chain.events))  # knows the chain, not the key
    wire = json.loads(encode(chain.batch(1, 3)))
    wire["events"][2]["payload"]["total"] = 0.5

    box.publish(EVENTS, json.dumps(wire).encode())
    box.publish(EVENTS, forger.batch(1, 3))
    box.publish(EVENTS, chain.batch(1, 3))

    acks = wait_for(lambda: box.acks_of("box-1"), timeout=10, what="the hub's ack")
    assert acks == [chain.ack(3)]
    assert (worker.counters.malformed, worker.counters.unauthenticated, sales_held(engine)) == (1, 1, 3)
    with engine.connect() as conn:
        reasons = conn.execute(sa.select(ingest_rejects.c.reason)).scalars().all()
    assert sorted(reasons) == ["bad_signature", "malformed"]


def test_status_marks_a_site_online_and_the_last_will_offline(
    worker: IngestWorker, box: FakeBox, engine: sa.Engine
) -> None:
    def site_online() -> bool | None:
        with engine.connect() as conn:
            views = list_sites(conn, now=datetime.now(UTC), offline_after=timedelta(seconds=90))
        return views[0].online if views else None

    chain = registered(engine)
    box.publish(STATUS, chain.status(sent_at=datetime.now(UTC), backlog=3), retain=True)
    wait_for(lambda: site_online() is True, timeout=10, what="site-a online")

    # What the broker publishes, retained, when the box vanishes without a goodbye.
    box.publish(STATUS, chain.status(online=False), retain=True)
    wait_for(lambda: site_online() is False, timeout=10, what="site-a offline")
    assert worker.counters.statuses == 2
    box.publish(STATUS, b"", retain=True)  # clear the retained message


def test_no_ack_while_the_database_fails(worker: IngestWorker, box: FakeBox, engine: sa.Engine) -> None:
    chain = registered(engine)
    chain.sales(3)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events RENAME TO events_away"))

    box.publish(EVENTS, chain.batch(1, 3))
    wait_for(lambda: worker.counters.store_failures >= 1, timeout=15, what="a counted store failure")

    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events_away RENAME TO events"))
    box.publish(EVENTS, chain.batch(1, 3))  # the box resends what was never acked
    wait_for(lambda: box.acks_of("box-1"), timeout=15, what="the ack once the database is back")
    assert box.acks_of("box-1") == [chain.ack(3)]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 3


def test_worker_resubscribes_after_a_broker_restart(
    mosquitto: Mosquitto, worker: IngestWorker, engine: sa.Engine
) -> None:
    mosquitto.restart()
    wait_for(lambda: worker.subscribed, timeout=30, what="the worker back and subscribed")
    box = FakeBox(mosquitto.host, mosquitto.port, client_id="box-after-restart")
    try:
        chain = registered(engine)
        chain.sales(1)
        box.publish(EVENTS, chain.batch(1, 1))
        wait_for(lambda: box.acks_of("box-1"), timeout=10, what="an ack after the restart")
    finally:
        box.close()
    assert sales_held(engine) == 1


def test_plain_subscription_with_mqtt_311(mosquitto: Mosquitto, engine: sa.Engine, box: FakeBox) -> None:
    worker = start_worker(mosquitto, engine, mqtt_protocol="3.1.1")
    try:
        assert worker.subscriptions() == ["marquee/v1/+/+/events", "marquee/v1/+/+/status",
                                          "marquee/v1/+/+/directory"]
        chain = registered(engine)
        chain.sales(2)
        box.publish(EVENTS, chain.batch(1, 2))
        acks = wait_for(lambda: box.acks_of("box-1"), timeout=10, what="the ack over MQTT 3.1.1")
    finally:
        worker.stop()
    assert acks == [chain.ack(2)]


def test_the_worker_socket_has_nagle_disabled(worker: IngestWorker) -> None:
    # Nagle's algorithm turns each ack round trip into ~88 ms (see DESIGN.md, known traps).
    sock = worker._client.socket() if worker._client is not None else None  # noqa: SLF001 - no public handle
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_box_that_vanishes_goes_offline_through_its_last_will(
    mosquitto: Mosquitto, worker: IngestWorker, engine: sa.Engine
) -> None:
    def device_online() -> bool | None:
        with engine.connect() as conn:
            views = list_sites(conn, now=datetime.now(UTC), offline_after=timedelta(seconds=90))
        return views[0].devices[0].online if views and views[0].devices else None

    chain = registered(engine)
    offline = chain.status(online=False)
    online = chain.status(sent_at=datetime.now(UTC))
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="box-1")
    client.will_set(STATUS, encode(offline), qos=1, retain=True)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    client.publish(STATUS, encode(online), qos=1, retain=True).wait_for_publish(timeout=10)
    wait_for(lambda: device_online() is True, timeout=10, what="box-1 online")

    # Pull the plug: no DISCONNECT packet, so the broker publishes the will.
    client.loop_stop()
    sock = client.socket()
    assert sock is not None
    sock.close()

    wait_for(lambda: device_online() is False, timeout=10, what="box-1 offline by its last will")
