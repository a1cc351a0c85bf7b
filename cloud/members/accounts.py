"""Members' accounts at the hub: each member's `protocol.account.Account`, folded from their ledger under the
bundles in force at each moment, with what the time-based rules did written back to the ledger as rows of
their own.

The box folds the same moves with the same functions (`protocol.loyalty.sale_moves`, `protocol.account`), so
the account the directory sends it is the one it would have computed. Events usually arrive in event time
and fold on top of the stored account; one older than what the account already includes (an offline box's
backlog) refolds the member from their ledger, and the rows the time-based rules wrote are rewritten.

History is not rewritten under the current bundle: each bundle is in force from its `published_at` to the next
one's (`Rulebook`), and the moves and time-rule moments of that span fold under it. The member's programme is
the current one in every span: a programme change followed by a refold re-ranks their history under the new
programme.

Every function works in the caller's transaction; the caller holds the member's row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from cloud.db.schema import member_ledger, members, rule_bundles
from protocol.account import Account, Effect, Move, advance, fold, qualified
from protocol.calendar import add_months, local_day, month_key, start_of_day, start_of_month
from protocol.programme import ProgrammeRules
from protocol.rules import RuleBundle, default_bundle

log = logging.getLogger(__name__)
MOVE_KINDS = {"earn": "earn", "redeem": "redeem", "reversal": "reversal", "import": "adjust", "refund": "refund",
              "approval": "approval"}
"""Ledger kinds that are moves (what events and HQ did), and the account move each one is."""
DERIVED_KINDS = ("expiry", "burn", "bonus", "tier")
"""Ledger kinds the time-based rules and tier changes wrote: derived from the moves, rewritten by a refold."""
NO_CURRENCY = "XXX"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Done = list[tuple[Effect, int]]
"""What the time-based rules did, each with the version of the bundle they ran under."""


@dataclass(frozen=True, slots=True)
class Span:
    """A bundle and the last instant it is in force (the next one's `published_at`; None for the newest)."""

    bundle: RuleBundle
    until: datetime | None


@dataclass(frozen=True, slots=True)
class Rulebook:
    """Every bundle published, in version order, each in force from its `published_at` to the next one's (the
    built-in default before the first): an account's moves and time-rule moments fold under the bundle in
    force then. A moment at a bundle's `published_at` is still the previous bundle's."""

    spans: tuple[Span, ...]
    key: tuple[int, str]
    """The newest bundle's version and signature."""

    @property
    def current(self) -> RuleBundle:
        return self.spans[-1].bundle

    def rules(self, programme: str | None) -> tuple[ProgrammeRules, str]:
        """The current rules of `programme`, and the chain's time zone."""
        return self.current.rules_for(programme), self.current.timezone

    def fold(self, moves: Iterable[Move], programme: str | None, *, start: Account | None = None,
             until: datetime | None = None) -> tuple[Account, Done]:
        """`protocol.account.fold` span by span: `start` (moves all later than its `as_of`), the moves, then
        advanced to `until`; each span's moves and moments under its own bundle."""
        account = start or Account()
        pending = sorted(moves, key=Move.key)
        end = max([move.at for move in pending] + ([until] if until is not None else []), default=None)
        done: Done = []
        if end is None:
            return account, done
        for span in self.spans:
            if span.until is not None and (
                    (account.as_of is not None and span.until <= account.as_of)
                    or (account.as_of is None and (not pending or pending[0].at > span.until))):
                continue  # over before the account's present, or before anything happened to it
            bound = end if span.until is None else min(span.until, end)
            mine = [move for move in pending if move.at <= bound]
            pending = pending[len(mine):]
            rules, tz = span.bundle.rules_for(programme), span.bundle.timezone
            if mine:
                account, effects = fold(mine, rules, tz, start=account, until=bound)
            else:
                account, effects = advance(account, rules, bound, tz)
            done += [(effect, span.bundle.version) for effect in effects]
            if span.until is None or end <= span.until:
                break
        return account, done

    def due(self, account: Account, programme: str | None) -> datetime | None:
        """The next instant a time-based rule may have something to do for the account (`due_at`), in the
        span it falls in."""
        if account.as_of is None:
            return None
        for span in self.spans:
            if span.until is not None and span.until <= account.as_of:
                continue
            rules, tz = span.bundle.rules_for(programme), span.bundle.timezone
            due = due_at(account, rules, tz)
            if span.until is None or (due is not None and due <= span.until):
                return due
            account, _ = advance(account, rules, span.until, tz)  # nothing due in this span: no effect
        return None


_BOOK: dict[str, Rulebook] = {}
"""The book of the newest version this process has read (under "book")."""
_PARSED: dict[tuple[int, str], RuleBundle] = {}
"""Its bundles by (version, signature)."""


def rulebook(conn: sa.Connection) -> Rulebook:
    """Every published bundle as spans of time (`Rulebook`).

    A signed bundle never changes under its version: the book is kept until a newer version appears, and
    then only that one is parsed.
    """
    signature = rule_bundles.c.body["signature"].as_string()
    row = conn.execute(sa.select(rule_bundles.c.version, signature)
                       .order_by(rule_bundles.c.version.desc()).limit(1)).first()
    if row is None:
        return Rulebook((Span(default_bundle(NO_CURRENCY, _EPOCH), None),), (0, ""))
    key = (int(row[0]), str(row[1] or ""))
    book = _BOOK.get("book")
    if book is not None and book.key == key and key[1]:
        return book
    listed = conn.execute(sa.select(rule_bundles.c.version, rule_bundles.c.published_at, signature)
                          .order_by(rule_bundles.c.version)).all()
    parsed: dict[tuple[int, str], RuleBundle] = {}
    for version, _, signed in listed:
        wanted = (int(version), str(signed or ""))
        bundle = _PARSED.get(wanted) if wanted[1] else None
        if bundle is None:
            body = conn.execute(sa.select(rule_bundles.c.body).where(rule_bundles.c.version == version)).scalar_one()
            bundle = RuleBundle.model_validate(body)
        parsed[wanted] = bundle
    # In force from its publication; a version published (by its clock) before the one it follows starts
    # when that one does.
    starts: list[datetime] = []
    for _, published_at, _ in listed:
        starts.append(max(published_at, starts[-1]) if starts else published_at)
    bundles = list(parsed.values())
    spans = [Span(default_bundle(NO_CURRENCY, _EPOCH), starts[0])]
    spans += [Span(bundle, nxt) for bundle, nxt in zip(bundles, [*starts[1:], None], strict=True)]
    book = Rulebook(tuple(spans), key)
    if all(signed for _, signed in parsed):  # an unsigned one (a hand-made row) is read again each time
        _PARSED.clear()
        _PARSED.update(parsed)
        _BOOK["book"] = book
    return book


def running_bundle(conn: sa.Connection) -> RuleBundle:
    """The newest published bundle (the built-in default before the first)."""
    return rulebook(conn).current


def stored_account(value: Any) -> Account | None:
    """The account a member row holds; None before it was first folded, or when it does not validate (the
    caller refolds the member from the ledger, which is the truth)."""
    if value is None:
        return None
    try:
        return Account.model_validate(value)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
        log.warning("a member's stored account does not validate (fields: %s); refolding it from the ledger",
                    fields[:200])
        return None


def move_detail(move: Move) -> dict[str, Any] | None:
    """What an earn (approval, refund) row keeps besides its points: the counts the rules use (None for other
    moves)."""
    if move.kind not in ("earn", "approval", "refund"):
        return None
    return {"spend": move.spend, "visit": move.visit, "earning_sale": move.earning_sale,
            "pass_uses": [[pass_id, uses] for pass_id, uses in move.pass_uses],
            "passes_bought": list(move.passes_bought), "birthday_year": move.birthday_year}


def move_of_row(row: Any) -> Move:
    """The account move a ledger row of one of `MOVE_KINDS` records (the inverse of `move_detail`), at the
    row's time (the event's, or the hub's when the box's clock could not be trusted)."""
    detail = row.detail if isinstance(row.detail, dict) else {}
    points = int(row.points)
    return Move(at=row.occurred_at, kind=MOVE_KINDS[row.kind], points=points,  # type: ignore[arg-type]
                spend=int(detail.get("spend", 0)), visit=bool(detail.get("visit", False)),
                earning_sale=bool(detail.get("earning_sale", row.kind == "earn" and points > 0)),
                pass_uses=tuple((str(pass_id), int(uses)) for pass_id, uses in detail.get("pass_uses", ())),
                passes_bought=tuple(str(pass_id) for pass_id in detail.get("passes_bought", ())),
                birthday_year=detail.get("birthday_year"),
                order=(row.device_id or "", int(row.seq or 0)))


def _review_months(rules: ProgrammeRules) -> tuple[int, ...]:
    assert rules.tiers is not None
    if rules.tiers.review == "monthly":
        return tuple(range(1, 13))
    if rules.tiers.review == "quarterly":
        return (1, 4, 7, 10)
    return (int(rules.tiers.review_day[:2]),)


def due_at(account: Account, rules: ProgrammeRules, tz: str) -> datetime | None:
    """The next instant after the account's `as_of` when a time-based rule has something to do for it: the
    month start paying its monthly bonus, reviewing a tier above the lowest, expiring its oldest lot; the
    day its points burn. None when nothing will happen until its next move.

    It restates when `protocol.account` runs each rule (tests hold the two together): too early costs the
    clock a look, too late would hold a rule back.
    """
    if account.as_of is None:
        return None
    month = month_key(local_day(account.as_of, tz))
    next_start = start_of_month(add_months(month, 1), tz)
    moments: list[datetime] = []
    bonus = rules.monthly_bonus
    if bonus is not None and account.activity.get(month, (0, 0))[0] >= bonus.min_visits:
        moments.append(next_start)
    if rules.tiers is not None and account.tier not in (None, rules.tiers.levels[0].tier_id):
        reviewed = _review_months(rules)
        ahead = next(n for n in range(1, 13) if int(add_months(month, n)[5:7]) in reviewed)
        moments.append(start_of_month(add_months(month, ahead), tz))
    if rules.expiry is not None and account.lots:
        # January's lot with a shelf life of 12 lapses on 1 February a year later.
        lapse = start_of_month(add_months(min(account.lots), rules.expiry.shelf_life_months + 1), tz)
        moments.append(max(lapse, next_start))
    since = account.last_visit or account.first_seen
    if rules.burn is not None and account.lots and since is not None:
        # The start of the day after `inactive_days` whole days without a visit.
        burn = start_of_day(since + timedelta(days=rules.burn.inactive_days + 1), tz)
        if burn > account.as_of:
            moments.append(burn)
    return min(moments, default=None)


def account_values(account: Account, book: Rulebook, programme: str | None) -> dict[str, Any]:
    """The member columns that follow the account."""
    return {"account": account.model_dump(mode="json"), "balance": account.balance,
            "account_due": book.due(account, programme)}


def effect_rows(member_id: str, done: Sequence[tuple[Effect, int]], *, recorded_at: datetime) -> list[dict[str, Any]]:
    """Ledger rows for what the time-based rules (or a tier change) did, each under its bundle's version."""
    return [{"member_id": member_id, "card_token": None, "kind": effect.kind, "points": effect.points,
             "occurred_at": effect.at, "recorded_at": recorded_at, "site_id": None, "device_id": None, "seq": None,
             "sale_id": None, "rules_version": version, "detail": {"detail": effect.detail}}
            for effect, version in done]


def _write_effects(conn: sa.Connection, member_id: str, done: Sequence[tuple[Effect, int]], *,
                   at: datetime) -> None:
    if done:
        conn.execute(member_ledger.insert(), effect_rows(member_id, done, recorded_at=at))


def refold(conn: sa.Connection, member_id: str, programme: str, book: Rulebook, *, at: datetime,
           until: datetime | None = None) -> dict[str, Any]:
    """Fold the member from every move in their ledger, span by span, advanced to `until` (at least their
    last move), and rewrite their derived rows; returns the member columns to set."""
    rows = conn.execute(
        sa.select(member_ledger.c.kind, member_ledger.c.points, member_ledger.c.occurred_at,
                  member_ledger.c.device_id, member_ledger.c.seq, member_ledger.c.detail)
        .where(member_ledger.c.member_id == member_id, member_ledger.c.kind.in_(list(MOVE_KINDS)))).all()
    account, done = book.fold([move_of_row(row) for row in rows], programme, until=until)
    conn.execute(member_ledger.delete().where(member_ledger.c.member_id == member_id,
                                              member_ledger.c.kind.in_(DERIVED_KINDS)))
    _write_effects(conn, member_id, done, at=at)
    return account_values(account, book, programme)


def fold_in(conn: sa.Connection, member: Any, moves: Sequence[Move], book: Rulebook, *,
            at: datetime) -> dict[str, Any]:
    """Bring the member (their row, locked) up to date with `moves`, already in their ledger: folded on top of
    their account when all are later than it, else refolded from the ledger. Returns the columns to set."""
    account = stored_account(member.account)
    # Strictly later: moves at one instant apply in a fixed order, which a fold on top could not respect.
    if account is not None and all(account.as_of is None or move.at > account.as_of for move in moves):
        folded, done = book.fold(moves, member.programme, start=account)
        _write_effects(conn, member.member_id, done, at=at)
        return account_values(folded, book, member.programme)
    return refold(conn, member.member_id, member.programme, book, at=at,
                  until=account.as_of if account is not None else None)


def advance_member(conn: sa.Connection, member: Any, book: Rulebook, *,
                   now: datetime) -> tuple[dict[str, Any], bool]:
    """Run the time-based rules due for the member (their row, locked) up to `now`; the columns to set, and
    whether anything happened that boxes must hear of (an advance that did nothing they do themselves)."""
    account = stored_account(member.account)
    if account is None:
        return refold(conn, member.member_id, member.programme, book, at=now, until=now), True
    advanced, done = book.fold((), member.programme, start=account, until=now)
    _write_effects(conn, member.member_id, done, at=now)
    return account_values(advanced, book, member.programme), bool(done)


def reprogramme(conn: sa.Connection, member_id: str, programme: str, *, at: datetime) -> dict[str, Any]:
    """Move a member to `programme`, keeping their account (points, history, activity): the tier becomes what
    their activity up to this month qualifies for under the new rules, with a tier row saying so. The caller
    holds the member's row lock; returns the columns to set."""
    book = rulebook(conn)
    rules, tz = book.rules(programme)
    member = conn.execute(sa.select(members.c.account).where(members.c.member_id == member_id)).one()
    account = stored_account(member.account)
    if account is None:
        return refold(conn, member_id, programme, book, at=at)
    level = qualified(rules, account.activity, month_key(local_day(at, tz)))
    tier = level.tier_id if level is not None else None
    if tier != account.tier:
        change = Effect("tier", at, 0, f"{account.tier or '-'}>{tier or '-'}")
        _write_effects(conn, member_id, [(change, book.current.version)], at=at)
        account = account.model_copy(update={"tier": tier})
    return account_values(account, book, programme)
