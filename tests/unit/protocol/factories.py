"""Valid protocol objects for tests."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from protocol.account import Account, Move, fold
from protocol.chain import seal
from protocol.events import GENESIS_HASH, Event, LineItem, LoyaltyOutcome, SaleRecorded
from protocol.ids import uuid7
from protocol.loyalty import earned_outcome, sale_moves
from protocol.pricing import SaleDecision, price_sale
from protocol.rules import RuleBundle

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def sale_payload(sale_id: str = "S-1", *, tickets: int = 2, price: int = 1250, film: str = "The Long Night",
                 site_id: str = "riverside", card_token: str | None = None, cashier_id: str = "c07"
                 ) -> dict[str, Any]:
    items = [
        LineItem(kind="ticket", sku="TKT-STD", film=film, hall="h1", showtime=T0 + timedelta(hours=1),
                 quantity=tickets, unit_price=price),
        LineItem(kind="concession", sku="POP-L", description="Popcorn L", quantity=1, unit_price=650),
    ]
    sale = SaleRecorded(
        site_id=site_id, till_id="t1", cashier_id=cashier_id, sale_id=sale_id, currency="EUR", items=items,
        total=sum(i.amount for i in items), card_token=card_token,
        loyalty=LoyaltyOutcome(status="no_card" if card_token is None else "earned"),
    )
    return sale.model_dump(mode="json")


def chain(n: int, *, device_id: str = "riverside-box1", start_seq: int = 1, prev_hash: str = GENESIS_HASH,
          site_id: str = "riverside") -> list[Event]:
    events = []
    for i in range(n):
        seq = start_seq + i
        event = seal(
            type="sale.recorded", device_id=device_id, seq=seq,
            event_id=uuid7(int(T0.timestamp() * 1000) + seq, os.urandom(10)),
            occurred_at=T0 + timedelta(seconds=seq), clock_ok=True, prev_hash=prev_hash,
            payload=sale_payload(f"S-{seq}", site_id=site_id),
        )
        events.append(event)
        prev_hash = event.hash
    return events


# --- The rule engine: bundles, lines and a till that folds its own moves (tests of protocol.pricing/account).

PARIS = "Europe/Paris"
TOKEN = "ab" * 16


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A Paris wall-clock time as the UTC instant it is."""
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(PARIS)).astimezone(UTC)


def rules_bundle(**fields: Any) -> RuleBundle:
    """A bundle in Paris time: 10 % of tickets and 5 % of concessions earned, unless `fields` say otherwise."""
    base: dict[str, Any] = {
        "version": 1, "published_at": "2026-01-01T00:00:00Z", "currency": "EUR", "timezone": PARIS,
        "earning": [{"rule_id": "tickets", "kind": "ticket", "basis_points": 1000},
                    {"rule_id": "bar", "kind": "concession", "basis_points": 500}],
        "redemption": {"enabled": True, "kinds": ["ticket"]},
    }
    base.update(fields)
    return RuleBundle.model_validate(base)


def ticket(price: int = 1000, *, qty: int = 1, sku: str = "TKT-STD", film: str | None = None,
           hall: str | None = None, showtime: datetime | None = None, fmt: str | None = None,
           genre: str | None = None, category: str | None = None) -> LineItem:
    return LineItem(kind="ticket", sku=sku, film=film, hall=hall, showtime=showtime, format=fmt, genre=genre,
                    category=category, quantity=qty, unit_price=price)


def concession(price: int = 500, *, qty: int = 1, sku: str = "POP-L", category: str | None = None) -> LineItem:
    return LineItem(kind="concession", sku=sku, category=category, quantity=qty, unit_price=price)


def sell(bundle: RuleBundle, moves: list[Move], items: list[LineItem], at: datetime, *, device: str = "box1",
         site_id: str = "riverside", programme: str | None = None, birthday: str | None = None,
         benefits: bool = True, capture: tuple[int, int] | None = None,
         start: Account | None = None, seq: int | None = None) -> tuple[SaleDecision, list[Move]]:
    """What a box does for one member's sale: decide on the account its moves fold to (on top of `start`), record
    the sale as event `seq` of `device`, and return the decision and the moves it makes (appended to `moves`)."""
    rules = bundle.rules_for(programme)
    account, _ = fold(moves, rules, bundle.timezone, start=start)
    decision = price_sale(bundle, programme, account, items, at=at, site_id=site_id, birthday=birthday,
                          benefits=benefits, capture=capture)
    outcome = earned_outcome(decision, rules_version=bundle.version, programme=programme,
                             redeemed=decision.redeemed_points, amount_redeemed=decision.redeemed_amount)
    seq = seq or len(moves) + 1
    sale = SaleRecorded(site_id=site_id, till_id="t1", cashier_id="c07", sale_id=f"S-{device}-{seq}",
                        currency=bundle.currency, items=items, total=sum(item.amount for item in items),
                        card_token=TOKEN, loyalty=outcome)
    made = sale_moves(sale, at, (device, seq))
    moves.extend(made)
    return decision, made
