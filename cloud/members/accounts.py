"""Members' accounts at the hub: each member's `protocol.account.Account`, folded from their ledger under the
running bundle, with what the time-based rules did written back to the ledger as rows of their own.

The box folds the same moves with the same functions (`protocol.loyalty.sale_moves`, `protocol.account`), so
the account the directory sends it is the one it would have computed. Events usually arrive in event time
and fold on top of the stored account; one older than what the account already includes (an offline box's
backlog) refolds the member from their ledger, and the rows the time-based rules wrote are rewritten.

Every function works in the caller's transaction; the caller holds the member's row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
MOVE_KINDS = {"earn": "earn", "redeem": "redeem", "reversal": "reversal", "import": "adjust"}
"""Ledger kinds that are moves (what events and HQ did), and the account move each one is."""
DERIVED_KINDS = ("expiry", "burn", "bonus", "tier")
"""Ledger kinds the time-based rules and tier changes wrote: derived from the moves, rewritten by a refold."""
NO_CURRENCY = "XXX"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BUNDLES: dict[tuple[int, str], RuleBundle] = {}
_CACHED = 8


def running_bundle(conn: sa.Connection) -> RuleBundle:
    """The newest published bundle (the built-in default before the first): what accounts are folded under.

    A signed bundle never changes under its version, so one parsed is kept (a batch reads it every time).
    """
    row = conn.execute(sa.select(rule_bundles.c.version, rule_bundles.c.body["signature"].as_string())
                       .order_by(rule_bundles.c.version.desc()).limit(1)).first()
    if row is None:
        return default_bundle(NO_CURRENCY, _EPOCH)
    key = (int(row[0]), str(row[1] or ""))
    bundle = _BUNDLES.get(key) if key[1] else None
    if bundle is None:
        body = conn.execute(sa.select(rule_bundles.c.body).where(rule_bundles.c.version == key[0])).scalar_one()
        bundle = RuleBundle.model_validate(body)
        if key[1]:
            if len(_BUNDLES) >= _CACHED:
                _BUNDLES.clear()
            _BUNDLES[key] = bundle
    return bundle


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
    """What an earn row keeps besides its points: the counts the rules use (None for other moves)."""
    if move.kind != "earn":
        return None
    return {"spend": move.spend, "visit": move.visit, "earning_sale": move.earning_sale,
            "pass_uses": [[pass_id, uses] for pass_id, uses in move.pass_uses],
            "passes_bought": list(move.passes_bought), "birthday_year": move.birthday_year}


def move_of_row(row: Any) -> Move:
    """The account move a ledger row of one of `MOVE_KINDS` records (the inverse of `move_detail`)."""
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


def account_values(account: Account, rules: ProgrammeRules, tz: str) -> dict[str, Any]:
    """The member columns that follow the account."""
    return {"account": account.model_dump(mode="json"), "balance": account.balance,
            "account_due": due_at(account, rules, tz)}


def effect_rows(member_id: str, effects: Sequence[Effect], *, recorded_at: datetime,
                rules_version: int) -> list[dict[str, Any]]:
    """Ledger rows for what the time-based rules (or a tier change) did."""
    return [{"member_id": member_id, "card_token": None, "kind": effect.kind, "points": effect.points,
             "occurred_at": effect.at, "recorded_at": recorded_at, "site_id": None, "device_id": None, "seq": None,
             "sale_id": None, "rules_version": rules_version, "detail": {"detail": effect.detail}}
            for effect in effects]


def _write_effects(conn: sa.Connection, member_id: str, effects: Sequence[Effect], *, at: datetime,
                   bundle: RuleBundle) -> None:
    if effects:
        conn.execute(member_ledger.insert(), effect_rows(member_id, effects, recorded_at=at,
                                                         rules_version=bundle.version))


def refold(conn: sa.Connection, member_id: str, programme: str, bundle: RuleBundle, *, at: datetime,
           until: datetime | None = None) -> dict[str, Any]:
    """Fold the member from every move in their ledger, advanced to `until` (at least their last move), and
    rewrite their derived rows; returns the member columns to set."""
    rules, tz = bundle.rules_for(programme), bundle.timezone
    rows = conn.execute(
        sa.select(member_ledger.c.kind, member_ledger.c.points, member_ledger.c.occurred_at,
                  member_ledger.c.device_id, member_ledger.c.seq, member_ledger.c.detail)
        .where(member_ledger.c.member_id == member_id, member_ledger.c.kind.in_(list(MOVE_KINDS)))).all()
    moves = [move_of_row(row) for row in rows]
    end = max([moment for moment in (until, *(move.at for move in moves)) if moment is not None], default=None)
    account, effects = fold(moves, rules, tz, until=end)
    conn.execute(member_ledger.delete().where(member_ledger.c.member_id == member_id,
                                              member_ledger.c.kind.in_(DERIVED_KINDS)))
    _write_effects(conn, member_id, effects, at=at, bundle=bundle)
    return account_values(account, rules, tz)


def fold_in(conn: sa.Connection, member: Any, moves: Sequence[Move], bundle: RuleBundle, *,
            at: datetime) -> dict[str, Any]:
    """Bring the member (their row, locked) up to date with `moves`, already in their ledger: folded on top of
    their account when all are later than it, else refolded from the ledger. Returns the columns to set."""
    rules, tz = bundle.rules_for(member.programme), bundle.timezone
    account = stored_account(member.account)
    # Strictly later: moves at one instant apply in a fixed order, which a fold on top could not respect.
    if account is not None and all(account.as_of is None or move.at > account.as_of for move in moves):
        folded, effects = fold(moves, rules, tz, start=account)
        _write_effects(conn, member.member_id, effects, at=at, bundle=bundle)
        return account_values(folded, rules, tz)
    return refold(conn, member.member_id, member.programme, bundle, at=at,
                  until=account.as_of if account is not None else None)


def advance_member(conn: sa.Connection, member: Any, bundle: RuleBundle, *,
                   now: datetime) -> tuple[dict[str, Any], bool]:
    """Run the time-based rules due for the member (their row, locked) up to `now`; the columns to set, and
    whether anything happened that boxes must hear of (an advance that did nothing they do themselves)."""
    rules, tz = bundle.rules_for(member.programme), bundle.timezone
    account = stored_account(member.account)
    if account is None:
        return refold(conn, member.member_id, member.programme, bundle, at=now, until=now), True
    advanced, effects = advance(account, rules, now, tz)
    _write_effects(conn, member.member_id, effects, at=now, bundle=bundle)
    return account_values(advanced, rules, tz), bool(effects)


def reprogramme(conn: sa.Connection, member_id: str, programme: str, *, at: datetime) -> dict[str, Any]:
    """Move a member to `programme`, keeping their account (points, history, activity): the tier becomes what
    their activity up to this month qualifies for under the new rules, with a tier row saying so. The caller
    holds the member's row lock; returns the columns to set."""
    bundle = running_bundle(conn)
    rules, tz = bundle.rules_for(programme), bundle.timezone
    member = conn.execute(sa.select(members.c.account).where(members.c.member_id == member_id)).one()
    account = stored_account(member.account)
    if account is None:
        return refold(conn, member_id, programme, bundle, at=at)
    level = qualified(rules, account.activity, month_key(local_day(at, tz)))
    tier = level.tier_id if level is not None else None
    if tier != account.tier:
        change = Effect("tier", at, 0, f"{account.tier or '-'}>{tier or '-'}")
        _write_effects(conn, member_id, [change], at=at, bundle=bundle)
        account = account.model_copy(update={"tier": tier})
    return account_values(account, rules, tz)
