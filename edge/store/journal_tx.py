"""The operations allowed inside `Journal.transaction()`: appending events, finding a till's earlier requests
by their key, and the points ledger beside the journal (`edge.store.ledger`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from edge.store import ledger
from protocol.account import Move
from protocol.chain import seal
from protocol.events import Event

if TYPE_CHECKING:
    from edge.store.journal import Journal


class JournalTransaction:
    """The operations allowed inside `Journal.transaction()`."""

    def __init__(self, journal: Journal) -> None:
        self._j = journal
        self._conn = journal._conn

    @property
    def connection(self) -> sqlite3.Connection:
        """The transaction's connection, for the store modules that keep their rows beside the journal's."""
        return self._conn

    def has_sale_key(self, sale_key: str) -> bool:
        """True when a row was recorded under this key (without opening it)."""
        return self._conn.execute("SELECT 1 FROM journal WHERE sale_key = ?", (sale_key,)).fetchone() is not None

    def find_sale(self, sale_key: str) -> Event | None:
        """The event already recorded for this till's sale id, if the POS sent it before."""
        row = self._conn.execute("SELECT seq, body FROM journal WHERE sale_key = ?", (sale_key,)).fetchone()
        return self._j._decode(int(row[0]), bytes(row[1])) if row else None

    def find_keyed(self, prefix: str) -> list[Event]:
        """Every event recorded under a key starting with `prefix` (a sale's refunds), in seq order."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._conn.execute("SELECT seq, body FROM journal WHERE sale_key >= ? AND sale_key < ? ORDER BY seq",
                                  (prefix, end)).fetchall()
        return [self._j._decode(int(row[0]), bytes(row[1])) for row in rows]

    def add_ledger(self, seq: int, card_token: str, points: int, kind: ledger.LedgerKind, day: date,
                   move: Move | None = None) -> None:
        """Record the points of event `seq` on a card (earned positive, redeemed negative; `day` UTC) and the
        move the account folds."""
        ledger.add(self._conn, seq, card_token, points, kind, day, move, self._j._sealer)

    def forget_cards(self, tokens: Sequence[str]) -> None:
        """Drop the ledger rows of these cards (an erased member's)."""
        ledger.forget(self._conn, tokens)

    def local_points(self, tokens: Sequence[str], after_seq: int) -> list[tuple[int, int]]:
        """`Journal.local_points`, as this transaction sees it."""
        return ledger.local_points(self._conn, tokens, after_seq)

    def local_moves(self, tokens: Sequence[str], after_seq: int, device_id: str) -> list[Move]:
        """This box's moves on these cards above `after_seq`, as this transaction sees them."""
        return ledger.local_moves(self._conn, tokens, after_seq, device_id, self._j._sealer)

    def redeemed_since(self, tokens: Sequence[str], after_seq: int, day: date) -> int:
        """`Journal.redeemed_since`, as this transaction sees it."""
        return ledger.redeemed_since(self._conn, tokens, after_seq, day)

    def append(
        self,
        *,
        type: str,
        payload: dict[str, Any],
        event_id: UUID,
        occurred_at: datetime,
        clock_ok: bool,
        sale_key: str | None = None,
    ) -> Event:
        """Seal the next event of the chain and write it; returns it, with the seq it was given. Visible to
        readers once the transaction commits."""
        j = self._j
        event = seal(
            type=type,
            device_id=j.device_id,
            seq=j._last_seq + 1,
            event_id=event_id,
            occurred_at=occurred_at,
            clock_ok=clock_ok,
            prev_hash=j._last_hash,
            payload=payload,
        )
        body = j._sealer.seal(event.model_dump_json(by_alias=True).encode(), j._aad(event.seq))
        self._conn.execute(
            "INSERT INTO journal(seq, event_id, type, occurred_at, hash, sale_key, key_id, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.seq,
                str(event.event_id),
                event.type,
                event.model_dump(mode="json")["occurred_at"],
                event.hash,
                sale_key,
                j._sealer.key_id,
                body,
            ),
        )
        j._last_seq, j._last_hash = event.seq, event.hash
        return event
