"""The open redemption holds, kept in the journal's file so that a restart neither frees nor loses them.

Written in the same transaction as the event that opens or closes each hold. Rows hold card tokens
(HMACs), never card numbers.
"""

from __future__ import annotations

import sqlite3

from edge.holds import Hold


def create_table(conn: sqlite3.Connection) -> None:
    """The holds table, created when missing."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS holds(hold_id TEXT PRIMARY KEY, till_id TEXT NOT NULL, sale_id TEXT NOT NULL, "
        "card_token TEXT NOT NULL, points INTEGER NOT NULL, amount INTEGER NOT NULL, expires_at REAL NOT NULL)"
    )


def save(conn: sqlite3.Connection, hold: Hold) -> None:
    """An open hold; the caller's transaction commits it with its `redemption.authorised` event."""
    conn.execute("INSERT INTO holds(hold_id, till_id, sale_id, card_token, points, amount, expires_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (hold.hold_id, hold.till_id, hold.sale_id, hold.token, hold.points, hold.amount, hold.expires_at))


def drop(conn: sqlite3.Connection, hold_id: str) -> None:
    """A hold closed (captured or released), with the event that closed it."""
    conn.execute("DELETE FROM holds WHERE hold_id = ?", (hold_id,))


def load(conn: sqlite3.Connection) -> list[Hold]:
    """Every open hold, as the last run left them."""
    rows = conn.execute("SELECT hold_id, till_id, sale_id, card_token, points, amount, expires_at FROM holds")
    return [Hold(str(h), str(t), str(s), str(c), int(p), int(a), float(e)) for h, t, s, c, p, a, e in rows]
