"""Staff at the till (POS protocol v1.3, docs/pos-protocol.md section 10): sign in and out, refunds and voids
(the points a sale earned taken back pro rata), overrides, the drawer, and a supervisor's decision on a sale the
fraud rules held. Each request is journaled (the hash chain keeps the record honest) before it is answered;
a journal that cannot record answers `error` and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edge.devices.pos_messages import FraudLine
from edge.devices.pos_staff import (
    ApproveRequest,
    DrawerRequest,
    OverrideRequest,
    RefundRequest,
    SignInRequest,
    SignOutRequest,
    StaffAnswer,
    StaffRequest,
    VoidRequest,
)
from edge.errors import StoreError
from edge.guard import fraud_message
from edge.logthrottle import LogThrottle
from protocol.canonical import canonical_bytes, sha256_hex
from protocol.events import SaleRecorded
from protocol.fraud import FraudOutcome
from protocol.fraud_checks import Verdict
from protocol.fraud_window import Seen, seen_from
from protocol.loyalty import RefundPoints, approval_move, refund_move, refund_points
from protocol.staff import (
    APPROVERS,
    DrawerOpened,
    HoldDecided,
    PriceOverride,
    SaleRefunded,
    StaffEntry,
    StaffSignedIn,
    StaffSignedOut,
)

if TYPE_CHECKING:
    from edge.desk import Desk, Till
    from edge.store.journal_tx import JournalTransaction

log = logging.getLogger(__name__)
_store_log = LogThrottle(log)


@dataclass
class Done:
    """A handler's answer and what its transaction changes in the fraud rules' memory once it commits."""

    answer: StaffAnswer
    seen: Seen | None = None
    verdict: Verdict | None = None
    raised: list[tuple[str, date]] = field(default_factory=list)
    shift: tuple[str, str] | None = None
    """("start", staff id) or ("end", staff id) at the till."""


def staff_request(desk: Desk, till_id: str, request: StaffRequest, now_mono: float) -> StaffAnswer:
    """Journal and answer one staff request; never raises (a failing journal answers `error`)."""
    try:
        with desk.lock:
            at = datetime.fromtimestamp(desk.wall(), UTC)
            rules = desk.rules.current
            with desk.journal.transaction() as tx:
                done = _HANDLERS[type(request)](desk, tx, till_id, request, at, now_mono)
            desk.guard.committed(rules, at=at, raised=done.raised, seen=done.seen, verdict=done.verdict)
            if done.shift is not None:
                window = desk.guard.window_for(rules, at)
                if done.shift[0] == "start":
                    window.shift_started(till_id, done.shift[1], at)
                else:
                    window.shift_ended(till_id, at)
            if isinstance(request, SignInRequest | ApproveRequest | OverrideRequest):
                desk.tills[till_id].badge = None  # a badge vouches for one action
            name = f"staff_{done.answer.request}"
            desk.counters[name] = desk.counters.get(name, 0) + 1
    except StoreError as exc:
        _store_log.error("journal cannot record staff actions (%s); the till carries on", exc)
        return StaffAnswer(request=request.type, status="error", message="the box cannot record this now")
    except ValidationError as exc:  # the request let through what an event refuses: say which fields, never values
        fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
        _store_log.error("a staff request (%s) at till %s could not be recorded: fields %s", request.type, till_id,
                         fields[:200])
        return StaffAnswer(request=request.type, status="error", message="the box could not record this")
    except Exception as exc:  # a staff request must never stop the till's line
        _store_log.error("staff request %s at till %s failed (%s)", request.type, till_id, type(exc).__name__)
        return StaffAnswer(request=request.type, status="error", message="the box could not record this")
    _store_log.recovered("staff actions are recorded again")
    desk.notify()
    return done.answer


def _badge(desk: Desk, till: Till, now_mono: float) -> StaffEntry | None:
    """The staff member whose badge was read at the till just before, if still fresh."""
    badge = till.badge
    if badge is None or badge.expires <= now_mono:
        return None
    return desk.directory.badge(badge.token)


def _sign_in(desk: Desk, tx: JournalTransaction, till_id: str, request: SignInRequest, at: datetime,
             now_mono: float) -> Done:
    staff = desk.directory.staff(request.cashier)
    known = staff is not None and staff.works_at(desk.settings.site_id)
    badge = _badge(desk, desk.tills[till_id], now_mono)
    shift = desk.guard.window_for(desk.rules.current, at).shift_of(till_id)
    if shift is not None and shift[0] != request.cashier:
        desk.append(tx, StaffSignedOut(site_id=desk.settings.site_id, till_id=till_id, staff_id=shift[0],
                                       reason="replaced"), sale_key=None, at=at)
    desk.append(tx, StaffSignedIn(site_id=desk.settings.site_id, till_id=till_id, staff_id=request.cashier,
                                  badge=badge is not None and badge.staff_id == request.cashier, known=known),
                sale_key=None, at=at)
    if not known:
        return Done(StaffAnswer(request="signin", status="refused",
                                message="this code is not an active staff member of this site: recorded"),
                    shift=("end", shift[0]) if shift is not None and shift[0] != request.cashier else None)
    # Signing in again while signed in keeps the shift from its first sign-in (`FraudWindow.shift_started`).
    return Done(StaffAnswer(request="signin", status="ok"), shift=("start", request.cashier))


def _sign_out(desk: Desk, tx: JournalTransaction, till_id: str, request: SignOutRequest, at: datetime,
              now_mono: float) -> Done:
    shift = desk.guard.window_for(desk.rules.current, at).shift_of(till_id)
    desk.append(tx, StaffSignedOut(site_id=desk.settings.site_id, till_id=till_id, staff_id=request.cashier),
                sale_key=None, at=at)
    if shift is None or shift[0] != request.cashier:
        return Done(StaffAnswer(request="signout", status="refused", message="not signed in at this till: recorded"))
    return Done(StaffAnswer(request="signout", status="ok"), shift=("end", request.cashier))


def _refund(desk: Desk, tx: JournalTransaction, till_id: str, request: RefundRequest | VoidRequest, at: datetime,
            now_mono: float) -> Done:
    kind = "void" if isinstance(request, VoidRequest) else "refund"
    sale_till = request.sale_till or till_id
    sale_key = f"{sale_till}:{request.sale_id}"
    refund_id = request.refund_id if isinstance(request, RefundRequest) else f"void-{request.sale_id}"
    key = f"{sale_key}:{kind}:{refund_id}" if kind == "refund" else f"{sale_key}:void"
    repeat = tx.find_sale(key)
    if repeat is not None:  # the till missed the answer: the same one again
        return Done(_refunded(SaleRefunded.model_validate(repeat.payload), None))
    found = tx.find_sale(sale_key)
    sale = SaleRecorded.model_validate(found.payload) if found is not None and found.type == "sale.recorded" else None
    earlier = [SaleRefunded.model_validate(event.payload) for event in tx.find_keyed(f"{sale_key}:")
               if event.type == "sale.refunded"]
    refunded = sum(item.amount for item in earlier)
    if sale is not None and found is not None:
        left = sale.total - refunded
        amount = left if isinstance(request, VoidRequest) else request.amount
        if isinstance(request, RefundRequest) and request.currency != sale.currency:
            return Done(StaffAnswer(request=kind, status="refused", sale_id=request.sale_id,
                                    message=f"the sale was in {sale.currency}, not {request.currency}"))
        if amount <= 0 or amount > left:
            return Done(StaffAnswer(request=kind, status="refused", sale_id=request.sale_id,
                                    message=f"nothing left to refund of this sale ({left} left)" if left <= 0 else
                                    f"the refund exceeds what is left of the sale ({left})"))
        if tx.has_sale_key(f"{sale_key}:reversed"):
            # Its points were given back already (the answer reached the till too late): none to return again.
            sale = sale.model_copy(update={"loyalty": sale.loyalty.model_copy(update={"points_redeemed": 0})})
        decided = tx.find_sale(f"{sale_key}:decided") if sale.loyalty.status == "held" else None
        points = refund_points(sale, amount, refunded_before=refunded, before=RefundPoints(
            sum(item.points_reversed for item in earlier), sum(item.points_returned for item in earlier),
            sum(item.spend_reversed for item in earlier)),
            approval=HoldDecided.model_validate(decided.payload) if decided is not None else None)
        earning, original = points.points_reversed > 0, found.seq  # as a rebuild from the journal reads it
    elif isinstance(request, VoidRequest):
        return Done(StaffAnswer(request=kind, status="refused", sale_id=request.sale_id,
                                message="this box holds no such sale to void"))
    else:
        # Recorded on the till's word; the rate rules count it as an earning sale's refund (it cannot be checked).
        amount, points, earning, original = request.amount, RefundPoints(0, 0, 0), True, None
    rules = desk.rules.current
    verdict = desk.guard.check_refund(rules, at=at, till_id=till_id, cashier_id=request.cashier, earning=earning)
    refund = SaleRefunded(
        site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier, kind=kind, refund_id=refund_id,
        sale_id=request.sale_id, original_till_id=sale_till, original_seq=original, amount=amount,
        card_token=sale.card_token if sale is not None else None, points_reversed=points.points_reversed,
        points_returned=points.points_returned, spend_reversed=points.spend_reversed, fraud=verdict.outcome())
    event = desk.append(tx, refund, sale_key=key, at=at)
    move = refund_move(refund, event.occurred_at, (desk.settings.device_id, event.seq))
    if move is not None and refund.card_token is not None:
        tx.add_ledger(event.seq, refund.card_token, move.points, "refund", event.occurred_at.astimezone(UTC).date(),
                      move)
    raised = desk.guard.raise_alerts(tx, rules, verdict, at=at, till_id=till_id, cashier_id=request.cashier,
                                     sale_id=request.sale_id)
    note = None if sale is not None else "this box holds no such sale: recorded, no points taken back"
    return Done(_refunded(refund, note), seen=seen_from(refund, at), verdict=verdict, raised=raised)


def _refunded(refund: SaleRefunded, note: str | None) -> StaffAnswer:
    return StaffAnswer(request=refund.kind, status="ok", sale_id=refund.sale_id,
                       points_reversed=refund.points_reversed, points_returned=refund.points_returned,
                       fraud=_line(refund.fraud), message=note)


def _override(desk: Desk, tx: JournalTransaction, till_id: str, request: OverrideRequest, at: datetime,
              now_mono: float) -> Done:
    # A resend of the same request (the till missed the answer) is the same override, recorded once.
    key = f"{till_id}:{request.sale_id}:override:{sha256_hex(canonical_bytes(request.model_dump(mode='json')))[:32]}"
    repeat = tx.find_sale(key)
    if repeat is not None:
        recorded = PriceOverride.model_validate(repeat.payload)
        return Done(StaffAnswer(request="override", status="ok", sale_id=request.sale_id, fraud=_line(recorded.fraud)))
    rules = desk.rules.current
    verdict = desk.guard.check_override(rules, at=at, till_id=till_id, cashier_id=request.cashier)
    supervisor = _badge(desk, desk.tills[till_id], now_mono)
    approved_by = supervisor.staff_id if supervisor is not None and supervisor.role in APPROVERS \
        and supervisor.works_at(desk.settings.site_id) and supervisor.staff_id != request.cashier else None
    override = PriceOverride(site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier,
                             kind=request.kind, sale_id=request.sale_id, amount=request.amount, reason=request.reason,
                             approved_by=approved_by, fraud=verdict.outcome())
    desk.append(tx, override, sale_key=key, at=at)
    raised = desk.guard.raise_alerts(tx, rules, verdict, at=at, till_id=till_id, cashier_id=request.cashier,
                                     sale_id=request.sale_id)
    return Done(StaffAnswer(request="override", status="ok", sale_id=request.sale_id, fraud=_line(override.fraud)),
                seen=seen_from(override, at), verdict=verdict, raised=raised)


def _drawer(desk: Desk, tx: JournalTransaction, till_id: str, request: DrawerRequest, at: datetime,
            now_mono: float) -> Done:
    desk.append(tx, DrawerOpened(site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier,
                                 reason=request.reason), sale_key=None, at=at)
    return Done(StaffAnswer(request="drawer", status="ok"))


def _approve(desk: Desk, tx: JournalTransaction, till_id: str, request: ApproveRequest, at: datetime,
             now_mono: float) -> Done:
    sale_key = f"{till_id}:{request.sale_id}"
    decided = tx.find_sale(f"{sale_key}:decided")
    if decided is not None:
        done = HoldDecided.model_validate(decided.payload)
        if (done.supervisor_id, done.approved) == (request.cashier, request.approve):  # a resend: the same answer
            return Done(_decided(done))
        return Done(StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                                message="this sale was decided already"))
    supervisor = _badge(desk, desk.tills[till_id], now_mono)
    if supervisor is None or supervisor.staff_id != request.cashier or supervisor.role not in APPROVERS \
            or not supervisor.works_at(desk.settings.site_id):
        return Done(StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                                message="read a supervisor's badge at this till, then approve under their code"))
    found = tx.find_sale(sale_key)
    sale = SaleRecorded.model_validate(found.payload) if found is not None and found.type == "sale.recorded" else None
    if found is None or sale is None or sale.loyalty.status != "held" or sale.card_token is None:
        return Done(StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                                message="no sale held for a supervisor under this id at this till"))
    entry = desk.directory.member(sale.card_token)[0]
    owner = desk.directory.staff_of_member(entry.member_id) if entry is not None else None
    if supervisor.staff_id == sale.cashier_id or (owner is not None and owner.staff_id == supervisor.staff_id):
        return Done(StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                                message="a supervisor cannot approve a sale they rang up or on their own card"))
    refunded = sum(SaleRefunded.model_validate(event.payload).amount for event in tx.find_keyed(f"{sale_key}:")
                   if event.type == "sale.refunded")
    kept = max(0, sale.total - refunded)  # refunded money earns nothing once released
    loyalty = sale.loyalty
    decision = HoldDecided(
        site_id=desk.settings.site_id, till_id=till_id, sale_id=request.sale_id, sale_seq=found.seq,
        supervisor_id=supervisor.staff_id, approved=request.approve, card_token=sale.card_token,
        points=loyalty.points_held * kept // sale.total if request.approve and sale.total else 0,
        spend=(loyalty.spend or 0) * kept // sale.total if request.approve and sale.total else 0,
        visit=bool(loyalty.visit) and request.approve and kept > 0, kept=kept)
    event = desk.append(tx, decision, sale_key=f"{sale_key}:decided", at=at)
    move = approval_move(decision, event.occurred_at, (desk.settings.device_id, event.seq))
    if move is not None:
        tx.add_ledger(event.seq, sale.card_token, move.points, "approval", event.occurred_at.astimezone(UTC).date(),
                      move)
    return Done(_decided(decision))


def _decided(decision: HoldDecided) -> StaffAnswer:
    return StaffAnswer(request="approve", status="ok", sale_id=decision.sale_id, points=decision.points,
                       message=None if decision.approved else "the held points are dropped")


def _line(outcome: FraudOutcome | None) -> FraudLine | None:
    if outcome is None or outcome.action == "allow":
        return None
    return FraudLine(action=outcome.action, reasons=list(outcome.reasons), message=fraud_message(outcome))


_HANDLERS: dict[type, Callable[..., Done]] = {
    SignInRequest: _sign_in, SignOutRequest: _sign_out, RefundRequest: _refund, VoidRequest: _refund,
    OverrideRequest: _override, DrawerRequest: _drawer, ApproveRequest: _approve}
