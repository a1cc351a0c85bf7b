"""What a backtest reads from the hub's tables, each read its own short transaction (a connection taken from
the engine and given back): ingest is never blocked and no snapshot is held for the minutes a long period
takes. Sales come in keyset pages ordered by (occurred_at, device_id, seq)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from cloud.backtest.replay import Member, StoredReversal, StoredSale
from cloud.db.schema import events, member_cards, member_ledger, members, rule_bundles
from cloud.db.types import UtcDateTime
from cloud.members.accounts import MOVE_KINDS, move_of_row
from protocol.account import Move
from protocol.events import RedemptionReversed, SaleRecorded
from protocol.rules import RuleBundle, default_bundle

PAGE = 2000
"""Events per keyset page."""
IN_CHUNK = 500
"""Keys per `IN (...)` list."""
SALE, REVERSAL = SaleRecorded.event_type, RedemptionReversed.event_type
Stored = StoredSale | StoredReversal


def baseline_bundle(engine: sa.Engine, at: datetime, currency: str) -> RuleBundle:
    """The newest bundle published at or before `at` (the built-in default when there was none then)."""
    with engine.connect() as conn:
        body = conn.execute(sa.select(rule_bundles.c.body).where(rule_bundles.c.published_at <= at)
                            .order_by(rule_bundles.c.version.desc()).limit(1)).scalar()
    return default_bundle(currency, at) if body is None else RuleBundle.model_validate(body)


def _period(start: datetime, end: datetime, sites: Sequence[str] | None, types: Sequence[str]) -> list[Any]:
    where = [events.c.type.in_(types), events.c.occurred_at >= start, events.c.occurred_at < end]
    if sites is not None:
        where.append(events.c.site_id.in_(sites))
    return where


def count_sales(engine: sa.Engine, start: datetime, end: datetime, sites: Sequence[str] | None) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)
                                .where(*_period(start, end, sites, [SALE]))).scalar_one())


def pages(engine: sa.Engine, start: datetime, end: datetime, sites: Sequence[str] | None,
          size: int = PAGE) -> Iterator[list[Any]]:
    """The period's sales and reversals in (occurred_at, device_id, seq) order, `size` a page, each page read
    in its own transaction."""
    columns = (events.c.occurred_at, events.c.device_id, events.c.seq)
    query = (sa.select(*columns, events.c.type, events.c.site_id, events.c.body)
             .where(*_period(start, end, sites, [SALE, REVERSAL])).order_by(*columns).limit(size))
    after: tuple[datetime, str, int] | None = None
    while True:
        paged = query
        if after is not None:
            paged = query.where(sa.tuple_(*columns) > sa.tuple_(
                sa.literal(after[0], UtcDateTime()), sa.literal(after[1], sa.String()),
                sa.literal(after[2], sa.BigInteger())))
        with engine.connect() as conn:
            rows = list(conn.execute(paged).all())
        if rows:
            yield rows
        if len(rows) < size:
            return
        last = rows[-1]
        after = (last.occurred_at, last.device_id, int(last.seq))


def parse(row: Any) -> Stored | None:
    """The stored event as the replay takes it; None for one whose payload is not readable (refused at
    ingest, or from a newer box) or a sale without a card that earned (nothing to replay)."""
    payload = (row.body or {}).get("payload") if isinstance(row.body, dict) else None
    try:
        if row.type == SALE:
            sale = SaleRecorded.model_validate(payload)
            if sale.card_token is None or sale.loyalty.status != "earned":
                return None
            return StoredSale(row.device_id, int(row.seq), row.occurred_at, row.site_id, sale)
        return StoredReversal(row.device_id, int(row.seq), row.occurred_at, RedemptionReversed.model_validate(payload))
    except ValidationError:
        return None


def token_of(stored: Stored) -> str:
    if isinstance(stored, StoredSale):
        return stored.sale.card_token or ""
    return stored.reversal.card_token


def members_of(engine: sa.Engine, tokens: Iterable[str]) -> dict[str, Member]:
    """Card token -> its holder. Ingest gives every card seen at a till a member (anonymous until enrolled);
    a token it has not ledgered yet is its own member of the default programme."""
    wanted = sorted(set(tokens))
    found: dict[str, Member] = {}
    with engine.connect() as conn:
        for chunk in _chunks(wanted):
            for row in conn.execute(sa.select(member_cards.c.card_token, members.c.member_id, members.c.programme,
                                              members.c.birthday_md)
                                    .join(members, members.c.member_id == member_cards.c.member_id)
                                    .where(member_cards.c.card_token.in_(chunk))):
                found[row.card_token] = Member(row.member_id, row.programme, row.birthday_md)
    return {token: found.get(token) or Member(f"card:{token}") for token in wanted}


def histories(engine: sa.Engine, member_ids: Iterable[str], before: datetime) -> dict[str, list[Move]]:
    """Each member's moves before `before`, as their ledger keeps them (what ingest folds: the shared
    `move_of_row`, no event to open again)."""
    moves: dict[str, list[Move]] = {member_id: [] for member_id in member_ids}
    ledger = member_ledger
    with engine.connect() as conn:
        for chunk in _chunks(sorted(moves)):
            query = (sa.select(ledger.c.member_id, ledger.c.kind, ledger.c.points, ledger.c.occurred_at,
                               ledger.c.device_id, ledger.c.seq, ledger.c.detail)
                     .where(ledger.c.member_id.in_(chunk), ledger.c.occurred_at < before,
                            ledger.c.kind.in_(tuple(MOVE_KINDS))))
            for row in conn.execute(query):
                moves[row.member_id].append(move_of_row(row))
    return moves


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for first in range(0, len(values), IN_CHUNK):
        yield values[first:first + IN_CHUNK]
