"""The composition: wires the tills' serial lines, the decision, the journal and the uplink together.

Each sale is answered only after its event is durably committed; if that cannot happen in time the
POS sells without loyalty (fail open for sales).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from edge import __version__
from edge.clock import clock_synchronised
from edge.decide import decide_sale
from edge.devices.pos import (
    NAK,
    SALE_ID_PATTERN,
    PosControl,
    PosFrame,
    SaleAnswer,
    SaleItem,
    SaleRequest,
    encode_answer,
    mask_card_id,
)
from edge.devices.pos import parse_request as parse_pos_request
from edge.devices.rdm6300 import Debouncer
from edge.errors import FrameError, PosRequestError, StoreError, UnreadableRow
from edge.localstatus import SOCKET_NAME, StatusSocket
from edge.logthrottle import LogThrottle
from edge.peripherals import Peripherals, Writer
from edge.rules import RuleKeeper
from edge.settings import EdgeSettings, TillSettings
from edge.store.bootstrap import open_identity
from edge.store.journal import Journal, JournalTransaction
from edge.sync.uplink import Uplink
from protocol.canonical import canonical_bytes, sha256_hex
from protocol.cards import CardId, card_token
from protocol.events import LineItem, Payload, SaleConflict, SaleRecorded
from protocol.ids import uuid7
from protocol.messages import DeviceStatus
from protocol.signing import parse_public_key

log = logging.getLogger(__name__)
SALE_ID_RE = re.compile(SALE_ID_PATTERN)


@dataclass
class _PendingCard:
    token: str
    masked: str
    expires: float


@dataclass
class _Till:
    settings: TillSettings
    debouncers: dict[str, Debouncer] = field(default_factory=dict)  # by reader: each repeats on its own
    pending: _PendingCard | None = None
    last_answer: bytes | None = None
    answer_resends: int = 0


def _readable_sale_id(payload: bytes) -> str | None:
    """The request's sale id when it can be read at all, so the till can match our rejection to its sale."""
    try:
        sale_id = json.loads(payload).get("sale_id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return sale_id if isinstance(sale_id, str) and SALE_ID_RE.fullmatch(sale_id) else None


def _line_item(item: SaleItem) -> LineItem:
    return LineItem(kind=item.kind, sku=item.sku, description=item.description, film=item.film, hall=item.hall,
                    showtime=item.showtime, quantity=item.qty, unit_price=item.price)


class Agent:
    """One site box: `start()`, then `stop()`; `handle_sale` is the decision path, callable directly."""

    def __init__(
        self, settings: EdgeSettings, *, journal: Journal, pepper: bytes, identity: Ed25519PrivateKey | None = None
    ) -> None:
        self.settings = settings
        self.journal = journal
        self._pepper = pepper
        self._store_log = LogThrottle(log)
        self._unreadable_log = LogThrottle(log)
        hub_key = parse_public_key(settings.hub_public_key) if settings.hub_public_key else None
        self.rules = RuleKeeper(settings.data_dir / "rules.json", hub_key, currency=settings.currency)
        self._lock = threading.Lock()
        self._clock_ok = clock_synchronised()
        self._clock_checked = time.monotonic()
        self.counters: dict[str, int] = {
            "sales": 0,
            "sales_repeated": 0,
            "sales_rejected": 0,
            "sales_failed_open": 0,
            "cards": 0,
            "naks": 0,
            "answers_resent": 0,
            "sales_conflicting": 0,
            "sales_wrong_till": 0,
        }
        self.last_decision_ms = 0.0
        self._tills = {till.till_id: _Till(settings=till) for till in settings.tills}
        identity = identity if identity is not None else open_identity(settings, create=True)
        self.uplink = Uplink(settings=settings, journal=journal, status=self.status, identity=identity,
                             on_rules=self.rules.offer)
        self.peripherals = Peripherals(settings, on_card=self._card_read, on_pos=self._pos_item)
        self._status_socket = StatusSocket(
            settings.data_dir / SOCKET_NAME, lambda: self.status(True).model_dump_json(by_alias=True).encode())

    def start(self) -> None:
        """Open every till's lines and readers, listen for TCP tills, and start syncing."""
        self.peripherals.start()
        self.uplink.start()
        self._status_socket.start()
        log.info("site %s box %s running with %d till(s)", self.settings.site_id, self.settings.device_id,
                 len(self._tills))

    def stop(self) -> None:
        """Close the lines, say offline to the hub, close the journal."""
        self._status_socket.stop()
        self.peripherals.stop()
        self.uplink.stop()
        self.journal.close()

    def _card_read(self, till_id: str, card: CardId, reader: str, window_s: float) -> bool:
        return self.present_card(till_id, card, reader=reader, window_s=window_s)

    def _pos_item(self, till_id: str, line: Writer, item: object) -> None:
        till = self._tills[till_id]
        if isinstance(item, PosFrame):
            till.last_answer = self.handle_sale(till_id, item.payload)
            till.answer_resends = 0
            line.write(till.last_answer)
        elif isinstance(item, FrameError) and item.kind == "checksum":
            # A complete frame damaged on the wire: the till resends it byte for byte.
            self.counters["naks"] += 1
            line.write(bytes([NAK]))
        elif isinstance(item, FrameError):
            # Noise, a cut or oversized frame, a timeout: silence (the line counts it by kind). A NAK
            # here would make a till resend a request it may already have had answered.
            pass
        elif isinstance(item, PosControl) and item.is_nak and till.last_answer is not None:
            # The till got our answer damaged: send it again, at most 3 times (docs/pos-protocol.md).
            if till.answer_resends < 3:
                till.answer_resends += 1
                self.counters["answers_resent"] += 1
                line.write(till.last_answer)

    def present_card(self, till_id: str, card: CardId, *, reader: str = "", window_s: float = 0.5,
                     now: float | None = None) -> bool:
        """A card was read at a till: remember its token for that till's next sale. False for a repeat.

        Repeats are told apart per reader (`reader`, a name): a card resting on it, or swiped twice within
        `window_s`, is one presentation.
        """
        till = self._tills[till_id]
        now = time.monotonic() if now is None else now
        debouncer = till.debouncers.setdefault(reader, Debouncer(window_s))
        token = card_token(self._pepper, card)
        if not debouncer.accept(token, now):
            return False
        # The till prints the last 4 of the number on the card (a fob's 10 digits, not the module's hex).
        pending = _PendingCard(token, mask_card_id(card.value), now + till.settings.card_hold_s)
        with self._lock:  # a sale being committed decides which card it consumed under this lock
            till.pending = pending
            self.counters["cards"] += 1
        log.debug("card %s presented at till %s", pending.masked, till_id)
        return True

    def handle_sale(self, till_id: str, payload: bytes, *, now: float | None = None) -> bytes:
        """Decide, journal and answer one POS request; returns the answer frame for the POS line.

        `now` is the monotonic time (a test may give its own, as for `present_card`).
        """
        started = time.perf_counter()
        try:
            request = parse_pos_request(payload)
        except PosRequestError as exc:
            return self._reject(till_id, _readable_sale_id(payload), str(exc))
        if request.till != till_id:
            # Crossed cables or a misconfigured till: recording it under either id would be a guess.
            self.counters["sales_wrong_till"] += 1
            return self._reject(till_id, request.sale_id,
                                f"request names till {request.till} but arrived on the line of till {till_id}")
        try:
            answer = self._record_sale(till_id, request, time.monotonic() if now is None else now)
        except ValidationError as exc:
            # The POS protocol let through what the event model refuses: refuse the request, clearly.
            return self._reject(till_id, request.sale_id, f"{exc.error_count()} field(s) out of range")
        except UnreadableRow as exc:
            # A repeat of a sale whose recorded answer no longer opens: sell without loyalty (the first
            # answer stands for the member); the journal itself works.
            self.counters["sales_failed_open"] += 1
            self._unreadable_log.warning("sale %s at till %s was recorded but %s; answered without loyalty",
                                         request.sale_id, till_id, exc)
            answer = SaleAnswer(sale_id=request.sale_id, status="error",
                                loyalty={"status": "unavailable", "points": 0, "balance": None}, card=None,
                                message="loyalty unavailable")
        except StoreError as exc:
            # Fail open: the till sells without loyalty rather than wait on a broken store. A full disk
            # fails every sale alike: one line when it starts, a summary a minute, one when it ends.
            self.counters["sales_failed_open"] += 1
            self._store_log.error("journal cannot record sales (%s); tills sell without loyalty", exc)
            answer = SaleAnswer(sale_id=request.sale_id, status="error",
                                loyalty={"status": "unavailable", "points": 0, "balance": None}, card=None,
                                message="loyalty unavailable")
        else:
            self._store_log.recovered("journal records sales again; loyalty is back")
        self.last_decision_ms = (time.perf_counter() - started) * 1000
        return encode_answer(answer)

    def _reject(self, till_id: str, sale_id: str | None, reason: str) -> bytes:
        self.counters["sales_rejected"] += 1
        log.warning("till %s sent a request we cannot use: %s", till_id, reason)
        return encode_answer(SaleAnswer(sale_id=sale_id, status="rejected", message=reason[:200]))

    def _record_sale(self, till_id: str, request: SaleRequest, now_mono: float) -> SaleAnswer:
        till = self._tills[till_id]
        items = [_line_item(item) for item in request.items]
        with self._lock:
            pending = till.pending if till.pending and till.pending.expires > now_mono else None
            sale_key = f"{till_id}:{request.sale_id}"
            conflict: SaleConflict | None = None
            with self.journal.transaction() as tx:
                existing = tx.find_sale(sale_key)
                if existing is not None:
                    sale = SaleRecorded.model_validate(existing.payload)
                    masked = None
                    # Compared as recorded (not as bytes): key order, spacing or an offset time zone
                    # do not make a resend a different sale; another item, price or cashier does.
                    same = (sale.cashier_id, sale.currency) == (request.cashier, request.currency) and [
                        item.model_dump(mode="json") for item in sale.items
                    ] == [item.model_dump(mode="json") for item in items]
                    if same:
                        self.counters["sales_repeated"] += 1
                    else:
                        # The first sale stands; the attempt is kept for HQ, and earns nothing. Once per
                        # content: a till sending the same conflicting request again adds nothing.
                        attempt = {"cashier": request.cashier, "currency": request.currency,
                                   "items": [item.model_dump(mode="json") for item in items]}
                        attempt_key = f"{sale_key}:conflict:{sha256_hex(canonical_bytes(attempt))[:32]}"
                        conflict = SaleConflict(
                            site_id=self.settings.site_id,
                            till_id=till_id,
                            cashier_id=request.cashier,
                            sale_id=request.sale_id,
                            original_seq=existing.seq,
                            currency=request.currency,
                            items=items,
                            total=sum(item.amount for item in items),
                        )
                        if not tx.has_sale_key(attempt_key):
                            self._append(tx, conflict, sale_key=attempt_key)
                else:
                    token = pending.token if pending else None
                    sale = decide_sale(
                        rules=self.rules.current,
                        site_id=self.settings.site_id,
                        till_id=till_id,
                        cashier_id=request.cashier,
                        sale_id=request.sale_id,
                        currency=request.currency,
                        items=items,
                        card_token=token,
                        balance_before=tx.balance(token) if token else 0,
                    )
                    self._append(tx, sale, sale_key=sale_key)
                    if token:
                        tx.add_points(token, sale.loyalty.points_earned)
                    masked = pending.masked if pending else None
            if existing is None:
                if till.pending is pending:  # a card presented meanwhile waits for the next sale
                    till.pending = None
                self.counters["sales"] += 1
            elif conflict is not None:
                self.counters["sales_conflicting"] += 1
        self.uplink.notify()
        if conflict is not None:
            log.warning("till %s reused sale id %s for a different sale; answered conflict", till_id,
                        request.sale_id)
            return SaleAnswer(sale_id=request.sale_id, status="conflict", loyalty=None, card=None,
                              message=f"sale_id {request.sale_id} was already used for a different sale; "
                                      "nothing earned")
        loyalty = sale.loyalty
        return SaleAnswer(
            sale_id=sale.sale_id,
            status="ok",
            loyalty={"status": loyalty.status, "points": loyalty.points_earned, "balance": loyalty.balance},
            card=masked,
            message=None,
        )

    def _append(self, tx: JournalTransaction, event: Payload, *, sale_key: str) -> None:
        """Journal `event` now, stamped by this box's clock; the caller's transaction commits it."""
        tx.append(
            type=event.event_type,
            payload=event.model_dump(mode="json"),
            event_id=uuid7(time.time_ns() // 1_000_000, os.urandom(10)),
            occurred_at=datetime.now(UTC),
            clock_ok=self._clock_state(),
            sale_key=sale_key,
        )

    def _clock_state(self) -> bool:
        if time.monotonic() - self._clock_checked > 60:
            self._clock_ok = clock_synchronised()
            self._clock_checked = time.monotonic()
        return self._clock_ok

    def status(self, online: bool) -> DeviceStatus:
        """The heartbeat the uplink publishes (retained), and the last will when `online` is False."""
        stats = self.journal.stats()
        health = self.peripherals.health()
        try:
            disk_free: int | None = shutil.disk_usage(self.settings.data_dir).free
        except OSError:
            disk_free = None
        return DeviceStatus(
            site_id=self.settings.site_id,
            device_id=self.settings.device_id,
            online=online,
            sent_at=datetime.now(UTC),
            clock_ok=self._clock_ok,
            version=__version__,
            last_seq=stats.last_seq,
            acked_seq=stats.acked_seq,
            backlog=stats.backlog,
            quarantined=stats.quarantined,
            disk_free_bytes=disk_free,
            rules_version=self.rules.current.version,
            rules_refusal=self.rules.refusal[:300] if self.rules.refusal else None,
            peripherals={name: device.state for name, device in health.items()},
            peripheral_health=health,
            counters=dict(self.counters),
        )
