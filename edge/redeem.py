"""Paying with points at the till, two-phase: authorise and hold, capture with the sale (edge/desk.py), or
cancel; a hold never confirmed lapses (`Desk.expire_holds`). docs/pos-protocol.md section 8.

Fails closed: when the box cannot decide, or its answer could not reach the till within the till's
timeout, nothing is held or taken. The box measures its own time from the request's arrival and adds the
answer's time on the wire; an authorisation answered too late is released at once, a capture answered too
late is given back (`redemption.reversed`), so a member never pays for a sale the till completed without
their points.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from edge.decide import authorise
from edge.desk import Desk
from edge.devices.pos import (
    Authorisation,
    CancelRequest,
    FraudLine,
    RedeemRequest,
    Released,
    SaleAnswer,
    SaleRequest,
    encode_answer,
)
from edge.errors import StoreError
from edge.guard import fraud_message
from edge.holds import Hold
from edge.receipt import late_frame, line_items
from edge.store import holds as hold_rows
from protocol.events import RedemptionAuthorised, RedemptionReversed, SaleRecorded
from protocol.fraud_checks import Verdict
from protocol.fraud_window import Seen
from protocol.loyalty import reversal_move

log = logging.getLogger(__name__)


def late(desk: Desk, till_id: str, answer: SaleAnswer | Authorisation, started: float) -> bool:
    """True when `answer`, sent now, would reach the till after its timeout (less a safety margin)."""
    return late_frame(desk.tills[till_id].settings, len(encode_answer(answer)), started)


def authorise_request(desk: Desk, till_id: str, request: RedeemRequest, now_mono: float,
                      started: float) -> tuple[bytes, Hold | None]:
    """Hold points for a sale about to complete, against the member's balance less holds and the offline cap;
    the answer frame and the hold it opened (None: nothing held)."""
    till = desk.tills[till_id]
    items = line_items(request.items)
    rules = desk.rules.current
    sale_key = f"{till_id}:{request.sale_id}"
    hold: Hold | None = None
    raised: list[tuple[str, date]] = []
    verdict = Verdict("allow")
    with desk.lock:
        pending = desk.pending_card(till, now_mono)
        with desk.journal.transaction() as tx:
            repeat = desk.holds.for_sale(till_id, request.sale_id)
            if tx.has_sale_key(sale_key):
                answer = Authorisation(sale_id=request.sale_id, status="rejected",
                                       message=f"sale {request.sale_id} is already completed")
            elif repeat is not None:  # the till asked again: the hold it has stands
                member = desk.member(tx, repeat.token)
                answer = _authorised(desk, request, repeat, member.available, pending.masked if pending else None)
            elif pending is None:
                answer = _declined(request, "no member card presented at this till")
            else:
                member = desk.member(tx, pending.token, today=True)
                plan = authorise(rules, items, member, points=request.points, amount=request.amount,
                                 currency=request.currency)
                at = datetime.fromtimestamp(desk.wall(), UTC)
                verdict = desk.guard.check_redeem(rules, at=at, till_id=till_id, cashier_id=request.cashier,
                                                  member=member)
                raised = desk.guard.raise_alerts(tx, rules, verdict, at=at, till_id=till_id,
                                                 cashier_id=request.cashier, sale_id=request.sale_id, member=member)
                outcome = verdict.outcome()
                if not desk.directory.readable:  # its balance would be this box's alone: fail closed
                    answer = _declined(request, "the member directory cannot be read; take payment")
                elif outcome is not None and outcome.action in ("hold", "decline"):
                    # Fails closed like every redemption in doubt: the member pays with money; HQ is alerted.
                    answer = _declined(request, fraud_message(outcome)).model_copy(update={"fraud": FraudLine(
                        action=outcome.action, reasons=list(outcome.reasons), message=fraud_message(outcome))
                        if request.fraud else None})
                elif not plan.approved:
                    answer = _declined(request, plan.reason or "declined")
                else:
                    hold = Hold(desk.hold_ids(), till_id, request.sale_id, pending.token, plan.points, plan.amount,
                                expires_at=desk.wall() + rules.redemption.hold_s)
                    desk.append(tx, RedemptionAuthorised(
                        site_id=desk.settings.site_id, till_id=till_id, sale_id=request.sale_id, hold_id=hold.hold_id,
                        card_token=hold.token, points=hold.points, amount=hold.amount, currency=request.currency,
                        expires_at=datetime.fromtimestamp(hold.expires_at, UTC), rules_version=rules.version,
                    ), sale_key=f"{sale_key}:hold:{hold.hold_id}")
                    hold_rows.save(tx.connection, hold)
                    answer = _authorised(desk, request, hold, member.available - hold.points, pending.masked)
        now = datetime.fromtimestamp(desk.wall(), UTC)
        desk.guard.committed(rules, at=now, raised=raised, verdict=verdict, seen=Seen(
            at=now, kind="redeem", till_id=till_id, cashier_id="", token=hold.token, points=hold.points)
            if hold is not None else None)  # as a rebuild from the journal reads it (`seen_from`)
        if hold is not None:
            desk.holds.add(hold)
            desk.counters["redeems_authorised"] += 1
        elif answer.status == "declined":
            desk.counters["redeems_declined"] += 1
    if hold is not None and late(desk, till_id, answer, started):
        answer = release_late(desk, till_id, request, hold.hold_id)
        hold = None
    desk.notify()
    return encode_answer(answer), hold


def release_late(desk: Desk, till_id: str, request: RedeemRequest, hold_id: str) -> Authorisation:
    """An authorisation the till cannot have received in time: its hold released at once."""
    with desk.lock:
        hold = desk.holds.get(hold_id)
        if hold is not None:
            with desk.journal.transaction() as tx:
                desk.journal_release(tx, hold, "late")
            desk.closed([(hold.hold_id, "late")], desk.wall())
            desk.counters["redeems_late"] += 1
    log.info("hold %s for sale %s at till %s released: answered too late for the till", hold_id,
             request.sale_id, till_id)
    desk.notify()
    return Authorisation(sale_id=request.sale_id, status="error",
                         message="answered too late for the till; nothing held")


def _authorised(desk: Desk, request: RedeemRequest, hold: Hold, balance: int, card: str | None) -> Authorisation:
    return Authorisation(sale_id=request.sale_id, status="authorised", hold_id=hold.hold_id, points=hold.points,
                         amount=hold.amount, balance=balance, card=card,
                         expires_in_s=max(0, round(hold.expires_at - desk.wall())))


def _declined(request: RedeemRequest, reason: str) -> Authorisation:
    return Authorisation(sale_id=request.sale_id, status="declined", message=reason[:200])


def cancel_request(desk: Desk, till_id: str, request: CancelRequest) -> Released:
    """Release a sale's hold at the till's word."""
    with desk.lock:
        hold = desk.holds.get(request.hold_id)
        if hold is None or (hold.till_id, hold.sale_id) != (till_id, request.sale_id):
            return Released(sale_id=request.sale_id, hold_id=request.hold_id, status="unknown")
        with desk.journal.transaction() as tx:
            desk.journal_release(tx, hold, "cancelled")
        desk.closed([(hold.hold_id, "cancelled")], desk.wall())
    desk.notify()
    return Released(sale_id=request.sale_id, hold_id=request.hold_id, status="released")


def reverse_capture(desk: Desk, till_id: str, request: SaleRequest) -> SaleAnswer:
    """The sale that captured a hold was answered too late for the till, which completed it with money: give
    the points back, recorded as `redemption.reversed`. A journal that cannot record it now is tried again
    by the agent's timer (`Desk.retry_reversals`)."""
    refused = SaleAnswer(sale_id=request.sale_id, status="error",
                         loyalty={"status": "earned", "points": 0, "balance": None, "redeemed": 0},
                         message="the points were given back: the answer came too late; take payment")
    try:
        done = _reverse(desk, till_id, request)
    except StoreError as exc:
        with desk.lock:
            if (till_id, request) not in desk.pending_reversals:
                desk.pending_reversals.append((till_id, request))
        log.error("sale %s at till %s was answered too late but its points cannot be given back yet (%s); "
                  "retrying", request.sale_id, till_id, exc)
        return refused
    return refused if done is None else done


def _reverse(desk: Desk, till_id: str, request: SaleRequest) -> SaleAnswer | None:
    sale_key = f"{till_id}:{request.sale_id}"
    with desk.lock:
        with desk.journal.transaction() as tx:
            recorded = tx.find_sale(sale_key)
            if recorded is None or tx.has_sale_key(f"{sale_key}:reversed"):
                return None
            sale = SaleRecorded.model_validate(recorded.payload)
            points, token = sale.loyalty.points_redeemed, sale.card_token
            if not points or token is None or sale.loyalty.hold_id is None:
                return None
            reversal = RedemptionReversed(
                site_id=desk.settings.site_id, till_id=till_id, sale_id=request.sale_id, hold_id=sale.loyalty.hold_id,
                card_token=token, points=points, sale_seq=recorded.seq, reason="late")
            event = desk.append(tx, reversal, sale_key=f"{sale_key}:reversed",
                                at=datetime.fromtimestamp(desk.wall(), UTC))
            tx.add_ledger(event.seq, token, points, "reversal", event.occurred_at.astimezone(UTC).date(),
                          reversal_move(reversal, event.occurred_at, (desk.settings.device_id, event.seq)))
        desk.counters["redeems_late"] += 1
    log.info("sale %s at till %s answered too late for the till: its %d points given back", request.sale_id,
             till_id, points)
    desk.notify()
    return SaleAnswer(sale_id=request.sale_id, status="error",
                      loyalty={"status": sale.loyalty.status, "points": 0, "balance": None, "redeemed": 0},
                      message="the points were given back: the answer came too late; take payment")


def resend(desk: Desk, till_id: str) -> bytes | None:
    """The till's last answer again, after its NAK; None when there was none. An answer that held or took
    points and would now reach the till too late is not resent: its hold is released, or its points given
    back, and the till gets the error answer instead (which it ignores, having sold for money)."""
    till = desk.tills[till_id]
    redeeming = till.redeeming
    if till.last_answer is None or redeeming is None:
        return till.last_answer
    if late_frame(till.settings, len(till.last_answer), redeeming.started):
        till.redeeming = None
        if isinstance(redeeming.request, RedeemRequest) and redeeming.hold_id is not None:
            till.last_answer = encode_answer(release_late(desk, till_id, redeeming.request, redeeming.hold_id))
        elif isinstance(redeeming.request, SaleRequest):
            till.last_answer = encode_answer(reverse_capture(desk, till_id, redeeming.request))
    return till.last_answer


def retry_reversals(desk: Desk) -> None:
    """Give back the points of late captures that a failing journal could not record before."""
    with desk.lock:
        waiting, desk.pending_reversals = desk.pending_reversals, []
    for till_id, request in waiting:
        reverse_capture(desk, till_id, request)
