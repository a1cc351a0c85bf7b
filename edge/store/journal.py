"""The journal: every event of this box, in seq order, in SQLite (WAL), each row sealed with AES-GCM.

The journal is also the outbox: rows above `acked_seq` are what the hub has not confirmed yet.
Readable columns hold no personal data: seq, ids, type, time, hashes, the till's sale key.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlite_utils

from edge.errors import StoreError
from edge.store.crypto import Sealer
from protocol.chain import seal
from protocol.events import GENESIS_HASH, Event

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open journal {path}: {exc}") from exc
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db["journal"].create(
        {
            "seq": int,
            "event_id": str,
            "type": str,
            "occurred_at": str,
            "hash": str,
            "sale_key": str,
            "key_id": str,
            "body": bytes,
        },
        pk="seq",
        not_null={"event_id", "type", "occurred_at", "hash", "key_id", "body"},
        if_not_exists=True,
    )
    db["journal"].create_index(["sale_key"], unique=True, if_not_exists=True)
    db["balances"].create({"card_token": str, "points": int}, pk="card_token", if_not_exists=True)
    db["state"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    conn.execute("INSERT OR IGNORE INTO state(key, value) VALUES ('acked_seq', '0')")
    conn.execute("INSERT OR IGNORE INTO state(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


@dataclass(frozen=True, slots=True)
class JournalStats:
    """What an operator asks of a journal: how far it goes and how much the hub has not confirmed."""

    last_seq: int
    acked_seq: int

    @property
    def backlog(self) -> int:
        return self.last_seq - self.acked_seq


class Journal:
    """The box's event store. One writer (the agent, under its lock); `read_events` is for the uplink."""

    def __init__(self, path: Path, *, device_id: str, sealer: Sealer) -> None:
        self.path = path
        self.device_id = device_id
        self._sealer = sealer
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(path)
        self._read_conn = _connect(path)
        self._write_lock = threading.RLock()
        self._read_lock = threading.Lock()
        try:
            _create_schema(self._conn)
            row = self._conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot prepare journal {path}: {exc}") from exc
        self._last_seq, self._last_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def close(self) -> None:
        """Close both connections."""
        self._conn.close()
        self._read_conn.close()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def _aad(self, seq: int) -> bytes:
        return f"{self.device_id}:{seq}".encode()

    def _decode(self, seq: int, blob: bytes) -> Event:
        return Event.model_validate_json(self._sealer.open(blob, self._aad(seq)))

    @contextmanager
    def transaction(self) -> Iterator[JournalTransaction]:
        """One durable write: everything inside commits together (fsync) or not at all."""
        with self._write_lock:
            start = (self._last_seq, self._last_hash)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                tx = JournalTransaction(self)
                yield tx
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._last_seq, self._last_hash = start
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.exception("journal rollback failed; SQLite discards the transaction on close")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"journal write failed: {exc}") from exc
                raise

    def read_events(self, *, from_seq: int, limit: int) -> list[Event]:
        """Up to `limit` events from `from_seq` on, decrypted, in order."""
        with self._read_lock:
            try:
                rows = self._read_conn.execute(
                    "SELECT seq, body FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?", (from_seq, limit)
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc
        return [self._decode(int(seq), bytes(body)) for seq, body in rows]

    def stats(self) -> JournalStats:
        """Last seq written and last seq the hub acknowledged."""
        with self._read_lock:
            try:
                row = self._read_conn.execute("SELECT value FROM state WHERE key = 'acked_seq'").fetchone()
                last = self._read_conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc
        return JournalStats(last_seq=int(last[0]), acked_seq=int(row[0]))

    def mark_acked(self, acked_seq: int) -> int:
        """Record the hub's ack (never backwards, never past what exists); returns the acked seq now held."""
        with self._write_lock:
            try:
                self._conn.execute(
                    "UPDATE state SET value = CAST(? AS TEXT) WHERE key = 'acked_seq' "
                    "AND CAST(value AS INTEGER) < ? AND ? <= ?",
                    (acked_seq, acked_seq, acked_seq, self._last_seq),
                )
                row = self._conn.execute("SELECT value FROM state WHERE key = 'acked_seq'").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot record ack: {exc}") from exc
        return int(row[0])


class JournalTransaction:
    """The operations allowed inside `Journal.transaction()`."""

    def __init__(self, journal: Journal) -> None:
        self._j = journal
        self._conn = journal._conn

    def find_sale(self, sale_key: str) -> Event | None:
        """The event already recorded for this till's sale id, if the POS sent it before."""
        row = self._conn.execute("SELECT seq, body FROM journal WHERE sale_key = ?", (sale_key,)).fetchone()
        return self._j._decode(int(row[0]), bytes(row[1])) if row else None

    def balance(self, card_token: str) -> int:
        """The points this box knows for a card token."""
        row = self._conn.execute("SELECT points FROM balances WHERE card_token = ?", (card_token,)).fetchone()
        return int(row[0]) if row else 0

    def add_points(self, card_token: str, points: int) -> None:
        """Add (or with a negative number remove) points on a card token."""
        self._conn.execute(
            "INSERT INTO balances(card_token, points) VALUES (?, ?) "
            "ON CONFLICT(card_token) DO UPDATE SET points = points + excluded.points",
            (card_token, points),
        )

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
        """Seal the next event of the chain and write it; visible to readers once the transaction commits."""
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
