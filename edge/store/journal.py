"""The journal: every event of this box, in seq order, in SQLite (WAL), each row sealed with AES-GCM.

The journal is also the outbox: rows above `acked_seq` are what the hub has not confirmed yet.
Readable columns hold no personal data: seq, ids, type, time, hashes, the till's sale key.
A row that no longer opens (altered on disk, or sealed under a lost key) is quarantined: copied aside,
counted, and sent to the hub as a lost event, so that everything after it still syncs. So is a row that
SQLite itself cannot read any more (a damaged page of the file), see `Journal._read_rows_one_by_one`.
The file itself (where it lives, who may read it, its tables, its figures): `edge.store.layout`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.errors import StoreError, UnreadableRow
from edge.store import ledger
from edge.store.crypto import Sealer
from edge.store.journal_tx import JournalTransaction
from edge.store.layout import JournalStats, connect, create_schema, read_stats
from protocol.events import GENESIS_HASH, Event
from protocol.fields import HASH_PATTERN
from protocol.messages import LostEvent

log = logging.getLogger(__name__)
UNREADABLE = "unreadable"
UNREADABLE_PAGE = "unreadable_page"
MISSING = "missing"
"""A seq with no row at all below the last one committed: deleted from the file (the hub raises a gap alert)."""
_HASH_RE = re.compile(HASH_PATTERN)
_MAX_PAGE_LOSSES = 10_000  # rows lost to damaged pages remembered per run (so each is recorded and counted once)
_OUTBOX_SQL = ("SELECT j.seq, j.hash, j.key_id, j.body, q.reason FROM journal j "
               "LEFT JOIN quarantine q ON q.seq = j.seq WHERE j.seq >= ? ORDER BY j.seq LIMIT ?")


def _is_damage(exc: sqlite3.Error) -> bool:
    """The file itself is damaged (SQLITE_CORRUPT, SQLITE_NOTADB): unlike a locked database, retrying will not help."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class Journal:
    """The box's event store. One writer (the agent, under its lock); `read_events` is for the uplink."""

    def __init__(self, path: Path, *, device_id: str, sealer: Sealer) -> None:
        self.path = path
        self.device_id = device_id
        self._sealer = sealer
        self._conn = connect(path)
        self._read_conn = connect(path)
        self._write_lock = threading.RLock()
        self._read_lock = threading.Lock()
        try:
            had_ledger = ledger.has_table(self._conn)
            create_schema(self._conn)
            if not had_ledger and (copied := ledger.backfill(self._conn, self._decode)):
                log.info("journal upgraded: %d card sales copied into its new ledger", copied)
            row = self._conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot prepare journal {path}: {exc}") from exc
        self._last_seq, self._last_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)
        self._committed_seq = self._last_seq  # unlike _last_seq, never a row still being written
        self._damaged = False
        self._page_losses: set[int] = set()
        self._missing_seen: set[int] = set()
        self._unrecorded = 0  # rows lost to damaged pages that the quarantine table refused to record
        self._figures: JournalStats | None = None  # the last figures read, for when the file no longer gives them

    def close(self) -> None:
        """Close both connections."""
        self._conn.close()
        self._read_conn.close()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def sealer(self) -> Sealer:
        """The key the journal seals under (the member directory seals its private fields with it too)."""
        return self._sealer

    def local_points(self, tokens: Sequence[str], after_seq: int) -> list[tuple[int, int]]:
        """(seq, points) of this box's events on these cards above `after_seq` (see `edge.store.ledger`)."""
        with self._read_lock:
            try:
                return ledger.local_points(self._read_conn, tokens, after_seq)
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc

    def redeemed_since(self, tokens: Sequence[str], after_seq: int, day: date) -> int:
        """Points these cards redeemed on `day` in events above `after_seq`, positive."""
        with self._read_lock:
            try:
                return ledger.redeemed_since(self._read_conn, tokens, after_seq, day)
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc

    def _aad(self, seq: int) -> bytes:
        return f"{self.device_id}:{seq}".encode()

    def _decode(self, seq: int, blob: bytes) -> Event:
        try:
            plain = self._sealer.open(blob, self._aad(seq))
        except StoreError as exc:
            raise UnreadableRow(f"journal row #{seq} does not open (altered, moved or wrong key)") from exc
        try:
            return Event.model_validate_json(plain)
        except ValidationError as exc:
            raise UnreadableRow(f"journal row #{seq} opens but does not hold an event") from exc

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
                self._committed_seq = self._last_seq
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

    def read_since(self, since: datetime, *, limit: int) -> list[Event]:
        """Up to the last `limit` events stamped at or after `since` (about: the first is found by bisecting seqs
        on their stamps, which a clock set back can disorder), in seq order; rows that do not open are skipped."""
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._read_lock:
            try:
                low, high = max(1, self._committed_seq - limit + 1), self._committed_seq + 1
                while low < high:  # the first seq whose stamp is at or after `since`
                    middle = (low + high) // 2
                    row = self._read_row("SELECT occurred_at FROM journal WHERE seq = ?", middle)
                    if row is not None and str(row[0]) < stamp:
                        low = middle + 1
                    else:
                        high = middle
                rows = self._read_conn.execute("SELECT seq, body FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?",
                                               (low, limit)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc
        events = []
        for seq, body in rows:
            try:
                events.append(self._decode(int(seq), bytes(body)))
            except UnreadableRow:
                continue  # the outbox reports it to the hub as lost
        return events

    def read_outbox(self, *, from_seq: int, limit: int) -> list[Event | LostEvent]:
        """Up to `limit` items from `from_seq` on, for the hub: each row as its event, or as a lost event
        when it does not open or cannot be read (the row is then quarantined, once)."""
        with self._read_lock:
            try:
                rows = self._read_conn.execute(_OUTBOX_SQL, (from_seq, limit)).fetchall()
            except sqlite3.Error as exc:
                if not _is_damage(exc):
                    raise StoreError(f"journal read failed: {exc}") from exc
                self._found_damaged(exc)
                rows = self._read_rows_one_by_one(from_seq, limit)
        items: list[Event | LostEvent] = []
        expected = from_seq
        for seq, row_hash, key_id, body, reason in rows:
            # Seqs are gapless up to the last committed one: a seq skipped here was deleted from the file.
            items.extend(self._missing(expected, min(int(seq), expected + limit - len(items))))
            expected = int(seq) + 1
            if len(items) >= limit:
                break
            if reason is None:
                try:
                    items.append(self._decode(int(seq), bytes(body)))
                    continue
                except StoreError:
                    reason = UNREADABLE
                    log.error("journal row #%d does not open; set aside and reported to the hub as lost", seq)
                    if not self._quarantine(int(seq), row_hash, key_id, body, reason):
                        log.warning("could not record the quarantine of row #%d; the next read tries again", seq)
            known = row_hash if isinstance(row_hash, str) and _HASH_RE.match(row_hash) else None
            if reason == UNREADABLE_PAGE:
                self._set_aside_page_loss(int(seq), known)
            items.append(LostEvent(seq=int(seq), hash=known, reason=reason))
        return _named_by_successors(items[:limit])

    def _missing(self, first: int, end: int) -> list[LostEvent]:
        """Lost events for the seqs `first`..`end - 1`, which have no row: each set aside and logged once."""
        lost, new = [], []
        for seq in range(first, end):
            if seq not in self._missing_seen and len(self._missing_seen) < _MAX_PAGE_LOSSES:
                self._missing_seen.add(seq)
                self._quarantine(seq, None, None, None, MISSING)
                new.append(seq)
            lost.append(LostEvent(seq=seq, hash=None, reason=MISSING))
        if new:  # one line for a run of deleted rows, not one per row
            log.error("journal rows #%d to #%d are missing from the file (%d deleted?); reported to the hub as lost",
                      new[0], new[-1], len(new))
        return lost

    def _read_rows_one_by_one(self, from_seq: int, limit: int) -> list[tuple[Any, ...]]:
        """The rows of `read_outbox`, read one seq at a time because the range query hit a damaged page.

        A range query fails as a whole at the first page SQLite cannot read; a lookup by seq only reads the
        pages on the way to its row, so every row elsewhere still reads. Seqs are gapless up to the last
        one committed, so each seq from `from_seq` gives one row, up to `limit`: a row that cannot be read,
        or is missing, comes back as lost with reason UNREADABLE_PAGE (and its hash, if that column still
        reads). The caller holds the read lock; an error other than damage (a locked file) is a StoreError.
        """
        rows: list[tuple[Any, ...]] = []
        try:
            for seq in range(from_seq, min(self._committed_seq, from_seq + limit - 1) + 1):
                row = self._read_row("SELECT seq, hash, key_id, body FROM journal WHERE seq = ?", seq)
                if row is None:
                    found = self._read_row("SELECT hash FROM journal WHERE seq = ?", seq)
                    rows.append((seq, found[0] if found else None, None, None, UNREADABLE_PAGE))
                else:
                    # Apart from the journal row: a damaged quarantine table must not make sound rows lost.
                    quarantined = self._read_row("SELECT reason FROM quarantine WHERE seq = ?", seq)
                    rows.append((*row, quarantined[0] if quarantined else None))
        except sqlite3.Error as exc:
            raise StoreError(f"journal read failed: {exc}") from exc
        return rows

    def _read_row(self, sql: str, seq: int) -> tuple[Any, ...] | None:
        """The row `sql` finds for `seq`; None when there is none or it lies on a damaged page."""
        try:
            row: tuple[Any, ...] | None = self._read_conn.execute(sql, (seq,)).fetchone()
        except sqlite3.Error as exc:
            if not _is_damage(exc):
                raise
            return None
        return row

    def _found_damaged(self, exc: sqlite3.Error) -> None:
        """Say once per run that the file is damaged: a file does not mend itself, so there is no all-clear."""
        if not self._damaged:
            self._damaged = True
            log.error("journal read failed (%s): the journal file is damaged; rows that cannot be read are "
                      "reported to the hub as lost; back up the data folder and plan a replacement of the storage",
                      exc)

    def _set_aside_page_loss(self, seq: int, known_hash: str | None) -> None:
        """Record a row lost to a damaged page in the quarantine table, once per run (nothing of it could be
        copied); a file that refuses that write too is counted in memory instead (`stats().quarantined`)."""
        with self._write_lock:
            if seq in self._page_losses or len(self._page_losses) >= _MAX_PAGE_LOSSES:
                return
            self._page_losses.add(seq)
            if not self._quarantine(seq, known_hash, None, None, UNREADABLE_PAGE):
                self._unrecorded += 1
                if self._unrecorded == 1:
                    log.warning("the damaged journal refuses writes to its quarantine table too; "
                                "lost rows are counted in memory until the agent restarts")

    def _quarantine(self, seq: int, row_hash: object, key_id: object, body: object, reason: str) -> bool:
        """Copy a lost row into the quarantine table (a key found later may still open it); False if refused."""
        with self._write_lock:
            try:
                self._conn.execute(
                    "INSERT OR IGNORE INTO quarantine(seq, hash, key_id, body, reason, detected_at) "
                    "VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (seq, _text(row_hash), _text(key_id), body if isinstance(body, bytes) else b"", reason),
                )
            except sqlite3.Error:
                return False
        return True

    def hash_at(self, seq: int) -> str | None:
        """The hash of the event at `seq` as the journal's readable column holds it; None when absent or
        on a damaged page."""
        with self._read_lock:
            try:
                row = self._read_row("SELECT hash FROM journal WHERE seq = ?", seq)
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc
        return str(row[0]) if row else None

    def is_lost(self, seq: int) -> bool:
        """True when the row at `seq` went to the hub as a lost event (quarantined, or on a damaged page)."""
        if seq in self._page_losses:
            return True
        with self._read_lock:
            try:
                return self._read_row("SELECT 1 FROM quarantine WHERE seq = ?", seq) is not None
            except sqlite3.Error as exc:
                raise StoreError(f"journal read failed: {exc}") from exc

    def stats(self) -> JournalStats:
        """Last seq written, last seq the hub acknowledged, rows quarantined (with those a damaged file refused
        to record). When the file is too damaged to give these figures: the last ones it gave, with the last
        seq this process committed; StoreError if it never gave any."""
        with self._read_lock:
            try:
                figures = read_stats(self._read_conn)
            except sqlite3.Error as exc:
                if not _is_damage(exc) or self._figures is None:
                    raise StoreError(f"journal read failed: {exc}") from exc
                self._found_damaged(exc)
                figures = replace(self._figures, last_seq=max(self._figures.last_seq, self._committed_seq))
            self._figures = figures
        return replace(figures, quarantined=figures.quarantined + self._unrecorded)

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
        if self._figures is not None:
            self._figures = replace(self._figures, acked_seq=int(row[0]))
        return int(row[0])


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:64]


def _named_by_successors(items: list[Event | LostEvent]) -> list[Event | LostEvent]:
    """A lost row whose hash column is gone still has a name: the prev_hash of the event after it. The hub
    then links that event to it, and a lost event with no hash at all stays the rare exception."""
    named = list(items)
    for index in range(len(named) - 1, 0, -1):
        lost, following = named[index - 1], named[index]
        if isinstance(lost, LostEvent) and lost.hash is None and isinstance(following, Event):
            named[index - 1] = lost.model_copy(update={"hash": following.prev_hash})
    return named

