"""A till's sale: decided (edge/decide.py), judged by the fraud rules (edge/guard.py), journaled with its points
and any alert in one transaction, and answered.

A repeat of a sale (the till missed the answer) gets the recorded answer; a sale id reused for other content
gets "conflict". The fraud rules never stop a sale: they flag it, hold its loyalty part for a supervisor, or
withhold it, and the answer says why.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from edge.decide import Capture, decide_sale, withhold
from edge.devices.pos import SaleAnswer, SaleRequest
from edge.guard import till_view
from edge.receipt import answer_in_time, feedback_answer, line_items, loyalty_answer
from edge.store import holds as hold_rows
from protocol.events import SaleConflict, SaleRecorded
from protocol.fraud_checks import Verdict
from protocol.fraud_window import Seen, seen_from
from protocol.loyalty import sale_moves
from protocol.pricing import SaleDecision

if TYPE_CHECKING:
    from edge.desk import Desk, PendingCard
    from edge.store.journal_tx import JournalTransaction

log = logging.getLogger(__name__)
WITHHOLDS = ("hold", "decline")


def record_sale(desk: Desk, till_id: str, request: SaleRequest, now_mono: float, started: float) -> SaleAnswer:
    """Decide, judge, journal and answer one sale request (the caller catches store and decision failures)."""
    till = desk.tills[till_id]
    items = line_items(request.items)
    rules = desk.rules.current
    seen: Seen | None = None
    verdict = Verdict("allow")
    raised: list[tuple[str, date]] = []
    with desk.lock:
        pending = desk.pending_card(till, now_mono)
        sale_key = f"{till_id}:{request.sale_id}"
        conflict: SaleConflict | None = None
        note: str | None = None
        closed: list[tuple[str, str]] = []  # holds this sale closed, for the book once committed
        decision, programme, shown = None, None, None  # shown: the answer's loyalty, when built already
        sale_hash = ""  # the recorded sale's event hash: its ticket's feedback code
        checked_at = desk.wall()
        decided_at = datetime.fromtimestamp(checked_at, UTC)
        with desk.journal.transaction() as tx:
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
                    desk.counters["sales_repeated"] += 1
                    sale_hash = existing.hash
                    if tx.has_sale_key(f"{sale_key}:reversed"):
                        return SaleAnswer(sale_id=request.sale_id, status="error", loyalty={
                            "status": sale.loyalty.status, "points": 0, "balance": None, "redeemed": 0},
                            message="the points were given back: the answer came too late; take payment")
                else:
                    conflict = desk.conflict(tx, request, items, sale_key, existing)
            else:
                hold = desk.holds.get(request.hold_id) if request.hold_id else None
                if hold is not None and (hold.till_id, hold.sale_id) != (till_id, request.sale_id):
                    hold = None
                if request.hold_id is not None and hold is None:
                    note = "no open hold of that id for this sale: nothing redeemed; take payment"
                elif hold is not None and hold.expires_at <= checked_at:
                    desk.journal_release(tx, hold, "expired")
                    closed.append((hold.hold_id, "expired"))
                    note = "the hold had lapsed: nothing redeemed; take payment"
                    hold = None
                token = hold.token if hold is not None else (pending.token if pending else None)
                member = desk.member(tx, token, at=decided_at) if token else None
                capture = Capture(hold.hold_id, hold.points, hold.amount) if hold is not None else None

                def decide(benefits: bool) -> tuple[SaleRecorded, SaleDecision | None]:
                    return decide_sale(
                        rules=rules, site_id=desk.settings.site_id, till_id=till_id, cashier_id=request.cashier,
                        sale_id=request.sale_id, currency=request.currency, items=items, member=member,
                        at=decided_at, capture=capture, benefits=benefits)

                sale, decision = decide(bool(request.benefits))
                points = decision.points if decision is not None else 0
                verdict = desk.guard.check_sale(rules, at=decided_at, till_id=till_id, cashier_id=request.cashier,
                                                member=member, points=points)
                outcome = verdict.outcome()
                if outcome is not None and verdict.action in WITHHOLDS:
                    if decision is not None and decision.benefits:
                        sale, decision = decide(False)  # no money off on a sale whose loyalty part is kept back
                    sale, decision = withhold(sale, outcome), None
                elif outcome is not None:
                    sale = sale.model_copy(update={"fraud": outcome})
                programme = member.programme if member is not None else None
                if decision is not None and decision.benefits and (shown := answer_in_time(
                        rules, till.settings, request, sale, decision, programme, decided_at, started)) is None:
                    # The till would sell at full price before the answer arrives: no money off recorded.
                    sale, decision = decide(False)
                    if outcome is not None:
                        sale = sale.model_copy(update={"fraud": outcome})
                    note = "the answer could not reach the till in time for the money off: none was given"
                if hold is not None:
                    if not sale.loyalty.points_redeemed:
                        # Nothing left for the points to pay (or the card was blocked since): the hold
                        # ends unused, said so, rather than vanish.
                        desk.journal_release(tx, hold, "unused")
                        closed.append((hold.hold_id, "unused"))
                        note = "nothing in this sale could be paid with the points held: nothing redeemed"
                    else:
                        hold_rows.drop(tx.connection, hold.hold_id)
                        closed.append((hold.hold_id, "captured"))
                event = desk.append(tx, sale, sale_key=sale_key, at=decided_at)  # the time the rules saw
                sale_hash = event.hash
                if token:
                    _ledger(desk, tx, sale, event.seq, event.occurred_at, token)
                    raised = desk.guard.raise_alerts(tx, rules, verdict, at=decided_at, till_id=till_id,
                                                     cashier_id=request.cashier, sale_id=request.sale_id, member=member)
                    seen = seen_from(sale, decided_at)  # what a rebuild from the journal will count
                masked = _masked(pending, token)
        desk.closed(closed, checked_at)
        if existing is None:
            if till.pending is pending and (pending is None or pending.token == token or request.hold_id is None):
                till.pending = None  # spent; a card presented meanwhile waits for the next sale
            desk.counters["sales"] += 1
            desk.guard.committed(rules, at=decided_at, raised=raised, seen=seen, verdict=verdict)
        elif conflict is not None:
            desk.counters["sales_conflicting"] += 1
    desk.notify()
    if conflict is not None:
        log.warning("till %s reused sale id %s for a different sale; answered conflict", till_id,
                         request.sale_id)
        return SaleAnswer(sale_id=request.sale_id, status="conflict", loyalty=None, card=None,
                          message=f"sale_id {request.sale_id} was already used for a different sale; "
                                  "nothing earned")
    loyalty, fraud, why = till_view(request, sale, shown or loyalty_answer(rules, request, sale, decision,
                                                                           programme, decided_at))
    return SaleAnswer(sale_id=sale.sale_id, status="ok", card=masked, message=note or why, loyalty=loyalty,
                      fraud=fraud, feedback=feedback_answer(rules, request, desk.settings.site_id, sale_hash))


def _ledger(desk: Desk, tx: JournalTransaction, sale: SaleRecorded, seq: int, at: datetime, token: str) -> None:
    day = at.astimezone(UTC).date()
    for move in sale_moves(sale, at, (desk.settings.device_id, seq)):
        tx.add_ledger(seq, token, move.points, move.kind, day, move)  # type: ignore[arg-type]


def _masked(pending: PendingCard | None, token: str | None) -> str | None:
    return pending.masked if pending and pending.token == token else None
