"""The uplink: publishes unacknowledged journal rows in batches and advances only on the hub's ack.

At-least-once on the wire: anything in flight when the link drops, or not acked within the timeout,
is published again from the last ack. A broker PUBACK is not an ack; only the hub's `.../ack` message is.
Memory stays bounded: at most `window_batches` batches are in flight and one batch is read at a time.
Every batch and status is signed with the box's identity key; the hub accepts nothing unsigned. A journal
row that no longer opens goes out as a lost event, so the rows after it still reach the hub.
Downlink beside the acks: the site's rule bundle (retained), member directory pages (not retained:
`on_connected` is told of each connection so the box can ask for what it missed, `publish_request`) and the
chain's blocklist (retained).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import StoreError
from edge.logthrottle import LogThrottle
from edge.settings import EdgeSettings
from edge.store.journal import Journal
from edge.sync.mqtt import make_client
from protocol.codec import decode, encode
from protocol.directory import DirectoryRequest
from protocol.errors import MalformedMessage
from protocol.events import Event
from protocol.messages import Ack, DeviceStatus, EventBatch, LostEvent
from protocol.signing import sign_batch, sign_status
from protocol.topics import BLOCKLIST, device_topic, site_topic

log = logging.getLogger(__name__)
StatusProvider = Callable[[bool], DeviceStatus]
ERROR_BACKOFF_S = 300
MAX_RESEND_BACKOFF_S = 300


class Uplink:
    """Keeps the hub up to date with the journal; `notify()` after each write wakes it."""

    def __init__(
        self, *, settings: EdgeSettings, journal: Journal, status: StatusProvider, identity: Ed25519PrivateKey,
        on_rules: Callable[[bytes], object] | None = None, on_members: Callable[[bytes], object] | None = None,
        on_connected: Callable[[], object] | None = None, on_blocklist: Callable[[bytes], object] | None = None,
    ) -> None:
        """`on_rules` gets each rule bundle the hub publishes (retained) for this site, as bytes; `on_members`
        each member directory page; `on_blocklist` each chain blocklist (retained); `on_connected` is called at
        each connection, once subscribed."""
        self._settings = settings
        self._on_blocklist = on_blocklist
        self._on_rules = on_rules
        self._on_members = on_members
        self._on_connected = on_connected
        self._journal = journal
        self._status_of = status
        self._identity = identity
        self._site, self._device = settings.site_id, settings.device_id
        self._events_topic = device_topic(self._site, self._device, "events")
        self._ack_topic = device_topic(self._site, self._device, "ack")
        self._status_topic = device_topic(self._site, self._device, "status")
        self._rules_topic = site_topic(self._site, "rules")
        self._members_topic = site_topic(self._site, "members")
        self._directory_topic = device_topic(self._site, self._device, "directory")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._acked = journal.stats().acked_seq
        self._next_seq = self._acked + 1
        self._deadline = 0.0
        self._connected = False
        self._refusal: str | None = None
        self._unanswered = 0  # resends in a row without any progress of the ack
        self._thread: threading.Thread | None = None
        self.counters: dict[str, int] = {
            "batches_sent": 0,
            "events_sent": 0,
            "acks": 0,
            "resends": 0,
            "bad_acks": 0,
            "foreign_messages": 0,
            "held_back": 0,
            "connects": 0,
            "lost_sent": 0,
            "foreign_acks": 0,
        }
        self._loop_log = LogThrottle(log)
        self._foreign_log = LogThrottle(log)
        self._session = secrets.token_hex(8)
        # A client id nobody can guess: a broker drops a session when another client connects with its id,
        # and any login (another box's) could otherwise keep this box off the broker that way.
        self._client = make_client(settings.mqtt, client_id=f"marquee-edge-{self._device}-{secrets.token_hex(6)}")
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def acked_seq(self) -> int:
        return self._acked

    def retry_in(self) -> float | None:
        """Seconds until unacknowledged events are published again; None when nothing waits for an ack."""
        with self._lock:
            if self._next_seq <= self._acked + 1:
                return None
            return max(0.0, self._deadline - time.monotonic())

    def start(self) -> None:
        """Connect in the background (retrying forever) and start the sender thread."""
        mq = self._settings.mqtt
        self._client.connect_async(mq.host, mq.port, keepalive=mq.keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A new event is in the journal."""
        self._wake.set()

    def publish_request(self, request: DirectoryRequest) -> bool:
        """Ask the hub for member directory pages (QoS 1); False when there is no connection to ask on."""
        if not self._connected:
            return False
        info = self._client.publish(self._directory_topic, encode(request), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), disconnect and join the threads."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._connected:
            info = self._client.publish(self._status_topic, encode(self._status(False)), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=min(timeout, 2.0))
            except (RuntimeError, ValueError):
                log.debug("offline status not confirmed before disconnect")
        self._connected = False  # a stop we asked for is not a lost broker
        self._client.disconnect()
        self._client.loop_stop()

    def _status(self, online: bool) -> DeviceStatus:
        status = self._status_of(online).model_copy(update={"session": self._session})
        return sign_status(status, self._identity)

    # paho callbacks run on paho's network thread.
    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        # The last will is fixed at CONNECT: build it afresh for each connection, so the offline status
        # the broker publishes for us carries the backlog of this connection, not of the first.
        self._session = secrets.token_hex(8)  # this connection's heartbeats and will carry it
        try:
            client.will_set(self._status_topic, encode(self._status(False)), qos=1, retain=True)
        except Exception:
            self._loop_log.exception("could not prepare the last will; the previous one stays")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        # paho re-raises what a callback raises and its network thread dies with it: never let anything out.
        try:
            self._connected_now(client, reason_code)
        except Exception:
            log.exception("could not handle the broker's CONNACK")

    def _connected_now(self, client: mqtt.Client, reason_code: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        client.subscribe(self._ack_topic, qos=1)
        if self._on_rules is not None:
            client.subscribe(self._rules_topic, qos=1)  # retained: the current bundle comes at once
        if self._on_members is not None:
            client.subscribe(self._members_topic, qos=1)
        if self._on_blocklist is not None:
            client.subscribe(BLOCKLIST, qos=1)  # retained: the current list comes at once
        with self._lock:
            self._connected = True
            self._next_seq = self._acked + 1  # whatever was in flight may be lost: start again from the ack
            if not self._refusal:
                self._deadline = 0.0
            self.counters["connects"] += 1
        log.info("connected to broker %s:%s", self._settings.mqtt.host, self._settings.mqtt.port)
        self._wake.set()
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                log.exception("could not handle the new connection downstream")
        # Last: a status that cannot be built must not keep the events from flowing.
        client.publish(self._status_topic, encode(self._status(True)), qos=1, retain=True)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        if self._connected:
            log.warning("lost the broker (%s); keeping events until it returns", reason_code)
        self._connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic == self._rules_topic and self._on_rules is not None:
                self._on_rules(bytes(message.payload))
                return
            if message.topic == self._members_topic and self._on_members is not None:
                self._on_members(bytes(message.payload))
                return
            if message.topic == BLOCKLIST and self._on_blocklist is not None:
                self._on_blocklist(bytes(message.payload))
                return
            if message.topic != self._ack_topic:
                # Only these topics are subscribed; a broker that delivers anything else is misbehaving.
                self.counters["foreign_messages"] += 1
                if self.counters["foreign_messages"] == 1:
                    log.warning("broker sent %s, which this box did not subscribe to; ignoring such messages",
                                message.topic[:120])
                return
            self._handle_ack(bytes(message.payload))
        except Exception:
            log.exception("could not handle a message from the hub")

    def _handle_ack(self, payload: bytes) -> None:
        try:
            ack = decode(Ack, payload)
        except MalformedMessage as exc:
            self.counters["bad_acks"] += 1
            log.warning("ignored a malformed ack: %s", exc)
            return
        if ack.device_id != self._device:
            self.counters["bad_acks"] += 1
            return
        if ack.acked_seq > self._journal.last_seq:
            # The hub holds more of this device than this journal has: another journal under this identity
            # (a clone ahead of it, a box rebuilt under an old device id).
            self.counters["foreign_acks"] += 1
            self._foreign_log.error("the hub holds seq %d of this device but this journal ends at %d: two "
                                    "journals under one identity?", ack.acked_seq, self._journal.last_seq)
            return
        try:
            if not self._ours(ack.acked_seq, ack.acked_hash):
                # The hub holds another event at that seq: another journal under this identity (a clone,
                # or this box restored from an old backup). Its progress is not ours to take.
                self.counters["foreign_acks"] += 1
                self._foreign_log.error("the hub holds another event than this box's at seq %d: two journals "
                                        "under one identity (see marquee-hub devices conflicts)", ack.acked_seq)
                return
            if ack.error and ack.refused_seq is not None and not self._ours(ack.refused_seq, ack.refused_hash):
                # An error about an event that is not ours (a replayed refusal of another journal's event):
                # holding back for it would let anyone keep this box quiet.
                self.counters["foreign_acks"] += 1
                return
            held = self._journal.mark_acked(ack.acked_seq)
        except StoreError:
            self._loop_log.exception("could not record the hub's ack")
            return
        with self._lock:
            progress = held > self._acked
            if progress:
                self._deadline = time.monotonic() + self._settings.sync.ack_timeout_s
                if self._unanswered:
                    log.info("hub answers again; acked up to seq %d", held)
                self._unanswered = 0
            self._acked = held
            self._next_seq = max(self._next_seq, held + 1)
            # While refused, an ack that moves nothing (the hub answering a later batch with a gap) must not
            # start a new round of resends: only progress, or the end of the wait, lifts a refusal.
            refused_still = self._refusal is not None and not progress and ack.error is None
            if ack.resend_from is not None and not refused_still:
                self._next_seq = max(held + 1, min(self._next_seq, ack.resend_from))
            if ack.error:
                # The hub refuses what follows: asking again every few seconds changes nothing.
                self._deadline = time.monotonic() + ERROR_BACKOFF_S
            self.counters["acks"] += 1
            previous = self._refusal
            if ack.error or progress:
                self._refusal = ack.error
        if ack.error and ack.error != previous:
            log.error("hub refuses events after seq %d (%s); retrying every %ds", held, ack.error, ERROR_BACKOFF_S)
        elif previous and self._refusal is None:
            log.info("hub accepts events again from seq %d", held + 1)
        self._wake.set()

    def _ours(self, seq: int, event_hash: str | None) -> bool:
        """True when what the hub names at `seq` is this journal's: the same hash, or (the hub holding a
        lost event with no hash, or this row being unreadable here) a row this box itself reported lost."""
        if seq == 0:
            return True
        mine = self._journal.hash_at(seq)
        if event_hash is None or mine is None:
            return self._journal.is_lost(seq)
        return mine == event_hash

    def _run(self) -> None:
        heartbeat_due = time.monotonic() + self._settings.sync.heartbeat_s
        while not self._stopping.is_set():
            self._wake.clear()  # before the work: a notify() during it makes the wait below return at once
            try:
                if self._connected:
                    self._send_due()
                if time.monotonic() >= heartbeat_due:
                    heartbeat_due = time.monotonic() + self._settings.sync.heartbeat_s
                    if self._connected:
                        self._client.publish(self._status_topic, encode(self._status(True)), qos=1, retain=True)
            except Exception:
                self._loop_log.exception("uplink loop failed; retrying")
            else:
                self._loop_log.recovered("uplink loop works again")
            self._wake.wait(timeout=min(1.0, self._settings.sync.ack_timeout_s / 2))

    def _send_due(self) -> None:
        cfg = self._settings.sync
        limit = cfg.batch_max_events * cfg.window_batches
        now = time.monotonic()
        with self._lock:
            if self._refusal is not None and now < self._deadline:
                self.counters["held_back"] += 1
                return  # refused: nothing new either until the wait is over
            if self._next_seq > self._acked + 1 and now > self._deadline:
                self.counters["resends"] += 1
                self._unanswered += 1
                if self._unanswered == 1:
                    log.warning("no ack for seq %d within %.1fs; publishing again until the hub answers",
                                self._acked + 1, cfg.ack_timeout_s)
                self._next_seq = self._acked + 1
        while self._connected and not self._stopping.is_set():
            with self._lock:
                start, acked = self._next_seq, self._acked
            room = limit - (start - acked - 1)
            if room <= 0 or start > self._journal.last_seq:
                return
            items = self._journal.read_outbox(from_seq=start, limit=min(room, cfg.batch_max_events))
            if not items:
                return
            events = [item for item in items if isinstance(item, Event)]
            lost = [item for item in items if isinstance(item, LostEvent)]
            batch = sign_batch(
                EventBatch(site_id=self._site, device_id=self._device, events=events, lost=lost), self._identity
            )
            self._client.publish(self._events_topic, encode(batch), qos=1)
            with self._lock:
                if self._next_seq == start:
                    self._next_seq = items[-1].seq + 1
                self.counters["lost_sent"] += len(lost)
                if start == self._acked + 1:
                    # A hub that does not answer is asked less and less often (up to 5 min, with jitter),
                    # so that a chain's boxes do not all hammer it when it returns.
                    backoff = cfg.ack_timeout_s * 2 ** min(self._unanswered, 10) * random.uniform(0.8, 1.2)
                    self._deadline = time.monotonic() + min(backoff, MAX_RESEND_BACKOFF_S)
                self.counters["batches_sent"] += 1
                self.counters["events_sent"] += len(items)
