"""The box's memory of recent till actions, and what the fraud rules (`protocol.fraud`) say of the next one.

The box keeps one `FraudWindow`, rebuilt from its journal at start (`replay`) and fed each action once it is
journaled (`add`); before answering a till it asks the checks of `protocol.fraud_checks`, which read it. Pure:
instants are arguments, never read from a clock.

Speed: the till waits on these checks. Sales are indexed by card, by card and till, refunds and overrides by
cashier, each in time order with running sums of points, so every figure is two binary searches whatever
the window holds; `add` forgets what no rule needs (older than the longest window of the rules last checked
and than the previous local day), and every index is capped so that a flood cannot grow it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

from pydantic import BaseModel

from protocol.alerts import AlertRaised
from protocol.calendar import local_day, start_of_day
from protocol.errors import MalformedMessage
from protocol.events import Event, RedemptionAuthorised, SaleRecorded
from protocol.fraud import FraudRules
from protocol.series import Series
from protocol.staff import PriceOverride, SaleRefunded, StaffSignedIn, StaffSignedOut

Kind = Literal["sale", "redeem", "refund", "override"]

US: Final = 1_000_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US: Final = timedelta(microseconds=1)
MAX_MINUTES: Final = 7 * 24 * 60
"""The longest window a rule may have (`protocol.fraud.Minutes`): what the window keeps before any check."""
MAX_PER_INDEX: Final = 10_000
"""Entries one card, one card at one till, or one cashier keeps at most (the oldest go first)."""
MAX_ENTRIES: Final = 200_000
"""Actions the whole window keeps at most."""
MAX_SHIFTS: Final = 1_000
MAX_ALERT_KEYS: Final = 100_000
"""Alert keys remembered per local day; beyond, `alert_due` says no (the journal is not flooded)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One journaled till action the rules count."""

    at: datetime
    """Aware, UTC."""
    kind: Kind
    till_id: str
    cashier_id: str
    token: str | None = None
    """The card (sale, redeem; a refund's card)."""
    points: int = 0
    """sale: the points it would earn (counted even when held or withheld); redeem: points held; refund: points
    reversed."""
    earning: bool = False
    """refund: the refunded sale had earned points."""


def micros(at: datetime) -> int:
    """`at` in microseconds since 1970 (UTC): the indexes' time."""
    return (at - EPOCH) // ONE_US


class _Card:
    """One card's sales: all of them, and per till."""

    __slots__ = ("sales", "tills")

    def __init__(self) -> None:
        self.sales = Series(MAX_PER_INDEX)
        self.tills: dict[str, Series] = {}


class FraudWindow:
    """The box's recent sales, redemptions, refunds, overrides and open shifts, and the alerts it raised."""

    def __init__(self, timezone: str) -> None:
        local_day(EPOCH, timezone)  # ValueError now for an unknown zone, not at the first sale
        self.timezone = timezone
        self._cards: dict[str, _Card] = {}
        self._refunds: dict[str, Series] = {}
        self._overrides: dict[str, Series] = {}
        self._order: deque[tuple[int, Kind, str | None, str, str]] = deque()
        """(at, kind, token, till, cashier) in arrival order: what pruning walks."""
        self._shifts: dict[str, tuple[str, datetime]] = {}
        self._oldest_shift: int | None = None
        self._alerts: dict[date, set[str]] = {}
        self._days: dict[date, tuple[int, int]] = {}
        self._today: tuple[int, int, date] = (0, 0, EPOCH.date())
        self._horizon = MAX_MINUTES * 60 * US
        self._rules: FraudRules | None = None

    # --- time

    def day_of(self, at: int) -> tuple[date, int, int]:
        """The local day of instant `at` (µs), its start and its end (µs)."""
        start, end, day = self._today
        if start <= at < end:
            return day, start, end
        day = local_day(EPOCH + at * ONE_US, self.timezone)
        start, end = self._bounds(day)
        self._today = (start, end, day)
        return day, start, end

    def _bounds(self, day: date) -> tuple[int, int]:
        bounds = self._days.get(day)
        if bounds is None:
            if len(self._days) > 64:
                self._days.clear()
            bounds = (micros(start_of_day(day, self.timezone)),
                      micros(start_of_day(day + timedelta(days=1), self.timezone)))
            self._days[day] = bounds
        return bounds

    def use(self, rules: FraudRules) -> None:
        """Keep what `rules` need from the next `add` on (the longest of their windows)."""
        if rules is self._rules:
            return
        self._rules = rules
        windows = [rule.minutes for rule in (rules.same_card_till, rules.velocity, rules.redeem_after_earning,
                                             rules.refund_rate, rules.override_rate) if rule is not None]
        seconds = max([minutes * 60 for minutes in windows] + [rules.two_tills.seconds if rules.two_tills else 0])
        self._horizon = seconds * US

    # --- what the box tells it

    def add(self, seen: Seen) -> None:
        """Count an action once it is journaled, and forget what no rule needs any more."""
        at = micros(seen.at)
        if seen.kind == "sale" and seen.token is not None:
            card = self._cards.get(seen.token)
            if card is None:
                card = self._cards[seen.token] = _Card()
            card.sales.add(at, seen.points)
            till = card.tills.get(seen.till_id)
            if till is None:
                till = card.tills[seen.till_id] = Series(MAX_PER_INDEX)
            till.add(at, seen.points)
        elif seen.kind == "refund" and seen.earning:
            self._refunds.setdefault(seen.cashier_id, Series(MAX_PER_INDEX)).add(at, 0)
        elif seen.kind == "override":
            self._overrides.setdefault(seen.cashier_id, Series(MAX_PER_INDEX)).add(at, 0)
        else:
            return  # redemptions and refunds of sales that earned nothing: no rule counts them
        self._order.append((at, seen.kind, seen.token, seen.till_id, seen.cashier_id))
        self._prune(at)

    def _prune(self, now: int) -> None:
        yesterday = self.day_of(now)[0] - timedelta(days=1)
        keep = min(now - self._horizon, self._bounds(yesterday)[0])
        if self._oldest_shift is not None:
            keep = min(keep, max(self._oldest_shift, now - MAX_MINUTES * 60 * US))
        order = self._order
        while order and (order[0][0] < keep or len(order) > MAX_ENTRIES):
            at, kind, token, till_id, cashier = order.popleft()
            self._forget(keep if at < keep else at + 1, kind, token, till_id, cashier)  # else: over the cap

    def _forget(self, before: int, kind: Kind, token: str | None, till_id: str, cashier: str) -> None:
        if kind == "sale" and token is not None:
            card = self._cards.get(token)
            if card is None:
                return
            card.sales.drop_before(before)
            series = card.tills.get(till_id)
            if series is not None:
                series.drop_before(before)
                if not series:
                    del card.tills[till_id]
            if not card.sales:
                del self._cards[token]
            return
        index = self._refunds if kind == "refund" else self._overrides
        series = index.get(cashier)
        if series is not None:
            series.drop_before(before)
            if not series:
                del index[cashier]

    def shift_started(self, till_id: str, staff_id: str, at: datetime) -> None:
        """`staff_id` signed in at `till_id`: their shift there starts (any other's there ends). Signing in again
        while their shift is open changes nothing: the shift counts from its first sign-in."""
        current = self._shifts.get(till_id)
        if current is not None and current[0] == staff_id:
            return
        self._shifts.pop(till_id, None)
        self._shifts[till_id] = (staff_id, at)
        while len(self._shifts) > MAX_SHIFTS:
            del self._shifts[next(iter(self._shifts))]
        self._shift_changed()

    def shift_ended(self, till_id: str, at: datetime) -> None:
        """The shift open at `till_id` ended (signed out, or replaced)."""
        if self._shifts.pop(till_id, None) is not None:
            self._shift_changed()

    def _shift_changed(self) -> None:
        self._oldest_shift = min((micros(since) for _, since in self._shifts.values()), default=None)

    def shift_of(self, till_id: str) -> tuple[str, datetime] | None:
        """(staff_id, since) of the shift open at `till_id`, if one is."""
        return self._shifts.get(till_id)

    def alert_raised(self, key: str, day: date) -> bool:
        """True when `key` was raised for local `day` already (or `day` is older than the window remembers): what
        `alert_due` would say, without marking it (the box marks it once the alert is journaled)."""
        latest = max(self._alerts, default=day)
        if day < latest - timedelta(days=1):
            return True
        keys = self._alerts.get(day, set())
        return key in keys or len(keys) >= MAX_ALERT_KEYS

    def alert_due(self, key: str, day: date) -> bool:
        """True the first time `key` is asked for local `day` (an alert to raise); False after. Keys of days
        before the previous one are forgotten."""
        latest = max(self._alerts, default=day)
        if day > latest:
            for old in [old for old in self._alerts if old < day - timedelta(days=1)]:
                del self._alerts[old]
        elif day < latest - timedelta(days=1):
            return False  # a day the window no longer remembers: its alerts were raised then
        keys = self._alerts.setdefault(day, set())
        if key in keys or len(keys) >= MAX_ALERT_KEYS:
            return False
        keys.add(key)
        return True

    def replay(self, event: Event) -> None:
        """Count a journaled event as when it happened (the box rebuilding its window at start, oldest first).
        Events of other types, and payloads that do not parse, are ignored."""
        if event.type not in _REPLAYED:
            return
        try:
            payload = event.typed_payload()
        except MalformedMessage:
            return
        at = event.occurred_at
        seen = seen_from(payload, at)
        if seen is not None:
            self.add(seen)
        elif isinstance(payload, StaffSignedIn) and payload.known:  # a refused sign-in opens no shift
            self.shift_started(payload.till_id, payload.staff_id, at)
        elif isinstance(payload, StaffSignedOut):
            shift = self.shift_of(payload.till_id)
            if shift is not None and shift[0] == payload.staff_id:
                self.shift_ended(payload.till_id, at)
        elif isinstance(payload, AlertRaised):
            try:
                day = date.fromisoformat(payload.key.rsplit(":", 1)[1])
            except ValueError:
                day = local_day(payload.first_at, self.timezone)
            self.alert_due(payload.key, day)

    # --- what the checks read

    def card(self, token: str) -> _Card | None:
        return self._cards.get(token)

    def refunds(self, cashier_id: str) -> Series | None:
        return self._refunds.get(cashier_id)

    def overrides(self, cashier_id: str) -> Series | None:
        return self._overrides.get(cashier_id)

    def size(self) -> dict[str, int]:
        """What the window holds (for tests and the box's status)."""
        return {"actions": len(self._order), "cards": len(self._cards),
                "card_entries": sum(len(card.sales) for card in self._cards.values()),
                "largest_card": max((len(card.sales) for card in self._cards.values()), default=0),
                "cashiers": len(self._refunds) + len(self._overrides), "shifts": len(self._shifts),
                "alert_keys": sum(len(keys) for keys in self._alerts.values())}


def seen_from(payload: BaseModel, at: datetime) -> Seen | None:
    """What the rules count of a journaled sale, redemption, refund or override (None: another payload). The box
    builds its live `Seen` from the recorded event with it too, so that a replay counts exactly what it did."""
    if isinstance(payload, SaleRecorded):
        loyalty = payload.loyalty
        points = loyalty.points_earned if loyalty.status == "earned" else loyalty.points_held
        return Seen(at, "sale", payload.till_id, payload.cashier_id, payload.card_token, points)
    if isinstance(payload, RedemptionAuthorised):
        return Seen(at, "redeem", payload.till_id, "", payload.card_token, payload.points)
    if isinstance(payload, SaleRefunded):
        # A refund of a sale the box does not hold counts as one of an earning sale: it cannot be checked.
        return Seen(at, "refund", payload.till_id, payload.cashier_id, payload.card_token, payload.points_reversed,
                    earning=payload.points_reversed > 0 or payload.original_seq is None)
    if isinstance(payload, PriceOverride):
        return Seen(at, "override", payload.till_id, payload.cashier_id)
    return None


_REPLAYED: Final = frozenset({"sale.recorded", "redemption.authorised", "sale.refunded", "till.override",
                              "staff.signed_in", "staff.signed_out", "alert.raised"})
