"""The ingest worker: a paho-mqtt client that feeds every event batch and status to the MessageHandler.

Several hub processes may run one each; with MQTT 5 they share the stream through `$share/<group>/...`.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud.ingest.counters import IngestCounters
from cloud.ingest.handler import MessageHandler
from cloud.members.clock import RulesClock
from cloud.members.publisher import DirectoryPublisher
from cloud.settings import HubSettings
from cloud.staff.blocklist import BlocklistRepublisher
from protocol.topics import DIRECTORY_REQUESTS_ALL, EVENTS_ALL, STATUS_ALL, shared

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 30


class IngestWorker:
    """Subscribes to every site's events and status, stores them, and acks after commit."""

    def __init__(self, settings: HubSettings, engine: sa.Engine) -> None:
        self._settings = settings
        self._client: mqtt.Client | None = None
        self._connected = False
        self._subscribed = False
        self.handler = MessageHandler(engine, self._publish)
        self.directory = DirectoryPublisher(engine, settings.rules_key_file, self._publish)
        self.clock = RulesClock(engine, settings.rules_clock_s, on_change=self.directory.notify)
        self.blocklist = BlocklistRepublisher(engine, settings.rules_key_file)

    @property
    def connected(self) -> bool:
        """True while the client holds a session with the broker."""
        return self._connected

    @property
    def subscribed(self) -> bool:
        """True once the broker granted the subscriptions of the current session."""
        return self._connected and self._subscribed

    @property
    def counters(self) -> IngestCounters:
        """Running totals of what ingest received, stored, skipped and refused."""
        return self.handler.counters

    def subscriptions(self) -> list[str]:
        """The topic filters subscribed to: shared when a group is configured."""
        group = self._settings.shared_group
        return [shared(topic, group) if group else topic for topic in (EVENTS_ALL, STATUS_ALL, DIRECTORY_REQUESTS_ALL)]

    def start(self) -> None:
        """Connect in the background and keep reconnecting until `stop()`; returns at once."""
        if self._client is not None:
            return
        settings = self._settings
        protocol = (
            MQTTProtocolVersion.MQTTv5 if settings.mqtt_protocol == "5" else MQTTProtocolVersion.MQTTv311
        )
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=protocol,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            client.username_pw_set(settings.mqtt_username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # connect_async + loop_start: a broker that is down at start-up is retried like a lost one.
        client.connect_async(settings.mqtt_host, settings.mqtt_port, keepalive=KEEPALIVE_SECONDS)
        self._client = client  # before the network thread starts: acks are published through it
        client.loop_start()
        self.directory.start()
        self.clock.start()
        log.info("ingest connecting to mqtt://%s:%d", settings.mqtt_host, settings.mqtt_port)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        client, self._client = self._client, None
        if client is None:
            return
        self.clock.stop()
        self.directory.stop()
        client.disconnect()
        client.loop_stop()
        self._connected = False

    def _publish(self, topic: str, payload: bytes) -> bool:
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=1)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Nagle holds back small QoS 1 packets: about 88 ms per ack round trip instead of 0.25 ms.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            log.debug("could not set TCP_NODELAY on the mqtt socket", exc_info=True)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("mqtt broker refused the connection: %s", reason_code)
            return
        self._subscribed = False
        # Subscribe on every connect: a clean session forgets subscriptions across reconnects.
        client.subscribe([(topic, 1) for topic in self.subscriptions()])
        self._connected = True
        # Retained, so a change the broker missed (down, restarted without persistence) reaches it now.
        self.blocklist.on_connected(lambda topic, payload: client.publish(topic, payload, qos=1, retain=True))
        log.info("ingest connected to mqtt://%s:%d", self._settings.mqtt_host, self._settings.mqtt_port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        was_connected, self._connected = self._connected, False
        self._subscribed = False
        if was_connected and self._client is not None:
            log.warning("ingest lost the mqtt broker (%s); reconnecting", reason_code)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode], properties: Any
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            # e.g. a broker without shared subscriptions: ingest would silently receive nothing.
            log.error("mqtt broker refused the ingest subscriptions %s: %s", self.subscriptions(), refused)
            return
        self._subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # The top of a long-running loop: one bad message must never stop the network thread.
        try:
            if msg.topic.endswith("/directory"):
                self.directory.offer_request(msg.topic, bytes(msg.payload))
                return
            self.handler.handle(msg.topic, bytes(msg.payload), retained=bool(msg.retain))
        except Exception:
            log.exception("unexpected failure handling a message on %s", msg.topic[:120])
