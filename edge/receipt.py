"""Between the till's messages and the rules: a sale's lines in, and what the till prints out (the loyalty
part of a sale's answer, from the recorded sale and its decision).

v1 tills get status, points and balance; v1.1 adds `redeemed` for a sale that captured a hold; v1.2 (a
request carrying `benefits`) adds points by rule, the money off and why, the tier with its benefits, the
passes with what is left after this sale, and whether a birthday ticket was used or is there to take; v1.4 (a
request carrying `feedback`) the ticket's feedback link.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from edge.devices.pos import SALE_ID_PATTERN, FeedbackLine, SaleAnswer, SaleItem, SaleRequest, encode_answer
from edge.settings import TillSettings
from protocol.account import fold
from protocol.calendar import local_day, week_key
from protocol.events import LineItem, SaleRecorded
from protocol.feedback import feedback_link, ticket_code
from protocol.loyalty import sale_moves
from protocol.pricing import SaleDecision
from protocol.rules import RuleBundle

SALE_ID_RE = re.compile(SALE_ID_PATTERN)
ANSWER_BUDGET_S = 0.5
"""The till's fail-open timeout (docs/pos-protocol.md): an answer arriving later is void to it."""
LATE_MARGIN_S = 0.05
"""Taken off the budget when deciding whether an answer that holds, takes or gives money still reaches the till."""
FIT_BYTES = 3000
"""Above this, an answer sums its benefits by reason: with the card, tier and passes it stays under the POS
line's 4,096-byte frame."""


def late_frame(till: TillSettings, frame_bytes: int, started: float) -> bool:
    """True when a frame of `frame_bytes`, sent now, would reach the till after its timeout (less a margin):
    the time since the request arrived (`time.perf_counter()` then) plus the frame's own time on the wire
    (10 bits a byte at the line's baud rate; none over TCP)."""
    wire = 0.0 if till.pos_transport == "tcp" else frame_bytes * 10 / till.pos_baudrate
    return time.perf_counter() - started + wire > ANSWER_BUDGET_S - LATE_MARGIN_S


def answer_in_time(rules: RuleBundle, till: TillSettings, request: SaleRequest, sale: SaleRecorded,
                   decision: SaleDecision, programme: str | None, at: datetime,
                   started: float) -> dict[str, Any] | None:
    """The answer's `loyalty` giving this decision's money off, or None when that answer would reach the till
    after it gave up (the card, a message and the feedback link counted at their longest)."""
    loyalty = loyalty_answer(rules, request, sale, decision, programme, at)
    # The sale's hash is not known before it is journaled; the link's length does not depend on it.
    link = feedback_answer(rules, request, sale.site_id, "0" * 64)
    answer = SaleAnswer(sale_id=sale.sale_id, status="ok", card="*" * 20, message="*" * 80, loyalty=loyalty,
                        feedback=link)
    return None if late_frame(till, len(encode_answer(answer)), started) else loyalty


def feedback_answer(rules: RuleBundle, request: SaleRequest, site_id: str, event_hash: str) -> FeedbackLine | None:
    """v1.4: the feedback code and link of the sale journaled as `event_hash`, for a till that asked, a sale with
    a ticket and a chain whose rules give a feedback address; None otherwise."""
    if not request.feedback or rules.feedback_url is None or not any(i.kind == "ticket" for i in request.items):
        return None
    code = ticket_code(event_hash)
    return FeedbackLine(code=code, url=feedback_link(rules.feedback_url, site_id, code))


def readable_sale_id(payload: bytes) -> str | None:
    """The request's sale id when it can be read at all, so the till can match our rejection to its sale."""
    try:
        sale_id = json.loads(payload).get("sale_id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return sale_id if isinstance(sale_id, str) and SALE_ID_RE.fullmatch(sale_id) else None


def line_items(items: list[SaleItem]) -> list[LineItem]:
    """The till's lines as the rules read them."""
    return [LineItem(kind=item.kind, sku=item.sku, description=item.description, film=item.film, hall=item.hall,
                     showtime=item.showtime, quantity=item.qty, unit_price=item.price, category=item.category,
                     format=item.format, genre=item.genre) for item in items]


def loyalty_answer(rules: RuleBundle, request: SaleRequest, sale: SaleRecorded, decision: SaleDecision | None,
                   programme: str | None, at: datetime) -> dict[str, Any]:
    """The answer's `loyalty` object for this till's request."""
    loyalty = sale.loyalty
    answer: dict[str, Any] = {"status": loyalty.status, "points": loyalty.points_earned, "balance": loyalty.balance,
                              "redeemed": loyalty.points_redeemed if request.hold_id is not None else None}
    if request.benefits is None or loyalty.status != "earned":
        return answer
    # From the recorded outcome, so a repeat of the sale (the till missed the answer) gets the same money off.
    answer["earned_by"] = [{"rule": part.rule, "points": part.points} for part in loyalty.earned_by]
    answer["discount"] = loyalty.discount
    answer["redeemed_amount"] = loyalty.amount_redeemed
    answer["to_pay"] = max(0, sale.total - loyalty.discount - loyalty.amount_redeemed)
    answer["benefits"] = [{"line": benefit.line, "amount": benefit.amount, "reason": benefit.reason}
                          for benefit in loyalty.benefits]
    tier = rules.rules_for(programme or loyalty.programme).level(loyalty.tier)
    if tier is not None:
        answer["tier"] = {"id": tier.tier_id, "name": tier.name, "free_upgrade": tier.free_upgrade,
                          "early_booking": tier.early_booking}
    answer["capped"] = loyalty.capped
    if len(json.dumps(answer)) > FIT_BYTES:  # many lines: one entry per reason, so the answer fits its frame
        totals: dict[str, int] = {}
        for benefit in loyalty.benefits:
            totals[benefit.reason] = totals.get(benefit.reason, 0) + benefit.amount
        answer["benefits"] = [{"line": None, "amount": amount, "reason": reason} for reason, amount in totals.items()]
    if loyalty.birthday_year is not None:
        answer["birthday_reward"] = "used"
    if decision is not None:
        answer["passes"] = _passes(rules, sale, decision, programme, at)
        if decision.birthday_available:
            answer["birthday_reward"] = "available"
    return answer


def _passes(rules: RuleBundle, sale: SaleRecorded, decision: SaleDecision, programme: str | None,
            at: datetime) -> list[dict[str, Any]]:
    programme_rules = rules.rules_for(programme)
    products = {product.pass_id: product for product in programme_rules.passes}
    after, _ = fold(sale_moves(sale, at, ("", 0)), programme_rules, rules.timezone, start=decision.account)
    day = local_day(at, rules.timezone)
    shown = []
    for held in after.passes:
        product = products.get(held.pass_id)
        if product is None or not held.valid_from <= day <= held.valid_to:
            continue
        week_used = held.week_used if held.week == week_key(day) else 0
        shown.append({"id": held.pass_id, "name": product.name,
                      "left_this_week": max(0, product.films_per_week - week_used),
                      "left_today": held.left(day, product.films_per_week, product.per_day),
                      "valid_to": held.valid_to.isoformat()})
    return shown
