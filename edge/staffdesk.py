"""Staff at the till (POS protocol v1.3, docs/pos-protocol.md section 10): sign in and out, refunds and voids
(the points a sale earned taken back pro rata), overrides, the drawer, and a supervisor's decision on a sale the
fraud rules held. Each request is journaled (the hash chain keeps the record honest) before it is answered;
a journal that cannot record answers `error` and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

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
from protocol.events import SaleRecorded
from protocol.fraud import FraudOutcome
from protocol.fraud_window import Seen, Verdict, seen_from
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


def staff_request(desk: Desk, till_id: str, request: StaffRequest, now_mono: float) -> StaffAnswer:
    """Journal and answer one staff request; never raises (a failing journal answers `error`)."""
    try:
        with desk.lock:
            at = datetime.fromtimestamp(desk.wall(), UTC)
            seen: Seen | None = None
            with desk.journal.transaction() as tx:
                answer, seen = _HANDLERS[type(request)](desk, tx, till_id, request, at, now_mono)
            if seen is not None:
                desk.guard.saw(seen, desk.rules.current)
            if isinstance(request, SignInRequest | ApproveRequest | OverrideRequest):
                desk.tills[till_id].badge = None  # a badge vouches for one action
            desk.counters[f"staff_{answer.request}"] = desk.counters.get(f"staff_{answer.request}", 0) + 1
    except StoreError as exc:
        _store_log.error("journal cannot record staff actions (%s); the till carries on", exc)
        return StaffAnswer(request=request.type, status="error", message="the box cannot record this now")
    except Exception as exc:  # a staff request must never stop the till's line
        log.exception("staff request %s at till %s failed (%s)", request.type, till_id, type(exc).__name__)
        return StaffAnswer(request=request.type, status="error", message="the box could not record this")
    desk.notify()
    return answer


def _badge(desk: Desk, till: Till, now_mono: float) -> StaffEntry | None:
    """The staff member whose badge was read at the till just before, if still fresh."""
    badge = till.badge
    if badge is None or badge.expires <= now_mono:
        return None
    return desk.directory.badge(badge.token)


def _sign_in(desk: Desk, tx: JournalTransaction, till_id: str, request: SignInRequest, at: datetime,
             now_mono: float) -> tuple[StaffAnswer, None]:
    staff = desk.directory.staff(request.cashier)
    known = staff is not None and staff.works_at(desk.settings.site_id)
    badge = _badge(desk, desk.tills[till_id], now_mono)
    window = desk.guard.window_for(desk.rules.current, at)
    shift = window.shift_of(till_id)
    if shift is not None:
        desk.append(tx, StaffSignedOut(site_id=desk.settings.site_id, till_id=till_id, staff_id=shift[0],
                                       reason="replaced"), sale_key=None, at=at)
        window.shift_ended(till_id, at)
    desk.append(tx, StaffSignedIn(site_id=desk.settings.site_id, till_id=till_id, staff_id=request.cashier,
                                  badge=badge is not None and badge.staff_id == request.cashier, known=known),
                sale_key=None, at=at)
    if not known:
        return StaffAnswer(request="signin", status="refused",
                           message="this code is not an active staff member of this site: recorded"), None
    window.shift_started(till_id, request.cashier, at)
    return StaffAnswer(request="signin", status="ok"), None


def _sign_out(desk: Desk, tx: JournalTransaction, till_id: str, request: SignOutRequest, at: datetime,
              now_mono: float) -> tuple[StaffAnswer, None]:
    window = desk.guard.window_for(desk.rules.current, at)
    shift = window.shift_of(till_id)
    desk.append(tx, StaffSignedOut(site_id=desk.settings.site_id, till_id=till_id, staff_id=request.cashier),
                sale_key=None, at=at)
    if shift is None or shift[0] != request.cashier:
        return StaffAnswer(request="signout", status="refused", message="not signed in at this till: recorded"), None
    window.shift_ended(till_id, at)
    return StaffAnswer(request="signout", status="ok"), None


def _refund(desk: Desk, tx: JournalTransaction, till_id: str, request: RefundRequest | VoidRequest, at: datetime,
            now_mono: float) -> tuple[StaffAnswer, Seen | None]:
    kind = "void" if isinstance(request, VoidRequest) else "refund"
    sale_till = request.sale_till or till_id
    sale_key = f"{sale_till}:{request.sale_id}"
    refund_id = request.refund_id if isinstance(request, RefundRequest) else f"void-{request.sale_id}"
    key = f"{sale_key}:{kind}:{refund_id}" if kind == "refund" else f"{sale_key}:void"
    repeat = tx.find_sale(key)
    if repeat is not None:  # the till missed the answer: the same one again
        done = SaleRefunded.model_validate(repeat.payload)
        return _refunded(done, None), None
    found = tx.find_sale(sale_key)
    sale = SaleRecorded.model_validate(found.payload) if found is not None and found.type == "sale.recorded" else None
    earlier = [SaleRefunded.model_validate(event.payload) for event in tx.find_keyed(f"{sale_key}:")
               if event.type == "sale.refunded"]
    refunded = sum(item.amount for item in earlier)
    if sale is not None:
        left = sale.total - refunded
        amount = left if kind == "void" else request.amount  # type: ignore[union-attr]
        if amount <= 0 or amount > left:
            return StaffAnswer(request=kind, status="refused", sale_id=request.sale_id,
                               message=f"nothing left to refund of this sale ({left} left)" if left <= 0 else
                               f"the refund exceeds what is left of the sale ({left})"), None
        decided = tx.find_sale(f"{sale_key}:decided") if sale.loyalty.status == "held" else None
        points = refund_points(sale, amount, refunded_before=refunded, before=RefundPoints(
            sum(item.points_reversed for item in earlier), sum(item.points_returned for item in earlier),
            sum(item.spend_reversed for item in earlier)),
            approval=HoldDecided.model_validate(decided.payload) if decided is not None else None)
        earning = points.points_reversed > 0  # as a rebuild from the journal reads it
    else:
        if kind == "void":
            return StaffAnswer(request=kind, status="refused", sale_id=request.sale_id,
                               message="this box holds no such sale to void"), None
        amount, points, earning = request.amount, RefundPoints(0, 0, 0), False  # type: ignore[union-attr]
    rules = desk.rules.current
    verdict = desk.guard.check_refund(rules, at=at, till_id=till_id, cashier_id=request.cashier, earning=earning)
    refund = SaleRefunded(
        site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier, kind=kind, refund_id=refund_id,
        sale_id=request.sale_id, original_till_id=sale_till, original_seq=found.seq if sale is not None and found
        else None, amount=amount, card_token=sale.card_token if sale is not None else None,
        points_reversed=points.points_reversed, points_returned=points.points_returned,
        spend_reversed=points.spend_reversed, fraud=verdict.outcome())
    event = desk.append(tx, refund, sale_key=key, at=at)
    move = refund_move(refund, event.occurred_at, (desk.settings.device_id, event.seq))
    if move is not None and refund.card_token is not None:
        tx.add_ledger(event.seq, refund.card_token, move.points, "refund", event.occurred_at.astimezone(UTC).date(),
                      move)
    desk.guard.raise_alerts(tx, rules, verdict, at=at, till_id=till_id, cashier_id=request.cashier,
                            sale_id=request.sale_id)
    desk.guard.counted(verdict)
    note = None if sale is not None else "this box holds no such sale: recorded, no points taken back"
    return _refunded(refund, note, verdict), seen_from(refund, at)


def _refunded(refund: SaleRefunded, note: str | None, verdict: Verdict | None = None) -> StaffAnswer:
    outcome = verdict.outcome() if verdict is not None else refund.fraud
    return StaffAnswer(request=refund.kind, status="ok", sale_id=refund.sale_id,
                       points_reversed=refund.points_reversed, points_returned=refund.points_returned,
                       fraud=_line(outcome), message=note)


def _override(desk: Desk, tx: JournalTransaction, till_id: str, request: OverrideRequest, at: datetime,
              now_mono: float) -> tuple[StaffAnswer, Seen]:
    rules = desk.rules.current
    verdict = desk.guard.check_override(rules, at=at, till_id=till_id, cashier_id=request.cashier)
    supervisor = _badge(desk, desk.tills[till_id], now_mono)
    approved_by = supervisor.staff_id if supervisor is not None and supervisor.role in APPROVERS else None
    desk.append(tx, PriceOverride(site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier,
                                  kind=request.kind, sale_id=request.sale_id, amount=request.amount,
                                  reason=request.reason, approved_by=approved_by, fraud=verdict.outcome()),
                sale_key=None, at=at)
    desk.guard.raise_alerts(tx, rules, verdict, at=at, till_id=till_id, cashier_id=request.cashier,
                            sale_id=request.sale_id)
    desk.guard.counted(verdict)
    return (StaffAnswer(request="override", status="ok", sale_id=request.sale_id, fraud=_line(verdict.outcome())),
            Seen(at=at, kind="override", till_id=till_id, cashier_id=request.cashier))  # as `seen_from` reads it


def _drawer(desk: Desk, tx: JournalTransaction, till_id: str, request: DrawerRequest, at: datetime,
            now_mono: float) -> tuple[StaffAnswer, None]:
    desk.append(tx, DrawerOpened(site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier,
                                 reason=request.reason), sale_key=None, at=at)
    return StaffAnswer(request="drawer", status="ok"), None


def _approve(desk: Desk, tx: JournalTransaction, till_id: str, request: ApproveRequest, at: datetime,
             now_mono: float) -> tuple[StaffAnswer, None]:
    supervisor = _badge(desk, desk.tills[till_id], now_mono)
    if supervisor is None or supervisor.staff_id != request.cashier or supervisor.role not in APPROVERS \
            or not supervisor.works_at(desk.settings.site_id):
        return StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                           message="read a supervisor's badge at this till, then approve under their code"), None
    sale_key = f"{till_id}:{request.sale_id}"
    found = tx.find_sale(sale_key)
    sale = SaleRecorded.model_validate(found.payload) if found is not None and found.type == "sale.recorded" else None
    if found is None or sale is None or sale.loyalty.status != "held" or sale.card_token is None:
        return StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                           message="no sale held for a supervisor under this id at this till"), None
    if tx.has_sale_key(f"{sale_key}:decided"):
        return StaffAnswer(request="approve", status="refused", sale_id=request.sale_id,
                           message="this sale was decided already"), None
    refunded = sum(SaleRefunded.model_validate(event.payload).amount for event in tx.find_keyed(f"{sale_key}:")
                   if event.type == "sale.refunded")
    kept = max(0, sale.total - refunded)  # refunded money earns nothing once released
    loyalty = sale.loyalty
    decision = HoldDecided(
        site_id=desk.settings.site_id, till_id=till_id, sale_id=request.sale_id, sale_seq=found.seq,
        supervisor_id=supervisor.staff_id, approved=request.approve, card_token=sale.card_token,
        points=loyalty.points_held * kept // sale.total if request.approve and sale.total else 0,
        spend=(loyalty.spend or 0) * kept // sale.total if request.approve and sale.total else 0,
        visit=bool(loyalty.visit) and request.approve and kept > 0)
    event = desk.append(tx, decision, sale_key=f"{sale_key}:decided", at=at)
    move = approval_move(decision, event.occurred_at, (desk.settings.device_id, event.seq))
    if move is not None:
        tx.add_ledger(event.seq, sale.card_token, move.points, "approval", event.occurred_at.astimezone(UTC).date(),
                      move)
    return StaffAnswer(request="approve", status="ok", sale_id=request.sale_id, points=decision.points,
                       message=None if request.approve else "the held points are dropped"), None


def _line(outcome: FraudOutcome | None) -> FraudLine | None:
    if outcome is None or outcome.action == "allow":
        return None
    return FraudLine(action=outcome.action, reasons=list(outcome.reasons), message=fraud_message(outcome))


_HANDLERS: dict[type, Callable[..., tuple[StaffAnswer, Seen | None]]] = {
    SignInRequest: _sign_in, SignOutRequest: _sign_out, RefundRequest: _refund, VoidRequest: _refund,
    OverrideRequest: _override, DrawerRequest: _drawer, ApproveRequest: _approve}

