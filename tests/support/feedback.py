"""Tickets for the feedback tests: a sale sealed in a box's chain and ingested as the hub ingests any batch, so its
feedback code is the one the box printed (`protocol.feedback.ticket_code` of the event's hash)."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cloud.ingest.store import ingest_batch
from protocol.feedback import ticket_code
from tests.unit.hub.factories import Chain, sale_payload

MEMBER_KEY = base64.b64encode(os.urandom(32)).decode()
"""A member key for the hub under test (comments are sealed under it)."""


def sell(engine: sa.Engine, chain: Chain, *, sold_at: datetime, show_at: datetime | None = None, film: str = "Dune",
         hall: str = "h1", concession: int = 450, **sale: Any) -> str:
    """Ingest one sale with tickets for `film` in `hall` at `show_at`, sold at `sold_at`; its feedback code."""
    payload = sale_payload(chain.site_id, film=film, hall=hall, concession=concession,
                           sale_id=f"s-{len(chain.events) + 1}", **sale)
    if show_at is not None:
        payload["items"][0]["showtime"] = show_at.isoformat()
    event = chain.add(payload, occurred_at=sold_at)
    with engine.begin() as conn:
        ingest_batch(conn, batch=chain.batch(event.seq, event.seq), site_id=chain.site_id, received_at=sold_at)
    return ticket_code(event.hash)
