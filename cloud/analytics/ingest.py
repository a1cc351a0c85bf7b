"""What ingest adds to the analytics for each batch, in the batch's transaction (the ack promises it too):
the box-office rollups, each member's activity, and the feedback codes of the tickets sold."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from cloud.analytics.member_activity import add_activity
from cloud.analytics.rollups import add_sales
from cloud.feedback.tickets import add_tickets
from protocol.events import Event


def on_stored(conn: sa.Connection, *, stored: Sequence[tuple[Event, object]], site_id: str, device_id: str,
              received_at: datetime) -> None:
    """Update the analytics with a batch's newly stored events (each with its checked payload, or a refusal)."""
    add_sales(conn, stored=stored, site_id=site_id, received_at=received_at)
    add_activity(conn, stored=stored, site_id=site_id, received_at=received_at)
    add_tickets(conn, stored=stored, site_id=site_id, device_id=device_id)
