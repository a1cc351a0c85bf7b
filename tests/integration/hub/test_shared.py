"""Several hub processes on one MQTT 5 shared subscription, one PostgreSQL: every event exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.db.engine import make_engine, migrate
from cloud.db.schema import box_office, devices, events
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings
from protocol.messages import Ack
from protocol.topics import device_topic
from tests.integration.hub.box import FakeBox
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for
from tests.unit.hub.factories import Chain

DEVICES = 4
BATCHES_PER_DEVICE = 5
EVENTS_PER_BATCH = 6


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_two_workers_on_one_shared_group_store_every_event_once(
    mosquitto: Mosquitto, postgres_url: str, pg_engine: sa.Engine
) -> None:
    chains = {f"box-{n}": Chain(f"site-{n % 2}", f"box-{n}") for n in range(DEVICES)}
    for chain in chains.values():
        chain.register(pg_engine)
        chain.sales(BATCHES_PER_DEVICE * EVENTS_PER_BATCH)
    total = DEVICES * BATCHES_PER_DEVICE * EVENTS_PER_BATCH
    engines = [make_engine(postgres_url) for _ in range(2)]
    workers = [
        IngestWorker(
            HubSettings(database_url=postgres_url, mqtt_host=mosquitto.host, mqtt_port=mosquitto.port),
            engines[n],
        )
        for n in range(2)
    ]
    box = FakeBox(mosquitto.host, mosquitto.port)

    def publish(chain: Chain, first: int) -> None:
        last = min(first + EVENTS_PER_BATCH - 1, len(chain.events))
        box.publish(device_topic(chain.site_id, chain.device_id, "events"), chain.batch(first, last))

    def resend(ack: Ack) -> None:
        # What a box does: a batch that arrived before its predecessor is sent again from the gap.
        if ack.resend_from is not None:
            chain = chains[ack.device_id]
            box.client.publish(
                device_topic(chain.site_id, chain.device_id, "events"),
                chain.batch(
                    ack.resend_from, min(ack.resend_from + EVENTS_PER_BATCH - 1, len(chain.events))
                ).model_dump_json(by_alias=True),
                qos=1,
            )

    box.on_ack = resend
    try:
        for worker in workers:
            worker.start()
        wait_for(
            lambda: all(worker.subscribed for worker in workers), timeout=15, what="both workers subscribed"
        )
        for first in range(1, BATCHES_PER_DEVICE * EVENTS_PER_BATCH + 1, EVENTS_PER_BATCH):
            for chain in chains.values():
                publish(chain, first)

        def all_acked() -> bool:
            return all(
                any(ack.acked_seq == len(chain.events) for ack in box.acks_of(device))
                for device, chain in chains.items()
            )

        wait_for(all_acked, timeout=60, what="every device fully acked")
    finally:
        box.close()
        for worker in workers:
            worker.stop()
        for engine in engines:
            engine.dispose()

    with pg_engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(events.c.event_id)))).one()
        sales = conn.execute(sa.select(sa.func.sum(box_office.c.sales))).scalar_one()
        heads = dict(conn.execute(sa.select(devices.c.device_id, devices.c.last_seq)).all())
    assert tuple(stored) == (total, total)
    assert sales == total
    assert heads == {device: len(chain.events) for device, chain in chains.items()}
    # The load was shared: both workers received batches.
    assert all(worker.counters.received > 0 for worker in workers)


def test_healthz_reports_the_live_worker(mosquitto: Mosquitto, tmp_path: object) -> None:
    from cloud.api.app import create_app
    from cloud.auth import hash_password
    from cloud.db.users import add_user
    from tests.unit.hub.factories import T0

    settings = HubSettings(
        database_url=f"sqlite:///{tmp_path}/hub.db", mqtt_host=mosquitto.host, mqtt_port=mosquitto.port
    )
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.engine.begin() as conn:
            add_user(conn, username="ops", password_hash=hash_password("ops password 1"), role="admin", created_at=T0)
        wait_for(lambda: app.state.worker.subscribed, timeout=15, what="the app's ingest worker")
        healthz = client.get("/healthz").json()
        body = client.get("/api/v1/health", auth=("ops", "ops password 1")).json()
    assert healthz == {"status": "up"}
    assert body["status"] == "up" and body["mqtt_connected"] is True and body["ingest"] is True
    assert set(body["counters"]) >= {
        "received",
        "stored",
        "duplicates",
        "malformed",
        "gaps",
        "store_failures",
        "acks_sent",
    }
