"""The journal: every event of this box, in seq order, in SQLite (WAL), each row sealed with AES-GCM.

The journal is also the outbox: rows above `acked_seq` are what the hub has not confirmed yet.
Readable columns hold no personal data: seq, ids, type, time, hashes, the till's sale key.
A row that no longer opens (altered on disk, or sealed under a lost key) is quarantined: copied aside,
counted, and sent to the hub as a lost event, so that everything after it still syncs.
The folder is 0700 and its files 0600 whatever the umask: they hold the box's whole sales history.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlite_utils
from pydantic import ValidationError

from edge.errors import StoreError
from edge.store.crypto import Sealer
from protocol.chain import seal
from protocol.events import GENESIS_HASH, HASH_PATTERN, Event
from protocol.messages import LostEvent

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2
UNREADABLE = "unreadable"
_HASH_RE = re.compile(HASH_PATTERN)


def secure_folder(path: Path) -> None:
    """Create `path` (and parents) if missing and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)


def secure_files(path: Path) -> None:
    """Make the database file, creating it empty if missing, and its -wal and -shm 0600.

    SQLite creates -wal and -shm with the database file's mode, so creating that one 0600 first is
    what keeps the others private whatever the umask.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(candidate.stat().st_mode) != 0o600:
                candidate.chmod(0o600)
                log.info("tightened %s to mode 0600", candidate)
        except FileNotFoundError:
            continue


def _connect(path: Path) -> sqlite3.Connection:
    try:
        secure_folder(path.parent)
        secure_files(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open journal {path}: {exc}") from exc
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db.table("journal").create(
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
    db.table("journal").create_index(["sale_key"], unique=True, if_not_exists=True)
    db.table("balances").create({"card_token": str, "points": int}, pk="card_token", if_not_exists=True)
    db.table("state").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    # Rows that failed to open, copied here as they were (a key found later may still open them).
    db.table("quarantine").create(
        {"seq": int, "hash": str, "key_id": str, "body": bytes, "reason": str, "detected_at": str},
        pk="seq",
        if_not_exists=True,
    )
    conn.execute("INSERT OR IGNORE INTO state(key, value) VALUES ('acked_seq', '0')")
    conn.execute("INSERT OR IGNORE INTO state(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("UPDATE state SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
                 (str(SCHEMA_VERSION), SCHEMA_VERSION))


@dataclass(frozen=True, slots=True)
class JournalStats:
    """What an operator asks of a journal: how far it goes and how much the hub has not confirmed."""

    last_seq: int
    acked_seq: int
    quarantined: int = 0

    @property
    def backlog(self) -> int:
        return self.last_seq - self.acked_seq


class Journal:
    """The box's event store. One writer (the agent, under its lock); `read_events` is for the uplink."""

    def __init__(self, path: Path, *, device_id: str, sealer: Sealer) -> None:
        self.path = path
        self.device_id = device_id
        self._sealer = sealer
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
        plain = self._sealer.open(blob, self._aad(seq))
        try:
            return Event.model_validate_json(plain)
        except ValidationError as exc:
            raise StoreError(f"journal row #{seq} opens but does not hold an event") from exc

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

    def read_outbox(self, *, from_seq: int, limit: int) -> list[Event | LostEvent]:
        """Up to `limit` items from `from_seq` on, for the hub: each row as its event, or as a lost event
        when it does not open (the row is then quarantined, once)."""
        with self._read_lock:
            try:
                rows = self._read_conn.execute(
                    "SELECT j.seq, j.hash, j.key_id, j.body, q.reason FROM journal j "
                    "LEFT JOIN quarantine q ON q.seq = j.seq WHERE j.seq >= ? ORDER BY j.seq LIMIT ?",
                    (from_seq, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc
        items: list[Event | LostEvent] = []
        for seq, row_hash, key_id, body, reason in rows:
            if reason is None:
                try:
                    items.append(self._decode(int(seq), bytes(body)))
                    continue
                except StoreError:
                    reason = UNREADABLE
                    self._quarantine(int(seq), row_hash, key_id, body, reason)
            known = row_hash if isinstance(row_hash, str) and _HASH_RE.match(row_hash) else None
            items.append(LostEvent(seq=int(seq), hash=known, reason=reason))
        return items

    def _quarantine(self, seq: int, row_hash: object, key_id: object, body: object, reason: str) -> None:
        log.error("journal row #%d does not open (%s); set aside and reported to the hub as lost", seq, reason)
        with self._write_lock:
            try:
                self._conn.execute(
                    "INSERT OR IGNORE INTO quarantine(seq, hash, key_id, body, reason, detected_at) "
                    "VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (seq, str(row_hash)[:64], str(key_id)[:64], body if isinstance(body, bytes) else b"", reason),
                )
            except sqlite3.Error as exc:
                # Still reported as lost from memory this time; the next read tries to record it again.
                log.warning("could not record the quarantine of row #%d: %s", seq, exc)

    def stats(self) -> JournalStats:
        """Last seq written, last seq the hub acknowledged, rows quarantined."""
        with self._read_lock:
            try:
                return read_stats(self._read_conn)
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc

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


def read_stats(conn: sqlite3.Connection) -> JournalStats:
    """The journal's figures from any connection to it (the agent's, or a read-only one)."""
    row = conn.execute("SELECT value FROM state WHERE key = 'acked_seq'").fetchone()
    last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
    has_quarantine = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'quarantine'").fetchone()
    quarantined = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] if has_quarantine else 0
    return JournalStats(last_seq=int(last[0]), acked_seq=int(row[0]), quarantined=int(quarantined))


def stats_read_only(path: Path) -> JournalStats:
    """The journal's figures without writing anything to it (for `marquee-edge status`, beside a running
    agent); StoreError when it cannot be read."""
    if not path.exists():
        raise StoreError(f"no journal at {path}; has the agent run yet?")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return read_stats(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read journal {path}: {exc}") from exc


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
