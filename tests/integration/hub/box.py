"""A stand-in site box for hub tests: a real paho client that publishes batches and collects acks."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol.codec import decode, encode
from protocol.messages import Ack
from tests.support.waiting import wait_for

ACKS_ALL = "marquee/v1/+/+/ack"


class FakeBox:
    """Publishes at QoS 1 and records every ack the hub sends, per device."""

    def __init__(self, host: str, port: int, *, client_id: str = "test-box") -> None:
        self.acks: dict[str, list[Ack]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.on_ack: Any = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = lambda client, *_: client.subscribe(ACKS_ALL, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        wait_for(self._subscribed.is_set, timeout=10, what="the test box's ack subscription")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ack = decode(Ack, msg.payload)
        with self._lock:
            self.acks.setdefault(ack.device_id, []).append(ack)
        if self.on_ack is not None:
            self.on_ack(ack)

    def acks_of(self, device_id: str) -> list[Ack]:
        with self._lock:
            return list(self.acks.get(device_id, []))

    def publish(self, topic: str, payload: bytes | Any, *, retain: bool = False) -> None:
        """Publish and wait for the broker's PUBACK (which is not the hub's ack)."""
        data = payload if isinstance(payload, bytes) else encode(payload)
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
