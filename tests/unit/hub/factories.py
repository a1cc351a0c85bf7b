"""Builders for hub tests: sealed event chains, batches, engines over SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db.devices import register_device
from cloud.db.engine import make_engine, migrate
from protocol.chain import seal
from protocol.events import GENESIS_HASH, Event
from protocol.ids import uuid7
from protocol.messages import Ack, DeviceStatus, EventBatch, LostEvent
from protocol.signing import public_key_text, sign_batch, sign_status

T0 = datetime(2025, 3, 14, 18, 30, tzinfo=UTC)


def sale_payload(
    site_id: str,
    *,
    film: str | None = "Dune",
    hall: str | None = "1",
    tickets: int = 2,
    ticket_price: int = 1200,
    concession: int = 450,
    currency: str = "EUR",
    sale_id: str = "s-1",
) -> dict[str, Any]:
    """A valid sale.recorded payload: `tickets` tickets for `film`, plus one concession line if nonzero."""
    items: list[dict[str, Any]] = [
        {
            "kind": "ticket",
            "sku": "adult",
            "film": film,
            "hall": hall,
            "quantity": tickets,
            "unit_price": ticket_price,
        }
    ]
    if concession:
        items.append({"kind": "concession", "sku": "popcorn", "quantity": 1, "unit_price": concession})
    return {
        "site_id": site_id,
        "till_id": "till-1",
        "cashier_id": "c-7",
        "sale_id": sale_id,
        "currency": currency,
        "items": items,
        "total": tickets * ticket_price + concession,
        "card_token": "ab" * 16,
        "loyalty": {"status": "earned", "points_earned": 10, "balance": 10},
    }


@dataclass
class Chain:
    """A device's hash chain, built one sealed event at a time, and the device's identity key.

    Two Chains of one device sharing `key` are two journals under one identity (a clone, a restored
    backup); a Chain with its own key is a stranger using the device's id.
    """

    site_id: str
    device_id: str
    events: list[Event] = field(default_factory=list)
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def head(self) -> str:
        return self.events[-1].hash if self.events else GENESIS_HASH

    def add(
        self,
        payload: Mapping[str, Any] | None = None,
        *,
        type: str = "sale.recorded",
        occurred_at: datetime | None = None,
        **sale: Any,
    ) -> Event:
        """Seal the next event (a sale by default) and append it."""
        seq = len(self.events) + 1
        when = occurred_at or T0 + timedelta(minutes=seq)
        event = seal(
            type=type,
            device_id=self.device_id,
            seq=seq,
            event_id=uuid7(int(when.timestamp() * 1000), os.urandom(10)),
            occurred_at=when,
            clock_ok=True,
            prev_hash=self.head,
            payload=payload
            if payload is not None
            else sale_payload(self.site_id, sale_id=f"s-{seq}", **sale),
        )
        self.events.append(event)
        return event

    def sales(self, count: int, **sale: Any) -> list[Event]:
        """Append `count` sales and return them."""
        return [self.add(**sale) for _ in range(count)]

    def batch(
        self, first: int, last: int, *, site_id: str | None = None, lost: tuple[int, ...] = (), signed: bool = True
    ) -> EventBatch:
        """The events first..last (seqs, inclusive) as a batch signed by the device's key; the seqs in
        `lost` go as lost events (their hash known), as from a journal whose rows failed to open."""
        chosen = self.events[first - 1 : last]
        batch = EventBatch(
            site_id=site_id or self.site_id,
            device_id=self.device_id,
            events=[event for event in chosen if event.seq not in lost],
            lost=[
                LostEvent(seq=event.seq, hash=event.hash, reason="unreadable") for event in chosen if event.seq in lost
            ],
        )
        return sign_batch(batch, self.key) if signed else batch

    def ack(self, seq: int, **fields: Any) -> Ack:
        """The hub's ack holding this chain up to `seq` (its hash named, as the hub names it)."""
        return Ack(device_id=self.device_id, acked_seq=seq, acked_hash=self.events[seq - 1].hash if seq else None,
                   **fields)

    def status(self, *, online: bool = True, **fields: Any) -> DeviceStatus:
        """A heartbeat of this device, signed."""
        status = DeviceStatus(site_id=self.site_id, device_id=self.device_id, online=online, **fields)
        return sign_status(status, self.key)

    def register(self, engine: sa.Engine) -> None:
        """Register the device's public key at the hub, as `marquee-hub devices add` does."""
        with engine.begin() as conn:
            register_device(
                conn, site_id=self.site_id, device_id=self.device_id, public_key=public_key_text(self.key),
                at=T0, replace_key=True,
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """A migrated engine over `db_url`, disposed afterwards."""
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()
