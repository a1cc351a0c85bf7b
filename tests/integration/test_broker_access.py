"""The broker lets nobody in but the chain's boxes and hubs, and a box only at its own topics.

Runs a real Mosquitto with deploy/mosquitto/marquee.acl and a password file made here.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db.devices import register_device
from cloud.db.engine import make_engine, migrate
from cloud.db.schema import events
from cloud.ingest.worker import IngestWorker
from cloud.settings import HubSettings
from edge.sync.uplink import Uplink
from protocol.codec import encode
from protocol.directory import DirectoryRequest
from protocol.messages import DeviceStatus, EventBatch
from protocol.signing import public_key_text, sign_batch
from protocol.topics import device_topic
from tests.edge_support import edge_settings, new_journal
from tests.integration.edge.test_uplink import append
from tests.support.brokers import Mosquitto, free_port
from tests.support.waiting import wait_for
from tests.unit.protocol.factories import chain

ROOT = Path(__file__).resolve().parents[2]
USERS = {"marquee-hub": "hub-secret-0001", "riverside-box1": "box-secret-0001", "harbour-box1": "box-secret-0002"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    passwd = workdir / "marquee.passwd"
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for user, password in USERS.items():
        subprocess.run([tool, "-b", *(["-c"] if not passwd.exists() else []), str(passwd), user, password],
                       check=True, capture_output=True)
    passwd.chmod(0o600)
    acl = workdir / "marquee.acl"
    acl.write_text((ROOT / "deploy" / "mosquitto" / "marquee.acl").read_text())
    acl.chmod(0o600)
    b = Mosquitto(port=free_port(), workdir=workdir,
                  extra_config=["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"])
    b.start()
    yield b
    b.stop()


class Client:
    """A paho client that records what the broker answered."""

    def __init__(self, broker: Mosquitto, username: str | None = None, password: str | None = None, *,
                 client_id: str = "") -> None:
        self.connack: Any = None
        self.pubacks: dict[int, Any] = {}
        self.subacks: dict[int, list[Any]] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: setattr(self, "connack", rc)
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.__setitem__(mid, rcs)
        self.client.on_message = lambda c, u, msg: self.messages.append(msg)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, timeout=10, what="the broker's CONNACK")

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        return wait_for(lambda: self.pubacks.get(info.mid), timeout=10, what="a PUBACK")

    def subscribe(self, topic: str) -> Any:
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_for(lambda: self.subacks.get(mid), timeout=10, what="a SUBACK")[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_nobody_without_a_password_gets_in(broker: Mosquitto) -> None:
    for username, password in [(None, None), ("riverside-box1", "wrong-password")]:
        client = Client(broker, username, password)
        assert client.connack.is_failure, client.connack
        client.close()


def test_boxes_reach_the_hub_and_cannot_speak_for_each_other(tmp_path: Path, broker: Mosquitto) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    migrate(engine)
    hub = IngestWorker(HubSettings(database_url=url, mqtt_port=broker.port, mqtt_username="marquee-hub",
                                   mqtt_password=USERS["marquee-hub"]), engine)
    hub.start()
    settings = edge_settings(tmp_path, mqtt={"port": broker.port, "username": "riverside-box1",
                                             "password": USERS["riverside-box1"]})
    journal = new_journal(settings)
    river_key, harbour_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with engine.begin() as conn:
        for site, device, key in [("riverside", "riverside-box1", river_key),
                                  ("harbour", "harbour-box1", harbour_key)]:
            register_device(conn, site_id=site, device_id=device, public_key=public_key_text(key),
                            at=datetime.now(UTC))
    uplink = Uplink(settings=settings, journal=journal, identity=river_key,
                    status=lambda online: DeviceStatus(site_id="riverside", device_id="riverside-box1",
                                                       online=online))
    impostor = Client(broker, "harbour-box1", USERS["harbour-box1"])
    try:
        wait_for(lambda: hub.subscribed, timeout=15, what="the hub subscribed")
        # harbour's box, signed in as itself, listens for riverside's acks (Mosquitto grants the
        # subscription but must deliver nothing on it) and for its own.
        river_ack = device_topic("riverside", "riverside-box1", "ack")
        harbour_ack = device_topic("harbour", "harbour-box1", "ack")
        impostor.subscribe(river_ack)
        impostor.subscribe(harbour_ack)
        append(journal, 3)
        uplink.start()
        wait_for(lambda: journal.stats().acked_seq == 3, timeout=20, what="riverside's events acked")

        # It tries to add events to riverside's chain: the broker refuses.
        forged = sign_batch(EventBatch(site_id="riverside", device_id="riverside-box1",
                                       events=chain(1, device_id="riverside-box1", start_seq=4)), harbour_key)
        denied = impostor.publish(device_topic("riverside", "riverside-box1", "events"), encode(forged))
        assert denied.is_failure and "authori" in str(denied).lower()

        # Its own events go through; once they are acked, anything sent before them has been delivered.
        own = sign_batch(EventBatch(site_id="harbour", device_id="harbour-box1",
                                    events=chain(2, device_id="harbour-box1", site_id="harbour")), harbour_key)
        assert not impostor.publish(device_topic("harbour", "harbour-box1", "events"), encode(own)).is_failure
        wait_for(lambda: any(m.topic == harbour_ack for m in impostor.messages), timeout=15, what="its ack")
        assert [m.topic for m in impostor.messages if m.topic == river_ack] == []
        with engine.connect() as conn:
            rows = conn.execute(sa.select(events.c.device_id, sa.func.count()).group_by(events.c.device_id))
            held = {device: count for device, count in rows}
        assert held == {"riverside-box1": 3, "harbour-box1": 2}

        # A box asks the hub for the member directory on its own topic only.
        ask = encode(DirectoryRequest(have=0))
        assert not impostor.publish(device_topic("harbour", "harbour-box1", "directory"), ask).is_failure
        assert impostor.publish(device_topic("riverside", "riverside-box1", "directory"), ask).is_failure
    finally:
        impostor.close()
        uplink.stop()
        hub.stop()
        journal.close()
        engine.dispose()




def test_another_login_cannot_push_a_box_off_the_broker(tmp_path: Path, broker: Mosquitto) -> None:
    """A broker drops a session when another client connects with its client id: the box's id must be
    one that nobody can guess, whatever login they hold."""
    settings = edge_settings(tmp_path, mqtt={"port": broker.port, "username": "riverside-box1",
                                             "password": USERS["riverside-box1"]}, sync={"heartbeat_s": 0.2})
    journal = new_journal(settings)
    statuses: list[bytes] = []
    uplink = Uplink(settings=settings, journal=journal, identity=Ed25519PrivateKey.generate(),
                    status=lambda online: DeviceStatus(site_id="riverside", device_id="riverside-box1",
                                                       online=online))
    uplink.start()
    rivals: list[Client] = []
    try:
        wait_for(lambda: uplink.connected, timeout=10, what="the box connected")
        for guess in ("marquee-edge-riverside-box1", "riverside-box1", "marquee-riverside-box1"):
            rivals.append(Client(broker, "harbour-box1", USERS["harbour-box1"], client_id=guess))
        assert all(not rival.connack.is_failure for rival in rivals)
        watcher = Client(broker, "marquee-hub", USERS["marquee-hub"])
        rivals.append(watcher)
        watcher.client.on_message = lambda c, u, msg: statuses.append(msg.payload)
        watcher.subscribe(device_topic("riverside", "riverside-box1", "status"))
        wait_for(lambda: len(statuses) >= 5, timeout=10, what="five more heartbeats from the box")
        assert uplink.connected and uplink.counters["connects"] == 1
    finally:
        for rival in rivals:
            rival.close()
        uplink.stop()
        journal.close()
