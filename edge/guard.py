"""The fraud rules at the box: the recent activity they count (`protocol.fraud_window.FraudWindow`, rebuilt from
the journal at start), who a card belongs to (a staff member's own membership, the blocklist), the verdict for
each till request, and the alerts it raises as events in the same transaction as the request it judged.

The desk (edge/desk.py, edge/sales.py, edge/redeem.py, edge/staffdesk.py) calls it under its lock.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from pydantic import ValidationError

from edge.decide import MemberState
from edge.devices.pos import FraudLine, SaleRequest
from edge.directory import DirectoryKeeper
from edge.errors import StoreError
from edge.logthrottle import LogThrottle
from edge.store.journal import Journal
from edge.store.journal_tx import JournalTransaction
from protocol.alerts import AlertRaised, alert_key
from protocol.blocklist import Blocklist
from protocol.calendar import local_day
from protocol.events import SaleRecorded
from protocol.fraud import REASONS, FraudOutcome, severity_of
from protocol.fraud_checks import Verdict, check_override, check_redeem, check_refund, check_sale
from protocol.fraud_window import FraudWindow, Seen
from protocol.ids import uuid7
from protocol.rules import RuleBundle

log = logging.getLogger(__name__)
REBUILD_HOURS = 36
"""How far back the window is rebuilt from the journal at start: today and yesterday (local), plus the longest
window of a rule. A shift signed in before that is not seen: the shift rule is off at that till until the next
sign-in."""
REBUILD_LIMIT = 200_000


class FraudGuard:
    """The fraud rules' memory and verdicts at one box."""

    def __init__(self, *, site_id: str, journal: Journal, directory: DirectoryKeeper,
                 blocklist: Callable[[], Blocklist | None], clock_ok: Callable[[], bool]) -> None:
        self.site_id = site_id
        self.journal = journal
        self.directory = directory
        self.blocklist = blocklist
        self._clock_ok = clock_ok
        self.window: FraudWindow | None = None
        self._timezone = ""
        self._retry_at: float | None = None
        self.counters = {"fraud_flagged": 0, "fraud_held": 0, "fraud_declined": 0, "alerts_raised": 0}
        self._alert_log = LogThrottle(log)

    def window_for(self, rules: RuleBundle, now: datetime) -> FraudWindow:
        """The window under the running bundle's time zone, rebuilt from the journal the first time (and when the
        chain moves to another time zone, since the rules' days are local). A journal that cannot be read leaves
        the window counting from now, and is read again a minute later."""
        if self.window is None or rules.timezone != self._timezone or (
                self._retry_at is not None and time.monotonic() >= self._retry_at):
            window = FraudWindow(rules.timezone)
            fraud = rules.fraud
            longest = max([rule.minutes for rule in (fraud.same_card_till, fraud.velocity, fraud.redeem_after_earning,
                                                     fraud.refund_rate, fraud.override_rate) if rule is not None],
                          default=0)
            since = now - timedelta(hours=REBUILD_HOURS, minutes=longest)
            try:
                events = self.journal.read_since(since, limit=REBUILD_LIMIT)
            except StoreError as exc:
                if self._retry_at is None:
                    log.error("cannot read the journal to rebuild the fraud rules' memory (%s); counting from now "
                              "and trying again each minute", exc)
                self._retry_at = time.monotonic() + 60
                events = []
            else:
                if self._retry_at is not None:
                    log.info("the fraud rules' memory is rebuilt from the journal")
                self._retry_at = None
            for event in events:  # a retry that reads replaces what was counted meanwhile: the journal has it all
                window.replay(event)
            self.window, self._timezone = window, rules.timezone
        return self.window

    def card(self, member: MemberState | None) -> tuple[str | None, bool]:
        """(the staff member whose own membership holds this card, whether the card or its member is blocklisted)."""
        if member is None:
            return None, False
        staff = self.directory.staff_of_member(member.member_id) if member.member_id else None
        listed = self.blocklist()
        return (staff.staff_id if staff is not None else None,
                listed is not None and listed.lists(member.token, member.member_id))

    def check_sale(self, rules: RuleBundle, *, at: datetime, till_id: str, cashier_id: str,
                   member: MemberState | None, points: int) -> Verdict:
        if member is None:
            return Verdict("allow")
        staff_id, listed = self.card(member)
        return check_sale(rules.fraud, self.window_for(rules, at), at=at, till_id=till_id, cashier_id=cashier_id,
                          token=member.token, member_id=member.member_id, points=points, card_staff_id=staff_id,
                          blocklisted=listed)

    def check_redeem(self, rules: RuleBundle, *, at: datetime, till_id: str, cashier_id: str,
                     member: MemberState) -> Verdict:
        staff_id, listed = self.card(member)
        return check_redeem(rules.fraud, self.window_for(rules, at), at=at, till_id=till_id, cashier_id=cashier_id,
                            token=member.token, member_id=member.member_id, card_staff_id=staff_id,
                            blocklisted=listed)

    def check_refund(self, rules: RuleBundle, *, at: datetime, till_id: str, cashier_id: str,
                     earning: bool) -> Verdict:
        return check_refund(rules.fraud, self.window_for(rules, at), at=at, till_id=till_id, cashier_id=cashier_id,
                            earning=earning)

    def check_override(self, rules: RuleBundle, *, at: datetime, till_id: str, cashier_id: str) -> Verdict:
        return check_override(rules.fraud, self.window_for(rules, at), at=at, till_id=till_id, cashier_id=cashier_id)

    def raise_alerts(self, tx: JournalTransaction, rules: RuleBundle, verdict: Verdict, *, at: datetime,
                     till_id: str, cashier_id: str, sale_id: str | None = None,
                     member: MemberState | None = None) -> list[tuple[str, date]]:
        """Journal an `alert.raised` for each finding not yet raised today for its subject, in `tx`; the keys
        journaled, for `committed` once `tx` commits (a rolled-back alert is raised again next time)."""
        if not verdict.findings:
            return []
        window = self.window_for(rules, at)
        day = local_day(at, rules.timezone)
        staff_id = self.card(member)[0] if member is not None else None
        raised: list[tuple[str, date]] = []
        for finding in verdict.findings:
            key = alert_key(finding.code, finding.subject, day)
            if finding.action == "allow" or window.alert_raised(key, day) or tx.has_sale_key(f"alert:{key}") \
                    or (key, day) in raised:
                continue
            card = member is not None and finding.subject == member.token
            figures = ", ".join(f"{name} {value}" for name, value in finding.figures.items())
            try:
                alert = AlertRaised(
                    site_id=self.site_id, key=key, code=finding.code, severity=severity_of(finding.action),
                    action=finding.action, first_at=at, till_id=till_id, cashier_id=cashier_id,
                    card_token=member.token if card and member is not None else None,
                    member_id=member.member_id if card and member is not None else None,
                    staff_id=staff_id if card else None, sale_id=sale_id,
                    summary=f"{REASONS.get(finding.code, finding.code)}"[:250] + (f" ({figures})" if figures else ""),
                    figures=dict(list(finding.figures.items())[:20]))
            except ValidationError as exc:  # an alert must never cost the sale: say which fields, never values
                fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
                self._alert_log.error("an alert (%s) could not be recorded: fields %s", finding.code, fields[:200])
                continue
            tx.append(type=alert.event_type, payload=alert.model_dump(mode="json"),
                      event_id=uuid7(time.time_ns() // 1_000_000, os.urandom(10)), occurred_at=at,
                      clock_ok=self._clock_ok(), sale_key=f"alert:{alert.key}")
            raised.append((key, day))
        return raised

    def committed(self, rules: RuleBundle, *, at: datetime, raised: Sequence[tuple[str, date]] = (),
                  seen: Seen | None = None, verdict: Verdict | None = None) -> None:
        """What a committed transaction recorded, now part of the rules' memory: the alerts journaled (not raised
        again today), the action they count, what the verdict did (the counters)."""
        window = self.window_for(rules, at)
        for key, day in raised:
            window.alert_due(key, day)
        self.counters["alerts_raised"] += len(raised)
        if seen is not None:
            window.add(seen)
        if verdict is not None and verdict.action in ("flag", "hold", "decline"):
            self.counters[{"flag": "fraud_flagged", "hold": "fraud_held", "decline": "fraud_declined"}[
                verdict.action]] += 1


def till_view(request: SaleRequest, sale: SaleRecorded, loyalty: dict[str, object]) -> tuple[
        dict[str, object], FraudLine | None, str | None]:
    """What the till is told of the fraud rules' decision on `sale`: the loyalty part (a till that did not ask for
    `fraud` reads a held or withheld sale as `unavailable`), the v1.3 `fraud` line, and the message."""
    outcome = sale.fraud
    if outcome is None or outcome.action == "allow":
        return loyalty, None, None
    message = fraud_message(outcome)
    if request.fraud:
        return loyalty, FraudLine(action=outcome.action, reasons=list(outcome.reasons), message=message), message
    if loyalty.get("status") in ("held", "withheld"):
        loyalty = {**loyalty, "status": "unavailable"}
    return loyalty, None, message if outcome.action != "flag" else None


def fraud_message(outcome: FraudOutcome) -> str:
    reason = REASONS.get(outcome.reasons[0], outcome.reasons[0]) if outcome.reasons else "a fraud rule"
    text = {"flag": "flagged for HQ", "hold": "loyalty held for a supervisor",
            "decline": "no loyalty on this sale"}.get(outcome.action, outcome.action)
    return f"{text}: {reason}"[:200]
