"""What the fraud rules (`protocol.fraud`) say of the box's next till action, against its memory of recent ones
(`protocol.fraud_window.FraudWindow`): `check_sale`, `check_redeem`, `check_refund`, `check_override`.

A rule fires when what it counts, this action included, goes *above* its limit (at the limit is allowed); the
strongest action of the rules that fire is the verdict's. Pure; every figure is read from the window's indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from protocol.fraud import ACTION_RANK, CountLimit, FraudAction, FraudOutcome, FraudRules, PointsLimit
from protocol.fraud_window import US, FraudWindow, micros
from protocol.series import Series


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired."""

    code: str
    """A key of `protocol.fraud.REASONS`."""
    action: FraudAction
    subject: str
    """What the alert is about: the card token; the cashier id for the refund and override rates."""
    figures: dict[str, int] = field(default_factory=dict)
    """What was counted and the limit, e.g. {"points": 1250, "limit": 1000}."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the fraud rules say of one action: the strongest action of the rules that fired."""

    action: FraudAction = "allow"
    findings: tuple[Finding, ...] = ()
    """Strongest first, then by code."""

    def outcome(self) -> FraudOutcome | None:
        """What the event records (None: no rule fired)."""
        if not self.findings:
            return None
        return FraudOutcome(action=self.action, reasons=[finding.code for finding in self.findings])


ALLOW: Final = Verdict()


def _verdict(findings: list[Finding]) -> Verdict:
    if not findings:
        return ALLOW
    findings.sort(key=lambda finding: (-ACTION_RANK[finding.action], finding.code))
    return Verdict(findings[0].action, tuple(findings))


def _card_own(rules: FraudRules, findings: list[Finding], token: str, cashier_id: str,
              card_staff_id: str | None, blocklisted: bool) -> None:
    if blocklisted and rules.blocklist != "allow":
        findings.append(Finding("blocklist", rules.blocklist, token))
    if card_staff_id is not None and card_staff_id == cashier_id and rules.staff_own_card != "allow":
        findings.append(Finding("staff_own_card", rules.staff_own_card, token))


def check_sale(rules: FraudRules, window: FraudWindow, *, at: datetime, till_id: str, cashier_id: str,
               token: str | None, member_id: str | None, points: int, card_staff_id: str | None,
               blocklisted: bool) -> Verdict:
    """What the rules say of a sale of `points` (what it would earn) with card `token`, before it is added."""
    if not rules.enabled or token is None:
        return ALLOW
    window.use(rules)
    findings: list[Finding] = []
    _card_own(rules, findings, token, cashier_id, card_staff_id, blocklisted)
    now = micros(at)
    card = window.card(token)
    sales = card.sales if card is not None else None
    here = card.tills.get(till_id) if card is not None else None
    if points > 0:
        spans: list[tuple[str, PointsLimit | None, Series | None, int, int]] = []
        if rules.card_points_day is not None or rules.card_points_till_day is not None:
            _, start, end = window.day_of(now)
            spans += [("card_points_day", rules.card_points_day, sales, start, end),
                      ("card_points_till_day", rules.card_points_till_day, here, start, end)]
        shift = window.shift_of(till_id)
        if rules.card_points_shift is not None and shift is not None:
            spans.append(("card_points_shift", rules.card_points_shift, here, micros(shift[1]), now + 1))
        for code, rule, series, start, end in spans:
            if rule is None or rule.action == "allow":
                continue
            total = (series.points(start, end) if series is not None else 0) + points
            if total > rule.limit:
                findings.append(Finding(code, rule.action, token, {"points": total, "limit": rule.limit}))
    for code, count, series in (("same_card_till", rules.same_card_till, here), ("velocity", rules.velocity, sales)):
        if count is not None and count.action != "allow":
            sales_then = (series.count(now - count.minutes * 60 * US, now) if series is not None else 0) + 1
            if sales_then > count.limit:
                findings.append(Finding(code, count.action, token,
                                        {"sales": sales_then, "limit": count.limit, "minutes": count.minutes}))
    two = rules.two_tills
    if two is not None and two.action != "allow" and card is not None:
        after = now - two.seconds * US
        latest = max((moment for other_till, other in card.tills.items() if other_till != till_id
                      and (moment := other.latest(after, now)) is not None), default=None)
        if latest is not None:
            findings.append(Finding("two_tills", two.action, token,
                                    {"seconds": (now - latest) // US, "limit": two.seconds}))
    return _verdict(findings)


def check_redeem(rules: FraudRules, window: FraudWindow, *, at: datetime, till_id: str, cashier_id: str,
                 token: str, member_id: str | None, card_staff_id: str | None, blocklisted: bool) -> Verdict:
    """What the rules say of paying with the points of card `token`."""
    if not rules.enabled:
        return ALLOW
    window.use(rules)
    findings: list[Finding] = []
    _card_own(rules, findings, token, cashier_id, card_staff_id, blocklisted)
    rule = rules.redeem_after_earning
    card = window.card(token)
    if rule is not None and rule.action != "allow" and card is not None:
        now = micros(at)
        earned = card.sales.points_after(now - rule.minutes * 60 * US, now)
        if earned > rule.points:
            findings.append(Finding("redeem_after_earning", rule.action, token,
                                    {"points": earned, "limit": rule.points, "minutes": rule.minutes}))
    return _verdict(findings)


def _rate(code: str, rule: CountLimit | None, series: Series | None, at: datetime, cashier_id: str,
          noun: str) -> Verdict:
    if rule is None or rule.action == "allow":
        return ALLOW
    now = micros(at)
    done = (series.count(now - rule.minutes * 60 * US, now) if series is not None else 0) + 1
    if done <= rule.limit:
        return ALLOW
    return Verdict(rule.action, (Finding(code, rule.action, cashier_id,
                                         {noun: done, "limit": rule.limit, "minutes": rule.minutes}),))


def check_refund(rules: FraudRules, window: FraudWindow, *, at: datetime, till_id: str, cashier_id: str,
                 earning: bool) -> Verdict:
    """What the rules say of a refund or void by `cashier_id` (of a sale that earned points when `earning`)."""
    if not rules.enabled or not earning:
        return ALLOW
    window.use(rules)
    return _rate("refund_rate", rules.refund_rate, window.refunds(cashier_id), at, cashier_id, "refunds")


def check_override(rules: FraudRules, window: FraudWindow, *, at: datetime, till_id: str, cashier_id: str) -> Verdict:
    """What the rules say of a manual discount or price override by `cashier_id`."""
    if not rules.enabled:
        return ALLOW
    window.use(rules)
    return _rate("override_rate", rules.override_rate, window.overrides(cashier_id), at, cashier_id, "overrides")
