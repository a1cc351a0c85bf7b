"""The member directory on the box: the hub's pages applied to their own SQLite file, `directory.db`.

Plain columns hold what a lookup filters on (member id, programme, status, balance, watermarks); what is
personal (the birthday, the account with its visits and spend, and any field a newer hub adds) is sealed
with AES-GCM, bound to its token, so nothing on the disk reads as a birthday or a spending habit. An erased
member's rows are overwritten, not just unlinked: `secure_delete` zeroes what a delete frees, and a checkpoint
then rewrites the file and empties the WAL.

A snapshot is staged page by page in `staged_entries` and becomes the directory in one transaction once
every page of its version is in: the live table is dropped (its pages zeroed) and the staged one renamed.
The file thus holds at most two directories' worth of pages, freed ones reused by the next snapshot.

Staff accounts (`StaffEntry`: ids, roles, sites, badge tokens, no personal data) come in the same pages and
live in the same file, in `staff` (and `staged_staff`), written in the page's transaction: a snapshot's staff
and members switch together. The sale path reads them from memory (`team`), rebuilt when a page changes them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from edge.errors import StoreError
from edge.store.crypto import Sealer
from edge.store.layout import secure_files, secure_folder
from protocol.directory import DirectoryEntry, DirectoryPage
from protocol.staff import StaffEntry

ApplyResult = Literal["applied", "stale", "gap", "partial"]
_COLUMNS = "token, member_id, programme, status, balance, seen, redeemed_day, redeemed, sealed"
_INSERT = "INSERT OR REPLACE INTO {table}(" + _COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_TABLE = """CREATE TABLE IF NOT EXISTS {table}(
    token TEXT PRIMARY KEY, member_id TEXT NOT NULL, programme TEXT NOT NULL, status TEXT NOT NULL,
    balance INTEGER NOT NULL, seen TEXT NOT NULL, redeemed_day TEXT, redeemed INTEGER NOT NULL, sealed BLOB
) WITHOUT ROWID"""
_MEMBER_INDEX = "CREATE INDEX IF NOT EXISTS entries_member ON entries(member_id)"
_STAFF_TABLE = "CREATE TABLE IF NOT EXISTS {table}(staff_id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID"
_STAFF_INSERT = "INSERT OR REPLACE INTO {table}(staff_id, body) VALUES (?, ?)"
_JSON = json.JSONEncoder(separators=(",", ":"))  # built once: json.dumps with options builds one a call
_WAL_LIMIT = 8 * 1024 * 1024  # bytes a WAL file keeps after a checkpoint (a snapshot swap makes it large)


@dataclass(frozen=True, slots=True)
class StaffIndex:
    """The staff accounts held, by id, by badge token and by their own member id; replaced whole, never changed
    in place, so a sale reads one consistent set without a lock."""

    by_id: Mapping[str, StaffEntry] = field(default_factory=dict)
    by_badge: Mapping[str, StaffEntry] = field(default_factory=dict)
    by_member: Mapping[str, StaffEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[StaffEntry]) -> StaffIndex:
        by_id = {entry.staff_id: entry for entry in entries}
        by_badge: dict[str, StaffEntry] = {}
        by_member: dict[str, StaffEntry] = {}
        # An active account wins a badge or a membership that another (say, one who left) still names.
        for entry in sorted(by_id.values(), key=lambda entry: (entry.status == "active", entry.staff_id)):
            by_badge.update(dict.fromkeys(entry.badges, entry))
            if entry.member_id is not None:
                by_member[entry.member_id] = entry
        return cls(by_id, by_badge, by_member)

    def changed(self, staff: Sequence[StaffEntry], removed: Sequence[str]) -> StaffIndex:
        """The index with a delta's staff changes applied."""
        by_id = dict(self.by_id)
        for staff_id in removed:
            by_id.pop(staff_id, None)
        by_id.update((entry.staff_id, entry) for entry in staff)
        return StaffIndex.of(by_id.values())


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
            # A directory kept before staff accounts came in pages lacks those published before: start over.
            before_staff = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'staff'").fetchone() is None
            for table in ("staff", "staged_staff"):
                self._conn.execute(_STAFF_TABLE.format(table=table))
            self._conn.execute("CREATE TABLE IF NOT EXISTS staged_pages(target INTEGER NOT NULL, "
                               "page INTEGER NOT NULL, pages INTEGER NOT NULL, PRIMARY KEY (target, page))")
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            self._conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('version', 0)")
            if before_staff:
                self._conn.execute("UPDATE meta SET value = 0 WHERE key = 'version'")
            self._version = int(self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            self.staff_unreadable = 0
            """Staff rows kept that this version cannot read (left out of `team`)."""
            self._team = self._read_team()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open member directory {path}: {exc}") from exc

    @property
    def version(self) -> int:
        """The version of the directory held (0: none yet)."""
        return self._version

    @property
    def team(self) -> StaffIndex:
        """The staff accounts held, in memory (what every sale looks up)."""
        return self._team

    def _read_team(self) -> StaffIndex:
        entries = []
        unreadable = 0
        for (body,) in self._conn.execute("SELECT body FROM staff ORDER BY staff_id"):
            try:
                entries.append(StaffEntry.model_validate_json(body))
            except ValidationError:
                unreadable += 1
        self.staff_unreadable = unreadable
        return StaffIndex.of(entries)

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
            conn.executemany(_STAFF_INSERT.format(table="staff"), _staff_rows(page))
            conn.executemany("DELETE FROM staff WHERE staff_id = ?", [(staff_id,) for staff_id in page.staff_removed])
            conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (page.version,))
            discarded = _discard_staged(conn, up_to=page.version)
        self._version = page.version
        if page.staff or page.staff_removed:
            self._team = self._team.changed(page.staff, page.staff_removed)
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
                conn.executemany(_STAFF_INSERT.format(table="staged_staff"), _staff_rows(page))
            have = conn.execute("SELECT COUNT(*) FROM staged_pages WHERE target = ?", (page.version,)).fetchone()[0]
            if have < page.pages:
                return "partial"
            conn.execute("DROP TABLE entries")
            conn.execute("ALTER TABLE staged_entries RENAME TO entries")
            conn.execute(_MEMBER_INDEX)
            conn.execute(_TABLE.format(table="staged_entries"))
            conn.execute("DROP TABLE staff")
            conn.execute("ALTER TABLE staged_staff RENAME TO staff")
            conn.execute(_STAFF_TABLE.format(table="staged_staff"))
            conn.execute("DELETE FROM staged_pages")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (page.version,))
        self._version = page.version
        self._team = self._read_team()
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
    conn.execute("DELETE FROM staged_staff")
    conn.execute("DELETE FROM staged_pages")
    return True


def _staff_rows(page: DirectoryPage) -> list[tuple[str, str]]:
    return [(entry.staff_id, entry.model_dump_json()) for entry in page.staff]


def _files(path: Path) -> Sequence[Path]:
    return (path, path.with_name(path.name + "-wal"))
