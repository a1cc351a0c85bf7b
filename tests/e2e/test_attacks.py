"""A stranger on the broker, as the outside probe was: forged events, wrong hashes, unregistered boxes,
card numbers in refused payloads. Real `marquee-edge run`, real `marquee-hub serve`, a real Mosquitto
that lets anyone in (the worst case: a broker without ACLs)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.db.schema import metadata
from protocol.chain import seal
from protocol.codec import decode, encode
from protocol.events import Event
from protocol.ids import uuid7
from protocol.messages import DeviceStatus, EventBatch
from protocol.signing import sign_batch, sign_status
from protocol.topics import device_topic
from tests.e2e.conftest import Site
from tests.e2e.test_card_to_hub import rows_by_key, sale
from tests.support.brokers import Mosquitto
from tests.support.processes import Hub, edge_status
from tests.support.waiting import wait_for

CARD = "4111111111111111"
EVENTS = device_topic("riverside", "riverside-box1", "events")


class Stranger:
    """Anyone with a client: reads what the box publishes and publishes what it likes."""

    def __init__(self, broker: Mosquitto) -> None:
        self.seen: list[Event] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="stranger",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda client, *_: client.subscribe(EVENTS, qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_for(self._ready.is_set, timeout=10, what="the stranger's subscription")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        batch = decode(EventBatch, msg.payload)
        with self._lock:
            self.seen.extend(batch.events)

    def last_event(self) -> Event | None:
        with self._lock:
            return max(self.seen, key=lambda event: event.seq) if self.seen else None

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def forged_after(last: Event, **payload: Any) -> Event:
    """The next event of the box's chain, correctly hashed: all an unkeyed chain asked for."""
    return seal(type="sale.recorded", device_id=last.device_id, seq=last.seq + 1,
                event_id=uuid7(int(datetime.now(UTC).timestamp() * 1000), os.urandom(10)),
                occurred_at=datetime.now(UTC), clock_ok=True, prev_hash=last.hash,
                payload={**last.payload, "sale_id": "FORGED", **payload})


def hub_holdings(hub: Hub) -> str:
    """Everything the hub keeps: every row of every table (PostgreSQL) or the raw files (SQLite), and its log."""
    if hub.database_url.startswith("sqlite"):
        folder = Path(hub.database_url.removeprefix("sqlite:///")).parent
        kept = b"".join(path.read_bytes() for path in folder.glob("hub.db*")).decode("latin-1")
    else:
        engine = sa.create_engine(hub.database_url)
        try:
            with engine.connect() as conn:
                kept = "\n".join(str(row) for table in metadata.sorted_tables for row in conn.execute(sa.select(table)))
        finally:
            engine.dispose()
    return kept + (hub.program.log() if hub.program else "")


@pytest.mark.e2e
@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)  # a file to grep; the refusals happen before the database
def test_forgeries_are_refused_and_the_real_box_is_not_delayed(
    hub: Hub, make_site: Callable[..., Site], mosquitto: Mosquitto
) -> None:
    site = make_site()
    stranger = Stranger(mosquitto)
    try:
        assert site.pos.sale(sale("S-1")).status == "ok"
        last = wait_for(stranger.last_event, timeout=20, what="the box's first batch, read off the broker")
        wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=20, what="the first sale acked")

        forged = forged_after(last, total=10_000_000,
                              items=[{**last.payload["items"][0], "quantity": 1, "unit_price": 10_000_000}])
        stranger.publish(EVENTS, encode(EventBatch(site_id="riverside", device_id="riverside-box1",
                                                   events=[forged])))
        stranger.publish(EVENTS, encode(sign_batch(EventBatch(site_id="riverside", device_id="riverside-box1",
                                                              events=[forged]), Ed25519PrivateKey.generate())))
        wrong_hash = forged.model_copy(update={"hash": "0" * 64})
        stranger.publish(EVENTS, encode(EventBatch(site_id="riverside", device_id="riverside-box1",
                                                   events=[wrong_hash])))
        # The stranger's garbage names a card, with expiry and CVV, where a cashier's name would go.
        carded = forged_after(last, cashier_id=f"{CARD} 12/29 123")
        stranger.publish(EVENTS, encode(EventBatch(site_id="riverside", device_id="riverside-box1",
                                                   events=[carded])))
        raw = json.loads(encode(EventBatch(site_id="riverside", device_id="riverside-box1", events=[carded])))
        raw["events"][0]["payload"]["cashier_id"] = f"{CARD}\u0001"
        stranger.publish(EVENTS, json.dumps(raw).encode())

        wait_for(lambda: hub.counters()["unauthenticated"] >= 5, timeout=15,
                 what="the hub counting the five forgeries as refused")
        sold_at = datetime.now(UTC)
        assert site.pos.sale(sale("S-2")).status == "ok"
        wait_for(lambda: rows_by_key(hub, "site")["riverside"]["sales"] == 2, timeout=15,
                 what="the real box's next sale at the hub")
        took = (datetime.now(UTC) - sold_at).total_seconds()
    finally:
        stranger.close()
    assert took < 10  # at once: not after a refusal's 5-minute hold-back
    rows = rows_by_key(hub, "site")["riverside"]
    assert rows["revenue"] == 2 * 3150  # two real sales; the forged 10,000,000 is nowhere
    device = next(s for s in hub.get("/api/v1/sites") if s["site_id"] == "riverside")["devices"][0]
    assert device["chain_ok"] and device["last_seq"] == 2 and device["conflict"] is None
    wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=20, what="the real box fully acked")
    kept = hub_holdings(hub)
    assert CARD not in kept and "12/29" not in kept


@pytest.mark.e2e
@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)  # a file to grep; the refusals happen before the database
def test_an_unregistered_box_creates_nothing_at_the_hub(hub: Hub, make_site: Callable[..., Site],
                                                        mosquitto: Mosquitto) -> None:
    stray = make_site("phantom", register=False)  # a real box, never registered
    known = make_site("riverside")
    assert stray.pos.sale(sale("S-1")).status == "ok"  # its tills are answered all the same
    assert known.pos.sale(sale("S-1")).status == "ok"
    stranger = Stranger(mosquitto)
    try:
        key = Ed25519PrivateKey.generate()
        status = sign_status(DeviceStatus(site_id="ghost", device_id="ghost-box1", online=True,
                                          sent_at=datetime.now(UTC)), key)
        stranger.publish(device_topic("ghost", "ghost-box1", "status"), encode(status))
        wait_for(lambda: rows_by_key(hub, "site").get("riverside"), timeout=20, what="the registered box's sale")
        wait_for(lambda: hub.counters()["unregistered"] >= 2, timeout=20,
                 what="the unregistered box and the ghost refused")
    finally:
        stranger.close()
    assert [s["site_id"] for s in hub.get("/api/v1/sites")] == ["riverside"]
    assert set(rows_by_key(hub, "site")) == {"riverside"}
    assert edge_status(stray.config)["backlog"] == 1  # the box keeps its sale until it is registered
