"""The feedback codes of the tickets sold, kept on ingest: an answer to the form is tied by its code to the sale's
site, film, hall and show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloud.db.feedback_tables import feedback_tickets
from protocol.events import Event, SaleRecorded
from protocol.feedback import ticket_code


def add_tickets(conn: sa.Connection, *, stored: Sequence[tuple[Event, object]], site_id: str,
                device_id: str) -> None:
    """Record the feedback code of each sale with a ticket, so its answer can be tied to the film and hall."""
    rows: list[dict[str, Any]] = []
    for event, payload in stored:
        if not isinstance(payload, SaleRecorded):
            continue
        ticket = next((item for item in payload.items if item.kind == "ticket"), None)
        if ticket is None:
            continue
        rows.append({"code": ticket_code(event.hash), "site_id": site_id, "device_id": device_id, "seq": event.seq,
                     "film": ticket.film, "hall": ticket.hall, "showtime": ticket.showtime,
                     "sold_at": event.occurred_at})
    if rows:
        # One statement per batch; a code held already (an event stored again after a chain's resolution) stays.
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(feedback_tickets).on_conflict_do_nothing(), sorted(rows, key=lambda row: row["code"]))


def find_ticket(conn: sa.Connection, *, site_id: str, code: str) -> Any | None:
    """The ticket of `code` sold at `site_id` (its `feedback_tickets` row); None when the hub holds none (not
    synced yet, or another site's)."""
    return conn.execute(sa.select(feedback_tickets).where(feedback_tickets.c.code == code,
                                                          feedback_tickets.c.site_id == site_id)).one_or_none()
