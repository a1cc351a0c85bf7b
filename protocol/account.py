"""A member's account: balance in lots, tier, activity, passes, the day's counters; a function of their
moves and the programme's rules, folded in event time. Pure: no I/O, no clock (time is an argument).

The hub folds every move of a member; a box starts from the account the directory gave it and folds its
own later moves on top; both `advance` the account to the present with the same time-based rules, so a box
offline over a month start expires, pays and requalifies as the hub does, and both agree once they meet.

- Points sit in lots by the local month they were earned in; a redemption takes the oldest first (first
  in, first out); what a redemption takes beyond the lots (two boxes cut off from each other spent the
  same points) is `debt`, which the next points pay first. Balance = lots - debt.
- At each local month start, in this order: the monthly bonus for the month that ended, the tier review
  (when one is due), the expiry of lots past their shelf life. At the start of the day after `inactive_days`
  whole days without a visit (the last visit's day + `inactive_days` + 1), every lot lapses (burn).
- Moves at the same instant apply points added before points taken, then by (device, seq): the result does
  not depend on the order they are given in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.calendar import add_months, local_day, month_key, next_month_start, start_of_day, week_key
from protocol.fields import UtcDatetime
from protocol.programme import ProgrammeRules, TierLevel

MoveKind = Literal["earn", "redeem", "reversal", "adjust", "refund", "approval"]
"""approval: points a supervisor released, counted as the held sale would have been; refund: points taken back and
given back by a refund, with the spend it takes back (negative)."""
EffectKind = Literal["expiry", "burn", "bonus", "tier"]
Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Big = Annotated[int, Field(ge=0, le=10**13)]


class PassState(BaseModel):
    """A subscription pass the member holds, and its use in the current week and day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pass_id: str
    valid_from: date
    valid_to: date
    week: str | None = None
    week_used: Annotated[int, Field(ge=0)] = 0
    day: date | None = None
    day_used: Annotated[int, Field(ge=0)] = 0

    def left(self, day: date, films_per_week: int, per_day: int) -> int:
        """Tickets it still covers on `day` (0 outside its validity)."""
        if not self.valid_from <= day <= self.valid_to:
            return 0
        week_used = self.week_used if self.week == week_key(day) else 0
        day_used = self.day_used if self.day == day else 0
        return max(0, min(films_per_week - week_used, per_day - day_used))


class Account(BaseModel):
    """The state; `as_of` is the last instant applied (None: nothing yet)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: UtcDatetime | None = None
    lots: dict[Month, Big] = Field(default_factory=dict)
    debt: Big = 0
    tier: str | None = None
    activity: dict[Month, tuple[Big, Big]] = Field(default_factory=dict)
    """Per local month: visits, spend (minor units)."""
    lifetime_spend: Big = 0
    last_visit: date | None = None
    first_seen: date | None = None
    day: date | None = None
    day_sales: Big = 0
    day_points: Big = 0
    birthday_year: int | None = None
    passes: tuple[PassState, ...] = ()

    @property
    def balance(self) -> int:
        return sum(self.lots.values()) - self.debt


@dataclass(frozen=True, slots=True)
class Move:
    """One event's effect on a member: points (signed) and what the rules count."""

    at: datetime
    kind: MoveKind
    points: int
    spend: int = 0
    visit: bool = False
    earning_sale: bool = False
    """A sale that earned points: what the daily caps count."""
    pass_uses: tuple[tuple[str, int], ...] = ()
    passes_bought: tuple[str, ...] = ()
    birthday_year: int | None = None
    order: tuple[str, int] = ("", 0)
    """(device, seq): the tie-break between moves at the same instant."""

    def key(self) -> tuple[datetime, int, str, int]:
        return self.at, 0 if self.points >= 0 else 1, self.order[0], self.order[1]


@dataclass(frozen=True, slots=True)
class Effect:
    """What a time-based rule or a tier change did: points signed, `detail` says which lots or tiers."""

    kind: EffectKind
    at: datetime
    points: int
    detail: str


@dataclass
class _State:
    """The account while a fold changes it."""

    as_of: datetime | None
    lots: dict[str, int]
    debt: int
    tier: str | None
    activity: dict[str, list[int]]
    lifetime_spend: int
    last_visit: date | None
    first_seen: date | None
    day: date | None
    day_sales: int
    day_points: int
    birthday_year: int | None
    passes: list[PassState]
    effects: list[Effect] = field(default_factory=list)

    @classmethod
    def of(cls, account: Account) -> _State:
        return cls(account.as_of, dict(account.lots), account.debt, account.tier,
                   {month: list(values) for month, values in account.activity.items()}, account.lifetime_spend,
                   account.last_visit, account.first_seen, account.day, account.day_sales, account.day_points,
                   account.birthday_year, list(account.passes))

    def frozen(self) -> Account:
        # Built from a valid account by the fold's own rules: no second validation (a decision's hot path).
        return Account.model_construct(
            as_of=self.as_of, lots={month: points for month, points in sorted(self.lots.items()) if points},
            debt=self.debt, tier=self.tier,
            activity={month: (values[0], values[1]) for month, values in sorted(self.activity.items())},
            lifetime_spend=self.lifetime_spend, last_visit=self.last_visit, first_seen=self.first_seen,
            day=self.day, day_sales=self.day_sales, day_points=self.day_points,
            birthday_year=self.birthday_year, passes=tuple(self.passes))

    def add(self, points: int, month: str) -> None:
        paid = min(points, self.debt)
        self.debt -= paid
        if points > paid:
            self.lots[month] = self.lots.get(month, 0) + points - paid

    def take(self, points: int) -> None:
        for month in sorted(self.lots):
            used = min(points, self.lots[month])
            self.lots[month] -= used
            points -= used
            if not self.lots[month]:
                del self.lots[month]
            if not points:
                return
        self.debt += points


def _rank(rules: ProgrammeRules, tier_id: str | None) -> int:
    assert rules.tiers is not None
    ids = [level.tier_id for level in rules.tiers.levels]
    return ids.index(tier_id) if tier_id in ids else 0


def qualified(rules: ProgrammeRules, activity: dict[str, list[int]] | dict[str, tuple[int, int]],
              last_month: str) -> TierLevel | None:
    """The highest tier the window ending with `last_month` qualifies for (None without tiers)."""
    if rules.tiers is None:
        return None
    first = add_months(last_month, 1 - rules.tiers.window_months)  # "YYYY-MM" compares as the months do
    window = [values for month, values in activity.items() if first <= month <= last_month]
    visits = sum(values[0] for values in window)
    spend = sum(values[1] for values in window)
    reached = rules.tiers.levels[0]
    for level in rules.tiers.levels[1:]:
        if (level.min_visits is not None and visits >= level.min_visits) or (
                level.min_spend is not None and spend >= level.min_spend):
            reached = level
    return reached


def _review_due(rules: ProgrammeRules, month: str) -> bool:
    assert rules.tiers is not None
    number = int(month[5:7])
    if rules.tiers.review == "monthly":
        return True
    if rules.tiers.review == "quarterly":
        return number in (1, 4, 7, 10)
    return number == int(rules.tiers.review_day[:2])


def _month_start(state: _State, rules: ProgrammeRules, moment: datetime, tz: str) -> None:
    month = month_key(local_day(moment, tz))
    ended = add_months(month, -1)
    bonus = rules.monthly_bonus
    if bonus is not None and state.activity.get(ended, [0, 0])[0] >= bonus.min_visits:
        state.add(bonus.points, month)
        state.effects.append(Effect("bonus", moment, bonus.points, ended))
    if rules.tiers is not None and _review_due(rules, month):
        level = qualified(rules, state.activity, ended)
        assert level is not None
        new = level.tier_id
        current = _rank(rules, state.tier)
        if _rank(rules, new) < current and rules.tiers.demotion == "one_level":
            new = rules.tiers.levels[current - 1].tier_id
        if new != (state.tier or rules.tiers.levels[0].tier_id):  # None (never ranked) is the lowest: kept as is
            state.effects.append(Effect("tier", moment, 0, f"{state.tier or '-'}>{new}"))
            state.tier = new
    if rules.expiry is not None:
        last = add_months(month, -rules.expiry.shelf_life_months - 1)  # January with 12: lapses 1 February
        lapsed = sorted(lot for lot in state.lots if lot <= last)
        if lapsed:
            points = sum(state.lots.pop(lot) for lot in lapsed)
            state.effects.append(Effect("expiry", moment, -points, ",".join(lapsed)))
    keep = add_months(month, -(rules.tiers.window_months if rules.tiers is not None else 1))
    for old in [key for key in state.activity if key < keep]:
        del state.activity[old]


def _burn_at(state: _State, rules: ProgrammeRules, tz: str) -> datetime | None:
    since = state.last_visit or state.first_seen
    if rules.burn is None or since is None or not state.lots:
        return None
    return start_of_day(since + timedelta(days=rules.burn.inactive_days + 1), tz)  # N whole days without one


def _advance(state: _State, rules: ProgrammeRules, to: datetime, tz: str) -> None:
    if state.as_of is None or to <= state.as_of:
        state.as_of = to if state.as_of is None else state.as_of
        return
    while True:
        assert state.as_of is not None
        upcoming = next_month_start(state.as_of, tz)  # one at a time: a long absence costs months, not months²
        starts = [upcoming] if upcoming <= to else []
        burn = _burn_at(state, rules, tz)
        burning = burn is not None and state.as_of < burn <= to
        moment = min([*starts, *([burn] if burning and burn is not None else [])], default=None)
        if moment is None:
            state.as_of = to
            return
        if starts and starts[0] == moment:
            _month_start(state, rules, moment, tz)
        if burning and burn == moment and state.lots:
            points = sum(state.lots.values())
            state.effects.append(Effect("burn", moment, -points, ",".join(sorted(state.lots))))
            state.lots.clear()
        state.as_of = moment


def _apply(state: _State, rules: ProgrammeRules, move: Move, tz: str) -> None:
    day = local_day(move.at, tz)
    month = month_key(day)
    state.first_seen = min(state.first_seen, day) if state.first_seen else day
    if state.day is None or day > state.day:
        state.day, state.day_sales, state.day_points = day, 0, 0
    if move.points > 0:
        state.add(move.points, month)
    elif move.points < 0:
        state.take(-move.points)
    if move.kind in ("earn", "approval", "refund"):
        # A refund takes its spend back from the month it happens in (never below zero).
        bucket = state.activity.setdefault(month, [0, 0])
        bucket[1] = max(0, bucket[1] + move.spend)
        state.lifetime_spend = max(0, state.lifetime_spend + move.spend)
        if move.visit and (state.last_visit is None or day > state.last_visit):
            bucket[0] += 1
            state.last_visit = day
        if move.earning_sale and day == state.day:
            state.day_sales += 1
            state.day_points += max(0, move.points)
    if move.birthday_year is not None:
        state.birthday_year = max(state.birthday_year or 0, move.birthday_year)
    _passes(state, rules, move, day)
    if rules.tiers is not None and move.kind in ("earn", "approval"):
        level = qualified(rules, state.activity, month)
        assert level is not None
        if _rank(rules, level.tier_id) > _rank(rules, state.tier):
            state.effects.append(Effect("tier", move.at, 0, f"{state.tier or '-'}>{level.tier_id}"))
            state.tier = level.tier_id


def _passes(state: _State, rules: ProgrammeRules, move: Move, day: date) -> None:
    products = {product.pass_id: product for product in rules.passes}
    for pass_id in move.passes_bought:
        product = products.get(pass_id)
        if product is None:
            continue
        index = next((n for n, held in enumerate(state.passes) if held.pass_id == pass_id), None)
        if index is not None and state.passes[index].valid_to >= day:
            held = state.passes[index]
            longer = held.valid_to + timedelta(days=product.validity_days)
            state.passes[index] = held.model_copy(update={"valid_to": longer})
        else:
            fresh = PassState(pass_id=pass_id, valid_from=day,
                              valid_to=day + timedelta(days=product.validity_days - 1))
            state.passes = [held for held in state.passes if held.pass_id != pass_id] + [fresh]
    for pass_id, uses in move.pass_uses:
        for index, held in enumerate(state.passes):
            if held.pass_id != pass_id:
                continue
            week = week_key(day)
            state.passes[index] = held.model_copy(update={
                "week": week, "week_used": (held.week_used if held.week == week else 0) + uses,
                "day": day, "day_used": (held.day_used if held.day == day else 0) + uses})
    state.passes = [held for held in state.passes if held.valid_to >= day - timedelta(days=31)]


def _quiet(account: Account, rules: ProgrammeRules, to: datetime, tz: str) -> bool:
    """No month starts and no burn falls in (account.as_of, to]."""
    assert account.as_of is not None
    if month_key(local_day(account.as_of, tz)) != month_key(local_day(to, tz)):
        return False
    since = account.last_visit or account.first_seen
    return rules.burn is None or since is None or not account.lots or \
        start_of_day(since + timedelta(days=rules.burn.inactive_days + 1), tz) > to


def advance(account: Account, rules: ProgrammeRules, to: datetime, tz: str) -> tuple[Account, list[Effect]]:
    """The account at `to`: every time-based rule due in between applied."""
    if account.as_of is not None and account.as_of < to and _quiet(account, rules, to, tz):
        return account.model_copy(update={"as_of": to}), []  # nothing due: a decision's usual case, kept cheap
    state = _State.of(account)
    _advance(state, rules, to, tz)
    return state.frozen(), state.effects


def fold(moves: Iterable[Move], rules: ProgrammeRules, tz: str, *, start: Account | None = None,
         until: datetime | None = None) -> tuple[Account, list[Effect]]:
    """`start` (a new account when None) with `moves` applied in event order, then advanced to `until`.

    A move older than the account's `as_of` (a box's own events on top of a newer directory entry) applies
    without turning time back: the hub, which has every move, folds them in their place.
    """
    state = _State.of(start or Account())
    for move in sorted(moves, key=Move.key):
        _advance(state, rules, move.at, tz)
        _apply(state, rules, move, tz)
    if until is not None:
        _advance(state, rules, until, tz)
    return state.frozen(), state.effects
