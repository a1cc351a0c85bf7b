"""The box's ledger of points: one row per card earning or redemption, written with its event.

A member's account at the box is the directory's plus this box's own rows above the directory's watermark
for it, so each row keeps the seq of its event and, in `move`, what the rules count (the time, spend, visit,
passes, birthday ticket: `protocol.account.Move` as JSON, sealed with the journal's key and bound to the
row's seq and card: a spending habit or a birthday week is personal). Points are signed: earned positive,
redeemed negative. Rows hold card tokens (HMACs), never card numbers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pydantic import ValidationError

from edge.errors import StoreError
from edge.store.crypto import Sealer
from protocol.account import Move
from protocol.events import Event, SaleRecorded

LedgerKind = Literal["earn", "redeem", "reversal", "refund", "approval"]
"""earn: positive; redeem: negative (a captured hold); reversal: positive (a capture given back); refund: either
(earned points taken back, redeemed points given back); approval: positive (held points a supervisor released)."""
MAX_TOKENS = 500  # a member's cards; far below SQLite's limit on query parameters


_KINDS_CHECK = "CHECK (kind IN ('earn', 'redeem', 'reversal', 'refund', 'approval'))"
_COLUMNS = ("seq INTEGER NOT NULL, card_token TEXT NOT NULL, points INTEGER NOT NULL, day TEXT NOT NULL, "
            "kind TEXT NOT NULL")


def create_table(conn: sqlite3.Connection) -> None:
    """The ledger table and its index, created when missing; a ledger from before refunds and approvals is rebuilt
    with the check that lets their rows in (SQLite cannot change a check in place)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS ledger({_COLUMNS} {_KINDS_CHECK}, move TEXT)")
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone()[0]
    if "move" not in {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}:
        conn.execute("ALTER TABLE ledger ADD COLUMN move TEXT")
    if "'approval'" not in sql:
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN IMMEDIATE")  # all of it or none: a power cut midway leaves the old table
        conn.execute("DROP TABLE IF EXISTS ledger_upgraded")
        conn.execute(f"CREATE TABLE ledger_upgraded({_COLUMNS} {_KINDS_CHECK}, move TEXT)")
        conn.execute("INSERT INTO ledger_upgraded(seq, card_token, points, day, kind, move) "
                     "SELECT seq, card_token, points, day, kind, move FROM ledger")
        conn.execute("DROP TABLE ledger")
        conn.execute("ALTER TABLE ledger_upgraded RENAME TO ledger")
        if own:
            conn.execute("COMMIT")
    conn.execute("CREATE INDEX IF NOT EXISTS ledger_token_seq ON ledger(card_token, seq)")


def has_table(conn: sqlite3.Connection) -> bool:
    """True when the journal already has its ledger (a journal written before it gets it backfilled)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone() is not None


def _encode(move: Move) -> str:
    data: dict[str, Any] = {"at": move.at.astimezone(UTC).isoformat()}
    if move.spend:
        data["spend"] = move.spend
    if move.visit:
        data["visit"] = True
    if move.earning_sale:
        data["earning_sale"] = True
    if move.pass_uses:
        data["pass_uses"] = [list(use) for use in move.pass_uses]
    if move.passes_bought:
        data["passes_bought"] = list(move.passes_bought)
    if move.birthday_year is not None:
        data["birthday_year"] = move.birthday_year
    return json.dumps(data, separators=(",", ":"))


def _aad(seq: int, card_token: str) -> bytes:
    return f"ledger:{seq}:{card_token}".encode()


def _decode(seq: int, points: int, kind: str, day: str, move: bytes | str | None, device_id: str,
            token: str, sealer: Sealer) -> Move:
    """A row as the move it was; a row written before moves were kept counts its points on its day."""
    if move is None:
        at = datetime.combine(date.fromisoformat(day), time(12), tzinfo=UTC)
        return Move(at=at, kind=kind, points=points, order=(device_id, seq))  # type: ignore[arg-type]
    data = json.loads(sealer.open(move, _aad(seq, token)) if isinstance(move, bytes) else move)
    return Move(at=datetime.fromisoformat(data["at"]), kind=kind, points=points,  # type: ignore[arg-type]
                spend=int(data.get("spend", 0)), visit=bool(data.get("visit", False)),
                earning_sale=bool(data.get("earning_sale", False)),
                pass_uses=tuple((str(pass_id), int(uses)) for pass_id, uses in data.get("pass_uses", [])),
                passes_bought=tuple(str(pass_id) for pass_id in data.get("passes_bought", [])),
                birthday_year=data.get("birthday_year"), order=(device_id, seq))


def add(conn: sqlite3.Connection, seq: int, card_token: str, points: int, kind: LedgerKind, day: date,
        move: Move | None = None, sealer: Sealer | None = None) -> None:
    """One row; the caller's transaction commits it with the event `seq` (`move` sealed with `sealer`)."""
    if (kind in ("earn", "reversal", "approval") and points < 0) or (kind == "redeem" and points > 0):
        raise ValueError(f"{kind} of {points} points: earnings and reversals are positive, redemptions negative")
    conn.execute("INSERT INTO ledger(seq, card_token, points, day, kind, move) VALUES (?, ?, ?, ?, ?, ?)",
                 (seq, card_token, points, day.isoformat(), kind, _sealed(move, seq, card_token, sealer)))


def _sealed(move: Move | None, seq: int, card_token: str, sealer: Sealer | None) -> bytes | str | None:
    if move is None:
        return None
    text = _encode(move)
    return sealer.seal(text.encode(), _aad(seq, card_token)) if sealer is not None else text


def local_moves(conn: sqlite3.Connection, tokens: Sequence[str], after_seq: int, device_id: str,
                sealer: Sealer) -> list[Move]:
    """The moves of these cards' rows with a seq above `after_seq`, in seq order (StoreError: one does not
    open)."""
    if not tokens:
        return []
    marks, unique = _tokens(tokens)
    rows = conn.execute(f"SELECT seq, points, kind, day, move, card_token FROM ledger WHERE card_token IN ({marks}) "
                        "AND seq > ? ORDER BY seq, kind", (*unique, after_seq)).fetchall()
    return [_decode(int(seq), int(points), kind, day, move, device_id, token, sealer)
            for seq, points, kind, day, move, token in rows]


def _tokens(tokens: Sequence[str]) -> tuple[str, list[str]]:
    unique = list(dict.fromkeys(tokens))
    if len(unique) > MAX_TOKENS:
        raise ValueError(f"{len(unique)} tokens for one member is over {MAX_TOKENS}")
    return ",".join("?" * len(unique)), unique


def local_points(conn: sqlite3.Connection, tokens: Sequence[str], after_seq: int) -> list[tuple[int, int]]:
    """(seq, points) of the rows of these cards with a seq above `after_seq`, in seq order."""
    if not tokens:
        return []
    marks, unique = _tokens(tokens)
    rows = conn.execute(f"SELECT seq, points FROM ledger WHERE card_token IN ({marks}) AND seq > ? ORDER BY seq",
                        (*unique, after_seq)).fetchall()
    return [(int(seq), int(points)) for seq, points in rows]


def forget(conn: sqlite3.Connection, tokens: Sequence[str]) -> None:
    """Drop every row of these cards."""
    for start in range(0, len(tokens), MAX_TOKENS):
        marks, unique = _tokens(tokens[start:start + MAX_TOKENS])
        conn.execute(f"DELETE FROM ledger WHERE card_token IN ({marks})", unique)


def redeemed_since(conn: sqlite3.Connection, tokens: Sequence[str], after_seq: int, day: date) -> int:
    """Points these cards redeemed on `day` (UTC) in events above `after_seq`, as a positive number."""
    if not tokens:
        return 0
    marks, unique = _tokens(tokens)
    row = conn.execute(f"SELECT COALESCE(SUM(-points), 0) FROM ledger WHERE card_token IN ({marks}) AND seq > ? "
                       "AND day = ? AND kind IN ('redeem', 'reversal')",
                       (*unique, after_seq, day.isoformat())).fetchone()
    return max(0, int(row[0]))


def backfill(conn: sqlite3.Connection, decode: Callable[[int, bytes], Event]) -> int:
    """Ledger rows for the card sales of a journal written before the ledger existed (`decode` opens a
    row); the count written. A row that does not open is skipped: the uplink reports it lost."""
    written, after = 0, 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        while rows := conn.execute("SELECT seq, body FROM journal WHERE seq > ? AND type = ? ORDER BY seq LIMIT 500",
                                   (after, SaleRecorded.event_type)).fetchall():
            for seq, body in rows:
                after = int(seq)
                try:
                    event = decode(after, bytes(body))
                    sale = SaleRecorded.model_validate(event.payload)
                except (StoreError, ValidationError):
                    continue
                if sale.card_token is not None:
                    add(conn, after, sale.card_token, sale.loyalty.points_earned, "earn",
                        event.occurred_at.astimezone(UTC).date())
                    written += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return written
