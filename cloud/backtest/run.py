"""One backtest from start to end: the baseline bundle, the period's events page by page, each member's history
read when first met, the replay, progress after each page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.backtest import store
from cloud.backtest.replay import Replay, StoredSale
from protocol.rules import RuleBundle

Progress = Callable[[int, int], None]
"""Called with (sales done, sales in the period) after each page."""


def run_backtest(engine: sa.Engine, proposed: RuleBundle, *, start: datetime, end: datetime,
                 sites: Sequence[str] | None = None, progress: Progress | None = None,
                 page_size: int = store.PAGE) -> dict[str, Any]:
    """Replay the card sales of [start, end) (of `sites` only, when given) under `proposed` beside what was
    recorded; the figures as JSON.

    The baseline accounts run under the newest bundle published at or before `start` (not each sale's own
    version: the recorded figures are each sale's own, the accounts' time rules are that bundle's). With
    `sites`, the accounts see only those sites' sales of the period (their history before it is whole).
    """
    baseline = store.baseline_bundle(engine, start, proposed.currency)
    replay = Replay(baseline=baseline, proposed=proposed, start=start, end=end)
    total = store.count_sales(engine, start, end, sites)
    done = unreadable = 0
    if progress is not None:
        progress(done, total)
    holders: dict[str, str] = {}
    for rows in store.pages(engine, start, end, sites, page_size):
        parsed = [store.parse(row) for row in rows]
        events = [each for each in parsed if each is not None]
        tokens = {store.token_of(each) for each in events} - holders.keys()
        if tokens:
            members = store.members_of(engine, tokens)
            holders.update({token: member.member_id for token, member in members.items()})
            new = {member.member_id: member for member in members.values() if member.member_id not in replay}
            if new:
                history = store.histories(engine, new, start)
                for member_id, member in new.items():
                    replay.open(member, history[member_id])
        for each in events:
            member_id = holders[store.token_of(each)]
            if isinstance(each, StoredSale):
                replay.sale(each, member_id)
            else:
                replay.reversal(each, member_id)
        replay.settle()
        sales = sum(row.type == store.SALE for row in rows)
        done += sales
        unreadable += sum(row.type == store.SALE and each is None for row, each in zip(rows, parsed, strict=True))
        total = max(total, done)  # sales that arrived late, inside the period, after the count
        if progress is not None:
            progress(done, total)
    return {"from": _iso(start), "to": _iso(end), "sites_filter": list(sites) if sites is not None else None,
            "sales_read": done, "sales_not_replayed": unreadable, **replay.result()}


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
