"""The tills' counter: cards waiting at each till, and every request a till sends, decided (edge/decide.py),
journaled and answered.

A sale is answered only after its event is durably committed; if that cannot happen the till sells
without loyalty (fail open). Paying with points (edge/redeem.py) fails closed instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from edge.decide import MemberState, account_at_box
from edge.devices.pos import (
    STAFF_REQUESTS,
    Authorisation,
    CancelRequest,
    RedeemRequest,
    Released,
    SaleAnswer,
    SaleRequest,
    encode_answer,
    mask_card_id,
)
from edge.devices.pos import parse_request as parse_pos_request
from edge.devices.rdm6300 import Debouncer
from edge.directory import DirectoryKeeper
from edge.errors import PosRequestError, StoreError, UnreadableRow
from edge.guard import FraudGuard
from edge.holds import Hold, HoldBook, new_hold_id
from edge.logthrottle import LogThrottle
from edge.receipt import readable_sale_id
from edge.rules import RuleKeeper
from edge.settings import EdgeSettings, TillSettings
from edge.store import holds as hold_rows
from edge.store.journal import Journal
from edge.store.journal_tx import JournalTransaction
from protocol.blocklist import Blocklist
from protocol.canonical import canonical_bytes, sha256_hex
from protocol.cards import CardId, card_token
from protocol.events import Event, LineItem, RedemptionReleased, SaleConflict
from protocol.fields import Payload
from protocol.ids import uuid7

log = logging.getLogger(__name__)
UNAVAILABLE = {"status": "unavailable", "points": 0, "balance": None}


@dataclass
class PendingCard:
    token: str
    masked: str
    expires: float


@dataclass(frozen=True)
class Redeeming:
    """The till's last answer held or took points: a resend of it must still arrive in time."""

    request: SaleRequest | RedeemRequest
    hold_id: str | None  # an authorisation's hold; None for a capture
    started: float


@dataclass
class Till:
    settings: TillSettings
    debouncers: dict[str, Debouncer] = field(default_factory=dict)  # by reader: each repeats on its own
    pending: PendingCard | None = None
    badge: PendingCard | None = None  # a staff badge read at the till: for the next sign-in or approval
    last_answer: bytes | None = None
    answer_resends: int = 0
    redeeming: Redeeming | None = None


class Desk:
    """Every till's requests: `present_card`, `handle`; `expire_holds` now and then (the agent's timer)."""

    def __init__(self, settings: EdgeSettings, *, journal: Journal, rules: RuleKeeper, directory: DirectoryKeeper,
                 pepper: bytes, clock_ok: Callable[[], bool], notify: Callable[[], None],
                 hold_ids: Callable[[], str] = new_hold_id, wall: Callable[[], float] = time.time,
                 blocklist: Callable[[], Blocklist | None] = lambda: None) -> None:
        self.settings = settings
        self.journal = journal
        self.rules = rules
        self.directory = directory
        self._pepper = pepper
        self._clock_ok = clock_ok
        self.notify = notify
        self.hold_ids = hold_ids
        self.wall = wall
        self.lock = threading.Lock()
        self._store_log = LogThrottle(log)
        self._unreadable_log = LogThrottle(log)
        self.tills = {till.till_id: Till(settings=till) for till in settings.tills}
        with journal.transaction() as tx:
            self.holds = HoldBook(hold_rows.load(tx.connection))
        self.counters: dict[str, int] = {
            "sales": 0, "sales_repeated": 0, "sales_rejected": 0, "sales_failed_open": 0, "cards": 0, "naks": 0,
            "answers_resent": 0, "sales_conflicting": 0, "sales_wrong_till": 0, "redeems_authorised": 0,
            "redeems_declined": 0, "holds_captured": 0, "holds_released": 0, "holds_expired": 0,
            "redeems_late": 0,
        }
        self.last_decision_ms = 0.0
        self.guard = FraudGuard(site_id=settings.site_id, journal=journal, directory=directory, blocklist=blocklist,
                                clock_ok=clock_ok)
        self.pending_reversals: list[tuple[str, SaleRequest]] = []

    # ------------------------------------------------------------ cards

    def present_card(self, till_id: str, card: CardId, *, reader: str = "", window_s: float = 0.5,
                     now: float | None = None) -> bool:
        """A card was read at a till: remember its token for that till's next sale. False for a repeat.

        Repeats are told apart per reader (`reader`, a name): a card resting on it, or swiped twice within
        `window_s`, is one presentation.
        """
        till = self.tills[till_id]
        now = time.monotonic() if now is None else now
        debouncer = till.debouncers.setdefault(reader, Debouncer(window_s))
        token = card_token(self._pepper, card)
        if not debouncer.accept(token, now):
            return False
        # The till prints the last 4 of the number on the card (a fob's 10 digits, not the module's hex).
        pending = PendingCard(token, mask_card_id(card.value), now + till.settings.card_hold_s)
        badge = self.directory.badge(token) is not None
        with self.lock:  # a sale being committed decides which card it consumed under this lock
            if badge:  # a staff badge signs in or approves; it is never a sale's member card
                till.badge = pending
            else:
                till.pending = pending
            self.counters["cards"] += 1
        log.debug("card %s presented at till %s", pending.masked, till_id)
        return True

    # ------------------------------------------------------------ requests

    def handle(self, till_id: str, payload: bytes, *, now: float | None = None,
               received: float | None = None) -> bytes:
        """Decide, journal and answer one POS request; the answer frame for the POS line.

        `now` is the monotonic time (a test may give its own, as for `present_card`); `received`, the
        `time.perf_counter()` at which the request arrived (what the till's timeout runs from).
        """
        started = time.perf_counter() if received is None else received
        try:
            request = parse_pos_request(payload)
        except PosRequestError as exc:
            return self._reject(till_id, readable_sale_id(payload), str(exc))
        if request.till != till_id:
            # Crossed cables or a misconfigured till: recording it under either id would be a guess.
            self.counters["sales_wrong_till"] += 1
            return self._reject(till_id, getattr(request, "sale_id", None),
                                f"request names till {request.till} but arrived on the line of till {till_id}")
        # These build on this module: imported here, once its names exist.
        from edge.redeem import authorise_request, cancel_request, late, reverse_capture
        from edge.sales import record_sale
        from edge.staffdesk import staff_request

        now_mono = time.monotonic() if now is None else now
        till = self.tills[till_id]
        till.redeeming = None
        if isinstance(request, STAFF_REQUESTS):
            answer_frame = encode_answer(staff_request(self, till_id, request, now_mono))
            self.last_decision_ms = (time.perf_counter() - started) * 1000
            return answer_frame
        try:
            if isinstance(request, RedeemRequest):
                frame, hold = authorise_request(self, till_id, request, now_mono, started)
                if hold is not None:
                    till.redeeming = Redeeming(request, hold.hold_id, started)
                return frame
            if isinstance(request, CancelRequest):
                return encode_answer(cancel_request(self, till_id, request))
            answer = record_sale(self, till_id, request, now_mono, started)
            if answer.loyalty is not None and answer.loyalty.redeemed:
                if late(self, till_id, answer, started):
                    answer = reverse_capture(self, till_id, request)
                else:
                    till.redeeming = Redeeming(request, None, started)
        except ValidationError as exc:
            # The POS protocol let through what the event model refuses: refuse the request, clearly.
            return self._reject(till_id, request.sale_id, f"{exc.error_count()} field(s) out of range")
        except UnreadableRow as exc:
            # A repeat of a sale whose recorded answer no longer opens: sell without loyalty (the first
            # answer stands for the member); the journal itself works.
            self.counters["sales_failed_open"] += 1
            self._unreadable_log.warning("sale %s at till %s was recorded but %s; answered without loyalty",
                                         request.sale_id, till_id, exc)
            answer = SaleAnswer(sale_id=request.sale_id, status="error", loyalty=UNAVAILABLE, card=None,
                                message="loyalty unavailable")
        except StoreError as exc:
            # Fail open: the till sells without loyalty rather than wait on a broken store. A full disk
            # fails every sale alike: one line when it starts, a summary a minute, one when it ends.
            self.counters["sales_failed_open"] += 1
            self._store_log.error("journal cannot record sales (%s); tills sell without loyalty", exc)
            if not isinstance(request, SaleRequest):
                return encode_answer(Authorisation(sale_id=request.sale_id, status="error",
                                                   message="points unavailable; take payment")
                                     if isinstance(request, RedeemRequest) else
                                     Released(sale_id=request.sale_id, hold_id=request.hold_id, status="unknown"))
            answer = SaleAnswer(sale_id=request.sale_id, status="error", loyalty=UNAVAILABLE, card=None,
                                message="loyalty unavailable")
        except Exception as exc:  # a decision must never stop the till's line: sell without loyalty, say why once
            self.counters["sales_failed_open"] += 1
            self._unreadable_log.exception("sale %s at till %s could not be decided (%s); answered without loyalty",
                                           request.sale_id, till_id, type(exc).__name__)
            answer = SaleAnswer(sale_id=request.sale_id, status="error", loyalty=UNAVAILABLE, card=None,
                                message="loyalty unavailable")
        else:
            self._store_log.recovered("journal records sales again; loyalty is back")
        self.last_decision_ms = (time.perf_counter() - started) * 1000
        return encode_answer(answer)

    def forget_cards(self, tokens: list[str]) -> None:
        """An erased member's cards: this box's own points history for them goes (their points went with
        the member), so that a card presented again starts afresh."""
        with self.lock:
            try:
                with self.journal.transaction() as tx:
                    tx.forget_cards(tokens)
            except StoreError as exc:
                self._store_log.error("journal cannot forget an erased member's cards (%s)", exc)

    def _reject(self, till_id: str, sale_id: str | None, reason: str) -> bytes:
        self.counters["sales_rejected"] += 1
        log.warning("till %s sent a request we cannot use: %s", till_id, reason)
        return encode_answer(SaleAnswer(sale_id=sale_id, status="rejected", message=reason[:200]))

    def pending_card(self, till: Till, now_mono: float) -> PendingCard | None:
        return till.pending if till.pending and till.pending.expires > now_mono else None

    def member(self, tx: JournalTransaction, token: str, *, today: bool = False,
               at: datetime | None = None) -> MemberState:
        """A card's holder as this box sees them at `at` (now): the directory, this box's ledger since it,
        the time rules due, the holds; with `today`, also what the offline cap counts (a query a sale does
        not need)."""
        entry, tokens = self.directory.member(token)
        device = self.settings.device_id
        watermark = entry.seen.get(device, 0) if entry is not None else 0
        held = self.holds.held(tokens)
        programme = entry.programme if entry is not None else None
        at = at or datetime.fromtimestamp(self.wall(), UTC)
        local = tx.local_moves(tokens, watermark, device)
        account = account_at_box(self.rules.current, programme, entry.account if entry is not None else None,
                                 entry.balance if entry is not None else 0, local, at)
        return MemberState(
            token=token, member_id=entry.member_id if entry is not None else None,
            status=entry.status if entry is not None else "unknown", balance=account.balance, held=held,
            # The day as the journal stamps events (UTC).
            unconfirmed_today=held + (tx.redeemed_since(tokens, watermark, at.date()) if today else 0),
            account=account, programme=programme, birthday=entry.birthday if entry is not None else None,
        )

    def conflict(self, tx: JournalTransaction, request: SaleRequest, items: list[LineItem], sale_key: str,
                  existing: Event) -> SaleConflict:
        # The first sale stands; the attempt is kept for HQ, and earns nothing. Once per content: a till
        # sending the same conflicting request again adds nothing.
        attempt = {"cashier": request.cashier, "currency": request.currency,
                   "items": [item.model_dump(mode="json") for item in items]}
        attempt_key = f"{sale_key}:conflict:{sha256_hex(canonical_bytes(attempt))[:32]}"
        conflict = SaleConflict(site_id=self.settings.site_id, till_id=request.till, cashier_id=request.cashier,
                                sale_id=request.sale_id, original_seq=existing.seq, currency=request.currency,
                                items=items, total=sum(item.amount for item in items))
        if not tx.has_sale_key(attempt_key):
            self.append(tx, conflict, sale_key=attempt_key)
        return conflict

    # ------------------------------------------------------------ holds

    def journal_release(self, tx: JournalTransaction, hold: Hold,
                        reason: Literal["cancelled", "expired", "late", "unused"]) -> None:
        """Journal that `hold` ends without paying (cancelled, expired, late) and drop its row, in `tx`. The
        book follows once the transaction commits (`closed`): a rolled-back release leaves the hold open."""
        self.append(tx, RedemptionReleased(site_id=self.settings.site_id, till_id=hold.till_id, sale_id=hold.sale_id,
                                           hold_id=hold.hold_id, card_token=hold.token, points=hold.points,
                                           reason=reason),
                    sale_key=f"{hold.till_id}:{hold.sale_id}:{hold.hold_id}:{reason}")
        hold_rows.drop(tx.connection, hold.hold_id)

    def closed(self, holds: list[tuple[str, str]], now: float) -> None:
        """The book after a committed transaction closed `holds` (id, how: captured, expired, cancelled, late)."""
        for hold_id, how in holds:
            done = self.holds.capture(hold_id, now) if how == "captured" else self.holds.release(hold_id)
            if done is not None:
                self.counters[{"captured": "holds_captured", "expired": "holds_expired"}.get(how, "holds_released")] \
                    += 1

    def expire_holds(self) -> int:
        """Release every hold whose time is up; how many."""
        with self.lock:
            now = self.wall()
            expired = self.holds.expired(now)
            if not expired:
                return 0
            try:
                with self.journal.transaction() as tx:
                    for hold in expired:
                        self.journal_release(tx, hold, "expired")
            except StoreError as exc:
                self._store_log.error("journal cannot record lapsed holds (%s); tried again shortly", exc)
                return 0
            self.closed([(hold.hold_id, "expired") for hold in expired], now)
        self.notify()
        return len(expired)

    def append(self, tx: JournalTransaction, event: Payload, *, sale_key: str | None,
               at: datetime | None = None) -> Event:
        """Journal `event`, stamped `at` (now) by this box's clock; the caller's transaction commits it."""
        return tx.append(type=event.event_type, payload=event.model_dump(mode="json"),
                         event_id=uuid7(time.time_ns() // 1_000_000, os.urandom(10)),
                         occurred_at=at or datetime.now(UTC),
                         clock_ok=self._clock_ok(), sale_key=sale_key)
