"""The journal's file: where it lives and who may read it, its tables, and its figures read from any
connection (the agent's, or the read-only one of `marquee-edge status`).

The folder is 0700 and its files 0600 whatever the umask: they hold the box's whole sales history.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from edge.errors import StoreError
from edge.store.holds import create_table as create_holds
from edge.store.ledger import create_table as create_ledger

log = logging.getLogger(__name__)
SCHEMA_VERSION = 3


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


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the journal file (WAL, synchronous=FULL), the folder and files made private first."""
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


def create_schema(conn: sqlite3.Connection) -> None:
    """The journal's tables, created when missing; the schema version recorded."""
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
    db.table("state").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    create_ledger(conn)  # the points of each card event, by seq (edge.store.ledger)
    create_holds(conn)  # open redemption holds (edge.store.holds)
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
    try:
        present = path.exists()
    except PermissionError as exc:  # the data folder is 0700: only the agent's user (and root) may look
        raise StoreError(f"this user may not read {path.parent} (mode 0700); run as the agent's user or root") \
            from exc
    if not present:
        raise StoreError(f"no journal at {path}; has the agent run yet?")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return read_stats(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read journal {path}: {exc}") from exc
