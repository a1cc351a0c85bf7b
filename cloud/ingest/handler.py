"""One MQTT message in, database transaction, ack out: everything the worker does except MQTT itself.

Order for a batch or a status: decode, check it against its topic, find the device's registered key,
verify the signature, and only then touch the database. Anything refused before that point is counted,
logged (throttled) and recorded once, and gets no ack: the box it claims to come from is not disturbed.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError

from cloud.db import ingest as db
from cloud.db.devices import DeviceIdentity, device_identity
from cloud.db.sites import apply_status
from cloud.errors import IngestError, ReplayError, StoreError
from cloud.ingest.counters import IngestCounters, Throttle
from cloud.ingest.refusals import RefusalLedger, fixed_detail
from cloud.ingest.store import IngestResult, reject_batch, store_batch
from protocol.codec import decode, encode
from protocol.errors import MalformedMessage, SignatureError, TopicError
from protocol.messages import DeviceStatus, EventBatch
from protocol.signing import parse_public_key, verify_batch, verify_status
from protocol.topics import TopicRef, device_topic, parse_topic

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], bool]
"""Publishes an ack at QoS 1; True when it was handed to the client."""
T = TypeVar("T")

_ATTEMPTS = 3  # a deadlock or a locked SQLite file is worth a retry; a dead database is not worth more


class MessageHandler:
    """Decodes, stores and acks one message at a time; never raises for a bad message or a down database."""

    def __init__(
        self,
        engine: sa.Engine,
        publish: Publish,
        *,
        counters: IngestCounters | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._publish = publish
        self.counters = counters or IngestCounters()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._malformed_log = Throttle(log)
        self._reject_log = Throttle(log)
        self._auth_log = Throttle(log)
        self._lost_log = Throttle(log)
        self._chain_log = Throttle(log)
        self._refusals = RefusalLedger()
        self._db_ok = True
        self.on_stored: Callable[[], None] | None = None
        """Called after a batch that stored something commits (the alert courier's wake-up)."""

    def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """Process one message received on `topic`."""
        received_at = self._clock()
        try:
            ref = parse_topic(topic)
        except TopicError as exc:
            self._malformed(topic, None, str(exc), received_at)
            return
        if ref.kind == "events":
            self._on_events(topic, ref, payload, received_at)
        elif ref.kind == "status":
            self._on_status(topic, ref, payload, received_at, retained)

    def _on_events(self, topic: str, ref: TopicRef, payload: bytes, received_at: datetime) -> None:
        assert ref.site_id is not None and ref.device_id is not None  # parse_topic guarantees it for events
        self.counters.received += 1
        try:
            batch = decode(EventBatch, payload)
        except MalformedMessage as exc:
            self._malformed(topic, ref.device_id, str(exc), received_at)
            return
        if batch.device_id != ref.device_id:
            self._malformed(topic, ref.device_id, "the batch names another device than its topic", received_at)
            return
        if batch.site_id != ref.site_id:
            self._refuse(topic, ref.device_id, "site_mismatch", "the batch names another site than its topic",
                         received_at)
            return
        # Authenticate before anything else: a refused batch changes no state and gets no ack, so a
        # stranger publishing on a box's topic can neither write into its chain nor stall it.
        key = self._authenticated(topic, ref.site_id, batch, received_at)
        if key is None:
            return
        site_id = ref.site_id
        try:
            result = self._transaction(
                lambda conn: store_batch(
                    conn, batch=batch, site_id=site_id, received_at=received_at, topic=topic, verified_with=key
                )
            )
        except StoreError:
            return  # no ack: the box keeps the events and resends them
        except ReplayError:
            self.counters.replays += 1
            self._auth_log.warning("dropped a replayed batch on %s: its events were settled by the owner", topic)
            return
        except IngestError as exc:
            # The database is fine; this batch is not (an event id clashing with a held one, say).
            detail = str(exc)
            try:
                result = self._transaction(
                    lambda conn: reject_batch(
                        conn, batch=batch, site_id=site_id, received_at=received_at, topic=topic, detail=detail
                    )
                )
            except (StoreError, IngestError):
                return
        self._count(result, topic)
        if self._publish(device_topic(ref.site_id, ref.device_id, "ack"), encode(result.ack)):
            self.counters.acks_sent += 1
        if self.on_stored is not None and (result.stored or result.lost or result.conflict):
            self.on_stored()  # committed: an alert case it raised can go out now, not at the next poll

    def _identity(self, topic: str, site_id: str, device_id: str, received_at: datetime) -> DeviceIdentity | None:
        """The device's registration when it may speak on this site's topics; refuses (and says why) otherwise."""
        try:
            identity = self._transaction(lambda conn: device_identity(conn, device_id=device_id))
        except (StoreError, IngestError):
            return None  # the database is down: nothing is acked, the box resends
        if identity is None or identity.public_key is None:
            self.counters.unregistered += 1
            self._refuse(topic, device_id, "unregistered_device", "no public key is registered for this device",
                         received_at, count=False, registered=False)
            return None
        if identity.revoked:
            self.counters.unregistered += 1
            self._refuse(topic, device_id, "revoked_device", "this device's key was revoked", received_at,
                         count=False, registered=True)
            return None
        if identity.site_id != site_id:
            self._refuse(topic, device_id, "device_site_mismatch", "the device is registered for another site",
                         received_at, registered=True)
            return None
        return identity

    def _authenticated(self, topic: str, site_id: str, batch: EventBatch, received_at: datetime) -> str | None:
        """The registered key that verified the batch; None (refused, said why) when none did."""
        identity = self._identity(topic, site_id, batch.device_id, received_at)
        if identity is None or identity.public_key is None:
            return None
        try:
            verify_batch(batch, _public_key(identity.public_key))
        except SignatureError as exc:
            self.counters.unauthenticated += 1
            self._refuse(topic, batch.device_id, "bad_signature", str(exc), received_at, count=False,
                         registered=True)
            return None
        except MalformedMessage as exc:
            self._malformed(topic, batch.device_id, str(exc), received_at)
            return None
        return identity.public_key

    def _count(self, result: IngestResult, topic: str) -> None:
        counters = self.counters
        counters.stored += result.stored
        counters.duplicates += result.duplicates
        counters.lost_events += result.lost
        counters.gaps += int(result.gap)
        counters.conflicts += int(result.conflict)
        counters.bad_payloads += result.bad_payloads
        if result.rejected:
            counters.rejected += 1
            self._reject_log.warning("refused a batch on %s: %s", topic, result.rejected)
        if result.bad_payloads:
            self._reject_log.warning("kept %d event(s) on %s without their refused payload", result.bad_payloads,
                                     topic)
        if result.lost:
            self._lost_log.warning("the box on %s reported %d lost event(s) (unreadable journal rows)", topic,
                                   result.lost)
        if result.conflict:
            self._chain_log.warning("chain conflict on %s after seq %d: two signed events under one seq "
                                    "(see marquee-hub devices conflicts)", topic, result.ack.acked_seq)

    def _on_status(
        self, topic: str, ref: TopicRef, payload: bytes, received_at: datetime, retained: bool
    ) -> None:
        assert ref.site_id is not None and ref.device_id is not None
        if not payload:
            return  # an empty retained message only clears the topic
        try:
            status = decode(DeviceStatus, payload)
        except MalformedMessage as exc:
            self._malformed(topic, ref.device_id, str(exc), received_at)
            return
        if (status.site_id, status.device_id) != (ref.site_id, ref.device_id):
            self._malformed(topic, ref.device_id, "status names another site or device", received_at)
            return
        identity = self._identity(topic, ref.site_id, ref.device_id, received_at)
        if identity is None:
            return
        try:
            verify_status(status, _public_key(identity.public_key))
        except SignatureError as exc:
            self.counters.unauthenticated += 1
            self._refuse(topic, ref.device_id, "bad_signature", str(exc), received_at, count=False,
                         registered=True)
            return
        except MalformedMessage as exc:
            self._malformed(topic, ref.device_id, str(exc), received_at)
            return
        self.counters.statuses += 1
        seen_at: datetime | None = received_at
        if not status.online:
            seen_at = None  # the broker's last will: nobody spoke
        elif retained:
            # A retained heartbeat may be hours old: trust its own stamp, never a future one.
            seen_at = min(status.sent_at, received_at) if status.sent_at else None
        device_id = ref.device_id
        try:
            applied = self._transaction(
                lambda conn: apply_status(conn, device_id=device_id, status=status, received_at=received_at,
                                          seen_at=seen_at)
            )
        except (StoreError, IngestError):
            return
        if not applied:
            self.counters.stale_statuses += 1

    def _malformed(self, topic: str, device_id: str | None, reason: str, received_at: datetime) -> None:
        self.counters.malformed += 1
        self._malformed_log.warning("malformed message on %s: %s", topic[:120], reason)
        self._record_refusal(topic, device_id, "malformed", reason, received_at)

    def _refuse(
        self,
        topic: str,
        device_id: str,
        reason: str,
        detail: str,
        received_at: datetime,
        *,
        count: bool = True,
        registered: bool | None = None,
    ) -> None:
        """A message refused before it was authenticated: counted, logged (throttled), recorded, not acked."""
        if count:
            self.counters.rejected += 1
        self._auth_log.warning("refused a message on %s: %s (%s)", topic[:120], reason, detail)
        self._record_refusal(topic, device_id, reason, detail, received_at, registered=registered)

    def _record_refusal(
        self,
        topic: str,
        device_id: str | None,
        reason: str,
        detail: str,
        received_at: datetime,
        *,
        registered: bool | None = None,
    ) -> None:
        """Write the refusal (and those held back since) once a minute per device and reason, and only
        for a registered device (`registered` None: look it up): see `cloud.ingest.refusals`."""
        if device_id is None or registered is False:
            return
        if registered is None:
            try:
                known = self._transaction(lambda conn: device_identity(conn, device_id=device_id))
            except (StoreError, IngestError):
                return
            if known is None:
                return
        times = self._refusals.add(device_id, reason, time.monotonic())
        if times is None:
            return
        try:
            self._transaction(
                lambda conn: db.record_reject(
                    conn,
                    received_at=received_at,
                    topic=topic,
                    device_id=device_id,
                    reason=reason,
                    detail=fixed_detail(detail),
                    times=times,
                )
            )
        except (StoreError, IngestError):
            pass  # already counted and logged

    def _transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` in one committed transaction, retrying transient failures; StoreError otherwise."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    result = work(conn)
            except OperationalError as exc:
                if attempt < _ATTEMPTS:
                    time.sleep(0.05 * attempt)
                    continue
                self._store_failed(exc)
                raise StoreError(str(exc.orig or exc).strip()[:200]) from exc
            except (IntegrityError, DataError) as exc:
                # A constraint or a type (e.g. a NUL in PostgreSQL's JSONB) refused this message's data:
                # the database itself is fine, and waiting for it would stall the box forever.
                raise IngestError(_first_line(exc)) from exc
            except SQLAlchemyError as exc:
                self._store_failed(exc)
                raise StoreError(str(exc).strip()[:200]) from exc
            if not self._db_ok:
                log.info("database is reachable again; ingest resumed")
                self._db_ok = True
            return result
        raise AssertionError("unreachable")

    def _store_failed(self, exc: SQLAlchemyError) -> None:
        self.counters.store_failures += 1
        if self._db_ok:
            log.warning("database unavailable, ingest paused (no acks until it returns)", exc_info=exc)
            self._db_ok = False


@functools.lru_cache(maxsize=4096)
def _public_key(text: str | None) -> Ed25519PublicKey:
    # Registered keys were checked when registered; a key edited into the database by hand that does
    # not parse refuses every message of its device, as a wrong key would.
    return parse_public_key(text or "")


def _first_line(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
