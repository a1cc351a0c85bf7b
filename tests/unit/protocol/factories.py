"""Valid protocol objects for tests."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol.chain import seal
from protocol.events import GENESIS_HASH, Event, LineItem, LoyaltyOutcome, SaleRecorded
from protocol.ids import uuid7

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
