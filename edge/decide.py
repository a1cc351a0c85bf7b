"""The decision for a sale: loyalty now, fraud later. Uses only the state it is given; no I/O.

This module never imports devices, store or sync (an import-linter contract): the agent hands it
protocol types and stores what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.events import LineItem, SaleRecorded
from protocol.loyalty import decide_loyalty
from protocol.rules import RuleBundle


def decide_sale(
    *,
    rules: RuleBundle,
    site_id: str,
    till_id: str,
    cashier_id: str,
    sale_id: str,
    currency: str,
    items: Sequence[LineItem],
    card_token: str | None,
    balance_before: int,
) -> SaleRecorded:
    """The sale as it will be recorded, with its loyalty outcome."""
    outcome = decide_loyalty(rules, items, has_card=card_token is not None, balance_before=balance_before)
    return SaleRecorded(
        site_id=site_id,
        till_id=till_id,
        cashier_id=cashier_id,
        sale_id=sale_id,
        currency=currency,
        items=list(items),
        total=sum(item.amount for item in items),
        card_token=card_token,
        loyalty=outcome,
    )
