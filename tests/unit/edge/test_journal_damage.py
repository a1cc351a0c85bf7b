"""A damaged page in the journal file: its rows reach the hub as lost, every other row as its event."""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.store.bootstrap import open_journal
from edge.store.journal import Journal
from protocol.chain import check_hash
from protocol.events import Event
from protocol.ids import uuid7
from protocol.messages import LostEvent
from tests.edge_support import edge_settings, new_journal
from tests.unit.protocol.factories import sale_payload

EVENTS = 600


def append_sales(journal: Journal, first: int, count: int) -> None:
    """`count` sales in one transaction, as the agent commits a burst."""
    with journal.transaction() as tx:
        for n in range(first, first + count):
            tx.append(type="sale.recorded", payload=sale_payload(f"S-{n}"),
                      event_id=uuid7(1_800_000_000_000 + n, os.urandom(10)), occurred_at=datetime.now(UTC),
                      clock_ok=True, sale_key=f"t1:S-{n}")


def damage_a_middle_leaf(path: Path) -> set[int]:
    """Overwrite the middle leaf page of the journal table with garbage; returns the seqs it held.

    dbstat lists the table's pages with their place in the b-tree (`path`); walking its leaves in that
    order, their cell counts give the seq range of each, since seq is the rowid and gapless from 1.
    """
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaves = conn.execute(
        "SELECT pageno, ncell FROM dbstat WHERE name = 'journal' AND pagetype = 'leaf' ORDER BY path"
    ).fetchall()
    conn.close()
    assert len(leaves) > 10, "the table must span many pages for one bad page to be the common case"
    index = len(leaves) // 2
    first = 1 + sum(ncell for _, ncell in leaves[:index])
    pageno, ncell = leaves[index]
    with path.open("r+b") as db:
        db.seek((pageno - 1) * page_size)
        db.write(b"\xde\xad\xbe\xef" * (page_size // 4))
    return set(range(first, first + ncell))


def test_a_damaged_page_is_reported_as_lost_and_every_other_row_still_syncs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    for first in range(1, EVENTS + 1, 100):
        append_sales(journal, first, 100)
    journal.close()  # the last connection checkpoints the WAL: every page is in the main file
    assert not settings.journal_path.with_name(settings.journal_path.name + "-wal").exists()
    damaged = damage_a_middle_leaf(settings.journal_path)

    raw = sqlite3.connect(settings.journal_path)
    with pytest.raises(sqlite3.DatabaseError, match="malformed") as failure:
        raw.execute("SELECT seq, body FROM journal WHERE seq >= 1 ORDER BY seq").fetchall()
    assert not isinstance(failure.value, sqlite3.OperationalError)  # damage, not a transient lock
    raw.close()

    journal = open_journal(settings, create_key=False)
    for _ in range(3):  # the uplink reads the same rows again until the hub acks them
        items = journal.read_outbox(from_seq=1, limit=1000)
    batches = [item for start in range(1, EVENTS + 1, 100) for item in journal.read_outbox(from_seq=start, limit=100)]

    assert [item.seq for item in items] == list(range(1, EVENTS + 1))
    # The same items batch by batch (a lost row at a batch's end cannot be named by the next batch's event).
    assert [(item.seq, type(item)) for item in batches] == [(item.seq, type(item)) for item in items]
    lost = [item for item in items if isinstance(item, LostEvent)]
    assert {item.seq for item in lost} == damaged
    assert {item.reason for item in lost} == {"unreadable_page"}
    events = [item for item in items if isinstance(item, Event)]
    after = next(event for event in events if event.seq == max(damaged) + 1)
    # Nothing of the damaged rows reads; the last of them is named by the prev_hash of the event after it.
    assert [item.hash for item in lost] == [None] * (len(lost) - 1) + [after.prev_hash]
    assert min(damaged) > 1 and max(damaged) < EVENTS  # rows before and after the page
    for event in events:
        check_hash(event)
    assert [event.payload["sale_id"] for event in events] == [f"S-{n}" for n in range(1, EVENTS + 1)
                                                               if n not in damaged]

    damage_logs = [r for r in caplog.records if r.levelno >= logging.ERROR and "damaged" in r.getMessage()]
    assert len(damage_logs) == 1
    assert "back up the data folder" in damage_logs[0].getMessage()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == damage_logs

    stats = journal.stats()
    assert (stats.last_seq, stats.acked_seq, stats.quarantined) == (EVENTS, 0, len(damaged))
    assert journal.last_seq == EVENTS

    append_sales(journal, EVENTS + 1, 1)  # the box keeps recording, and what it records still syncs
    tail = journal.read_outbox(from_seq=max(damaged), limit=1000)
    assert isinstance(tail[0], LostEvent)
    assert isinstance(tail[-1], Event) and tail[-1].seq == EVENTS + 1
    journal.close()
