"""The member directory on the box: the hub's pages applied to their own SQLite file, `directory.db`.

Plain columns hold what a lookup filters on (member id, programme, status, balance, watermarks); what is
personal (the birthday, the account with its visits and spend, and any field a newer hub adds) is sealed
with AES-GCM, bound to its token, so nothing on the disk reads as a birthday or a spending habit. An erased
member's rows are overwritten, not just unlinked: `secure_delete` zeroes what a delete frees, and a checkpoint
then rewrites the file and empties the WAL.

A snapshot is staged page by page in `staged_entries` and becomes the directory in one transaction once
every page of its version is in: the live table is dropped (its pages zeroed) and the staged one renamed.
The file thus holds at most two directories' worth of pages, freed ones reused by the next snapshot.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from edge.errors import StoreError
from edge.store.crypto import Sealer
from edge.store.layout import secure_files, secure_folder
from protocol.directory import DirectoryEntry, DirectoryPage

ApplyResult = Literal["applied", "stale", "gap", "partial"]
_COLUMNS = "token, member_id, programme, status, balance, seen, redeemed_day, redeemed, sealed"
_INSERT = "INSERT OR REPLACE INTO {table}(" + _COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_TABLE = """CREATE TABLE IF NOT EXISTS {table}(
    token TEXT PRIMARY KEY, member_id TEXT NOT NULL, programme TEXT NOT NULL, status TEXT NOT NULL,
    balance INTEGER NOT NULL, seen TEXT NOT NULL, redeemed_day TEXT, redeemed INTEGER NOT NULL, sealed BLOB
) WITHOUT ROWID"""
_MEMBER_INDEX = "CREATE INDEX IF NOT EXISTS entries_member ON entries(member_id)"
_JSON = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps with options builds one a call
_WAL_LIMIT = 8 * 1024 * 1024  # bytes a WAL file keeps after a checkpoint (a snapshot swap makes it large)


@dataclass(frozen=True, slots=True)
class DirectoryStats:
    """What an operator asks of the directory."""

    entries: int
    version: int
    file_bytes: int


def _connect(path: Path) -> sqlite3.Connection:
    secure_folder(path.parent)
    secure_files(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    # The hub can send it all again: a power cut may lose the last page applied, never break the file.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
    return conn


class Directory:
    """The directory file. One writer (the keeper, on the MQTT thread); lookups from the sale path read
    through their own connection, so a page being applied never holds up a sale."""

    def __init__(self, path: Path, sealer: Sealer) -> None:
        self.path = path
        self._sealer = sealer
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        try:
            self._conn = _connect(path)
            self._read_conn = _connect(path)
            for table in ("entries", "staged_entries"):
                self._conn.execute(_TABLE.format(table=table))
            self._conn.execute(_MEMBER_INDEX)
            self._conn.execute("CREATE TABLE IF NOT EXISTS staged_pages(target INTEGER NOT NULL, "
                               "page INTEGER NOT NULL, pages INTEGER NOT NULL, PRIMARY KEY (target, page))")
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('version', 0)")
            self._version = int(self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open member directory {path}: {exc}") from exc

    @property
    def version(self) -> int:
        """The version of the directory held (0: none yet)."""
        return self._version

    def close(self) -> None:
        """Close both connections."""
        self._conn.close()
        self._read_conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def apply(self, page: DirectoryPage) -> ApplyResult:
        """Apply a verified page. "gap": a delta the box cannot apply yet (ask for `have=version`);
        "partial": a snapshot page staged until its others arrive; "stale": nothing newer in it."""
        rows = [self._row(entry) for entry in page.entries]  # sealing before the write lock is taken
        with self._write_lock:
            try:
                if page.kind == "delta":
                    return self._apply_delta(page, rows)
                return self._stage(page, rows)
            except sqlite3.Error as exc:
                raise StoreError(f"member directory write failed: {exc}") from exc

    def _apply_delta(self, page: DirectoryPage, rows: list[tuple[Any, ...]]) -> ApplyResult:
        if page.version <= self._version:
            return "stale"
        if page.version_from != self._version:
            # Ahead of what the box holds, or overlapping it: only the hub can say what lies between.
            return "gap"
        with self._transaction() as conn:
            conn.executemany(_INSERT.format(table="entries"), rows)
            conn.executemany("DELETE FROM entries WHERE token = ?", [(token,) for token in page.removed])
            conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (page.version,))
            discarded = _discard_staged(conn, up_to=page.version)
        self._version = page.version
        if page.removed or discarded:
            self._checkpoint()
        return "applied"

    def _stage(self, page: DirectoryPage, rows: list[tuple[Any, ...]]) -> ApplyResult:
        if page.version <= self._version:
            return "stale"
        with self._transaction() as conn:
            staged = conn.execute("SELECT target, MIN(pages), MAX(pages) FROM staged_pages GROUP BY target").fetchall()
            if any(target > page.version for target, _, _ in staged):
                return "stale"  # a newer snapshot is being staged: this page belongs to an older one
            if any(target < page.version or (low, high) != (page.pages, page.pages) for target, low, high in staged):
                _discard_staged(conn, up_to=page.version)  # an older snapshot will never complete now
            added = conn.execute("INSERT OR IGNORE INTO staged_pages(target, page, pages) VALUES (?, ?, ?)",
                                 (page.version, page.page, page.pages)).rowcount
            if added:  # else: the same page again (QoS 1 redelivers), already staged
                conn.executemany(_INSERT.format(table="staged_entries"), rows)
            have = conn.execute("SELECT COUNT(*) FROM staged_pages WHERE target = ?", (page.version,)).fetchone()[0]
            if have < page.pages:
                return "partial"
            conn.execute("DROP TABLE entries")
            conn.execute("ALTER TABLE staged_entries RENAME TO entries")
            conn.execute(_MEMBER_INDEX)
            conn.execute(_TABLE.format(table="staged_entries"))
            conn.execute("DELETE FROM staged_pages")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (page.version,))
        self._version = page.version
        self._checkpoint()
        return "applied"

    def _checkpoint(self) -> None:
        """Copy the zeroed pages over the file and empty the WAL, so deleted rows are gone from both files.
        When a reader is in the way the next checkpoint finishes the job."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def _row(self, entry: DirectoryEntry) -> tuple[Any, ...]:
        private: dict[str, Any] = dict(entry.model_extra or {})
        if entry.birthday is not None:
            private["birthday"] = entry.birthday
        if entry.account is not None:
            private["account"] = entry.account.model_dump(mode="json")
        sealed = self._sealer.seal(_JSON.encode(private).encode(), entry.token.encode()) if private else None
        return (entry.token, entry.member_id, entry.programme, entry.status, entry.balance, _JSON.encode(entry.seen),
                entry.redeemed_day.isoformat() if entry.redeemed_day else None, entry.redeemed, sealed)

    def lookup(self, token: str) -> DirectoryEntry | None:
        """The entry of a card token; None when the directory does not know it."""
        with self._read_lock:
            try:
                row = self._read_conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE token = ?", (token,)).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"member directory read failed: {exc}") from exc
        if row is None:
            return None
        token, member_id, programme, status, balance, seen, redeemed_day, redeemed, sealed = row
        fields: dict[str, Any] = {"token": token, "member_id": member_id, "programme": programme, "status": status,
                                  "balance": balance, "redeemed_day": redeemed_day, "redeemed": redeemed}
        try:
            fields["seen"] = json.loads(seen)
            if sealed is not None:
                fields.update(json.loads(self._sealer.open(bytes(sealed), token.encode())))
            return DirectoryEntry.model_validate(fields)
        except (ValueError, TypeError, ValidationError, StoreError) as exc:
            raise StoreError("a member directory row does not open or does not hold an entry") from exc

    def tokens_of(self, member_id: str) -> list[str]:
        """Every card token of a member that the directory knows, sorted."""
        with self._read_lock:
            try:
                rows = self._read_conn.execute("SELECT token FROM entries WHERE member_id = ? ORDER BY token",
                                               (member_id,)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"member directory read failed: {exc}") from exc
        return [str(token) for (token,) in rows]

    def stats(self) -> DirectoryStats:
        """Entries held, version, and bytes on disk (the file and its WAL)."""
        with self._read_lock:
            try:
                count = int(self._read_conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
            except sqlite3.Error as exc:
                raise StoreError(f"member directory read failed: {exc}") from exc
        size = 0
        for candidate in _files(self.path):
            try:
                size += candidate.stat().st_size
            except FileNotFoundError:
                continue
        return DirectoryStats(entries=count, version=self._version, file_bytes=size)


def _discard_staged(conn: sqlite3.Connection, *, up_to: int) -> bool:
    """Forget a snapshot being staged for a version up to `up_to` (secure_delete zeroes its rows, which may
    hold cards erased since); True when there was one."""
    if conn.execute("SELECT 1 FROM staged_pages WHERE target <= ? LIMIT 1", (up_to,)).fetchone() is None:
        return False
    conn.execute("DELETE FROM staged_entries")  # staging holds one version at a time
    conn.execute("DELETE FROM staged_pages")
    return True


def _files(path: Path) -> Sequence[Path]:
    return (path, path.with_name(path.name + "-wal"))
