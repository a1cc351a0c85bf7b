"""The uplink against a real Mosquitto: events leave the box only on the hub's ack, whatever happens between."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.settings import EdgeSettings
from edge.store.journal import Journal
from edge.sync.uplink import Uplink
from protocol.codec import decode, encode
from protocol.ids import uuid7
from protocol.messages import Ack, DeviceStatus, EventBatch
from protocol.signing import verify_status
from protocol.topics import device_topic
from tests.edge_support import edge_settings, new_journal
from tests.support.brokers import Mosquitto
from tests.support.waiting import wait_for
from tests.unit.protocol.factories import sale_payload

SITE, DEVICE = "riverside", "riverside-box1"
IDENTITY = Ed25519PrivateKey.generate()


class AckingPeer:
    """Plays the hub's side of the contract: stores by seq, acks the highest contiguous seq."""

    def __init__(self, broker: Mosquitto, policy: Callable[[EventBatch, int], Ack | str | None] | None = None) -> None:
        self.received: list[int] = []
        self.held: set[int] = set()
        self.hashes: dict[int, str] = {}
        self.statuses: list[DeviceStatus] = []
        self.policy = policy
        self.batches = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: (c.subscribe(device_topic(SITE, DEVICE, "events"), qos=1),
                                                c.subscribe(device_topic(SITE, DEVICE, "status"), qos=1))
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def contiguous(self) -> int:
        n = 0
        while n + 1 in self.held:
            n += 1
        return n

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            self.statuses.append(decode(DeviceStatus, msg.payload))
            return
        batch = decode(EventBatch, msg.payload)
        with self._lock:
            self.batches += 1
            self.received.extend(e.seq for e in batch.events)
            self.hashes.update((e.seq, e.hash) for e in batch.events)
            ack = self.policy(batch, self.batches) if self.policy else None
            if ack is None:
                contiguous = self.contiguous()
                for e in batch.events:
                    if e.seq == contiguous + 1:
                        self.held.add(e.seq)
                        contiguous += 1
                held = self.contiguous()
                ack = Ack(device_id=DEVICE, acked_seq=held, acked_hash=self.hashes.get(held))
            elif ack == "drop":
                return
        client.publish(device_topic(SITE, DEVICE, "ack"), encode(ack), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def append(journal: Journal, count: int) -> None:
    for _ in range(count):
        seq = journal.last_seq + 1
        with journal.transaction() as tx:
            tx.append(type="sale.recorded", payload=sale_payload(f"S-{seq}"), event_id=uuid7(seq, os.urandom(10)),
                      occurred_at=datetime.now(UTC), clock_ok=True, sale_key=f"t1:S-{seq}")


@pytest.fixture
def settings(tmp_path: Path, mosquitto: Mosquitto) -> EdgeSettings:
    return edge_settings(tmp_path, mqtt={"port": mosquitto.port},
                         sync={"batch_max_events": 50, "ack_timeout_s": 0.5, "heartbeat_s": 0.3})


@pytest.fixture
def journal(settings: EdgeSettings) -> Iterator[Journal]:
    j = new_journal(settings)
    yield j
    j.close()


def start_uplink(settings: EdgeSettings, journal: Journal) -> Uplink:
    def status(online: bool) -> DeviceStatus:
        stats = journal.stats()
        return DeviceStatus(site_id=SITE, device_id=DEVICE, online=online, last_seq=stats.last_seq,
                            acked_seq=stats.acked_seq, backlog=stats.backlog)

    uplink = Uplink(settings=settings, journal=journal, status=status, identity=IDENTITY)
    uplink.start()
    return uplink


def test_every_event_is_acked_in_order_and_the_box_then_holds_no_backlog(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    peer = AckingPeer(mosquitto)
    append(journal, 230)
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: journal.stats().backlog == 0, timeout=20, what="every event acked")
        assert peer.held == set(range(1, 231))
        assert max(peer.batches for _ in [0]) >= 5  # 230 events in batches of at most 50
        wait_for(lambda: any(s.online and s.backlog == 0 for s in peer.statuses), timeout=10, what="heartbeat")
        append(journal, 3)
        uplink.notify()
        wait_for(lambda: journal.stats().acked_seq == 233, timeout=10, what="new events acked")
    finally:
        uplink.stop()
        peer.close()
    assert any(not s.online for s in peer.statuses)  # a clean stop says offline


def test_a_batch_that_is_never_acked_is_published_again(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    # The first batch is "lost" (no ack at all): only the ack timeout can recover it.
    peer = AckingPeer(mosquitto, policy=lambda batch, n: "drop" if n == 1 else None)
    append(journal, 20)
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: journal.stats().backlog == 0, timeout=20, what="acked after the timeout")
        assert uplink.counters["resends"] >= 1
        assert peer.received.count(1) >= 2
    finally:
        uplink.stop()
        peer.close()


def test_the_hub_can_ask_for_a_resend_from_a_gap(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # A long ack timeout: only the hub's resend_from can bring the events back quickly.
    settings = edge_settings(tmp_path, mqtt={"port": mosquitto.port}, sync={"ack_timeout_s": 600})
    journal = new_journal(settings)
    asked: list[int] = []

    def policy(batch: EventBatch, n: int) -> Ack | str | None:
        if n == 1:
            asked.append(1)
            return Ack(device_id=DEVICE, acked_seq=0, resend_from=1)
        return None

    peer = AckingPeer(mosquitto, policy=policy)
    append(journal, 10)
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: journal.stats().backlog == 0, timeout=20, what="acked after the resend")
        assert asked and peer.received.count(1) >= 2
        assert uplink.counters["resends"] == 0  # no timeout was involved
    finally:
        uplink.stop()
        peer.close()
        journal.close()


def test_a_refusal_is_not_asked_again_every_few_seconds(settings: EdgeSettings, journal: Journal,
                                                       mosquitto: Mosquitto) -> None:
    peer = AckingPeer(mosquitto, policy=lambda batch, n: Ack(device_id=DEVICE, acked_seq=0, error="chain_broken"))
    append(journal, 5)
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: uplink.counters["acks"] >= 1, timeout=10, what="the refusal")
        retry = uplink.retry_in()
        assert retry is not None and retry > 60  # not the 0.5 s ack timeout
        assert peer.batches == 1 and journal.stats().backlog == 5  # nothing is forgotten either
        # New sales during the wait are kept back too: each would only draw another refusal.
        held_back = uplink.counters["held_back"]
        append(journal, 3)
        uplink.notify()
        wait_for(lambda: uplink.counters["held_back"] >= held_back + 2, timeout=10, what="two looks by the sender")
        assert uplink.counters["batches_sent"] == 1 and journal.stats().backlog == 8
    finally:
        uplink.stop()
        peer.close()


def test_hostile_or_impossible_acks_are_ignored_and_the_link_keeps_working(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    statuses: list[bytes] = []
    intruder = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    intruder.on_message = lambda c, u, msg: statuses.append(msg.payload)
    intruder.connect(mosquitto.host, mosquitto.port)
    intruder.subscribe(device_topic(SITE, DEVICE, "status"), qos=1)
    intruder.loop_start()
    uplink = start_uplink(settings, journal)
    try:
        # The box subscribes to its acks before it says online, so once online shows, acks reach it.
        wait_for(lambda: any(decode(DeviceStatus, p).online for p in statuses), timeout=10, what="online")
        topic = device_topic(SITE, DEVICE, "ack")
        for payload in [b"\xff\x00", b"{}", b'{"schema":"marquee.ack/1","device_id":"%s","acked_seq":%d}'
                        % (DEVICE.encode(), 2**64), encode(Ack(device_id=DEVICE, acked_seq=7))]:
            intruder.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: uplink.counters["bad_acks"] == 3 and uplink.counters["foreign_acks"] == 1, timeout=10,
                 what="three malformed acks and one beyond the journal counted")
        assert journal.stats().acked_seq == 0  # an ack beyond the journal is not believed
        peer = AckingPeer(mosquitto)
        append(journal, 3)
        uplink.notify()
        wait_for(lambda: journal.stats().acked_seq == 3, timeout=20, what="the link still works")
        peer.close()
    finally:
        intruder.loop_stop()
        intruder.disconnect()
        uplink.stop()


def test_a_broker_restart_mid_stream_loses_nothing(settings: EdgeSettings, journal: Journal,
                                                  mosquitto: Mosquitto) -> None:
    peer = AckingPeer(mosquitto)
    uplink = start_uplink(settings, journal)
    try:
        append(journal, 100)
        uplink.notify()
        wait_for(lambda: journal.stats().acked_seq >= 50, timeout=20, what="first half acked")
        mosquitto.restart()
        append(journal, 100)  # written while the broker is away
        uplink.notify()
        wait_for(lambda: journal.stats().acked_seq == 200, timeout=40, what="everything acked after restart")
        assert peer.held == set(range(1, 201))
    finally:
        uplink.stop()
        peer.close()


def test_a_silent_hub_is_asked_less_and_less_often(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = edge_settings(tmp_path, mqtt={"port": mosquitto.port}, sync={"ack_timeout_s": 0.2})
    journal = new_journal(settings)
    peer = AckingPeer(mosquitto, policy=lambda batch, n: "drop")  # the hub's process is gone
    append(journal, 5)
    uplink = start_uplink(settings, journal)
    try:
        # Without backoff the next try would always be at most 0.2 s away.
        wait_for(lambda: uplink.counters["resends"] >= 3 and (uplink.retry_in() or 0) > 0.8, timeout=20,
                 what="the third resend, with the next one over 0.8 s away (0.2 s doubled three times, ±20 %)")
        assert journal.stats().backlog == 5
    finally:
        uplink.stop()
        peer.close()
        journal.close()


def test_the_last_will_carries_the_backlog_of_the_latest_connection(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    peer = AckingPeer(mosquitto, policy=lambda batch, n: "drop")  # the hub holds nothing yet
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: uplink.connected, timeout=10, what="the box connected")
        append(journal, 4)  # sold while connected: the will set at connect time said 0
        uplink.notify()
        mosquitto.restart()  # the link drops; the box reconnects with a fresh will
        wait_for(lambda: uplink.connected and uplink.counters["connects"] >= 2, timeout=30, what="reconnected")
        before = len(peer.statuses)
        sock = uplink._client.socket()  # noqa: SLF001 - pulling the plug needs the raw socket
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT packet: the broker publishes the will
        will = wait_for(lambda: next((s for s in peer.statuses[before:] if not s.online), None), timeout=20,
                        what="the will published by the broker")
    finally:
        uplink.stop()
        peer.close()
    assert (will.last_seq, will.backlog) == (4, 4)
    verify_status(will, IDENTITY.public_key())  # the will is signed like any status


def test_acks_and_refusals_about_another_journals_events_move_nothing(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    """Two journals under one identity (a clone) share the ack topic: neither may take the other's acks,
    and a refusal of the other's event (or a replay of one) must not keep this box quiet."""
    append(journal, 3)
    own = [event.hash for event in journal.read_events(from_seq=1, limit=3)]

    def policy(batch: EventBatch, n: int) -> Ack | str | None:
        if n == 1:  # the hub holds a clone's events and says so
            return Ack(device_id=DEVICE, acked_seq=3, acked_hash="f" * 64)
        if n == 2:  # a refusal of the clone's seq 2
            return Ack(device_id=DEVICE, acked_seq=1, acked_hash=own[0], error="chain_conflict",
                       refused_seq=2, refused_hash="e" * 64)
        return None

    peer = AckingPeer(mosquitto, policy=policy)
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: journal.stats().acked_seq == 3, timeout=20, what="this box's own events acked")
        assert uplink.counters["foreign_acks"] == 2  # the clone's progress and its refusal: neither taken
        assert uplink.counters["held_back"] == 0  # the refusal did not hold the box back
    finally:
        uplink.stop()
        peer.close()
    assert peer.batches >= 3


def test_a_refusal_of_this_boxs_own_event_holds_it_back(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    append(journal, 3)
    first = journal.read_events(from_seq=1, limit=1)[0]
    peer = AckingPeer(mosquitto, policy=lambda batch, n: Ack(
        device_id=DEVICE, acked_seq=0, error="chain_conflict", refused_seq=1, refused_hash=first.hash))
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: uplink.counters["acks"] >= 1, timeout=10, what="the refusal")
        retry = uplink.retry_in()
        assert retry is not None and retry > 60 and uplink.counters["foreign_acks"] == 0
    finally:
        uplink.stop()
        peer.close()


def test_an_ack_naming_no_hash_counts_only_for_a_row_this_box_lost(
    settings: EdgeSettings, journal: Journal, mosquitto: Mosquitto
) -> None:
    """Whoever holds the key could send nameless lost events over the box's unsent sales: the hub's ack of
    them names no hash, and the box must not take it as the ack of its own sales."""
    append(journal, 3)

    def policy(batch: EventBatch, n: int) -> Ack | str | None:
        return Ack(device_id=DEVICE, acked_seq=3) if n == 1 else None  # no acked_hash

    peer = AckingPeer(mosquitto, policy=policy)
    uplink = start_uplink(settings, journal)
    try:
        wait_for(lambda: uplink.counters["foreign_acks"] >= 1, timeout=10, what="the nameless ack refused")
        assert journal.stats().acked_seq == 0
        wait_for(lambda: journal.stats().acked_seq == 3, timeout=20, what="the real acks taken")
    finally:
        uplink.stop()
        peer.close()
