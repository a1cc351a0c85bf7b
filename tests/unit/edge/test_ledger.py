"""The box's ledger: each card event's points by seq, written with the event, read above a watermark."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edge.store.bootstrap import open_journal
from edge.store.journal import Journal
from protocol.directory import balance_at_box
from protocol.ids import uuid7
from tests.edge_support import edge_settings, new_journal
from tests.support.directory_pages import entry, token_of
from tests.unit.protocol.factories import sale_payload

CARD_A, CARD_B, OTHER = token_of("card-a"), token_of("card-b"), token_of("someone-else")
DAY = date(2026, 11, 25)


def record(journal: Journal, token: str, points: int, *, kind: str = "earn", day: date = DAY) -> int:
    """One card sale event and its ledger row, in one transaction; the seq it was given."""
    payload = sale_payload(f"S-{journal.last_seq + 1}", card_token=token)
    payload["loyalty"]["points_earned"] = max(points, 0)
    with journal.transaction() as tx:
        event = tx.append(type="sale.recorded", payload=payload,
                          event_id=uuid7(1_800_000_000_000, os.urandom(10)), occurred_at=datetime.now(UTC),
                          clock_ok=True)
        tx.add_ledger(event.seq, token, points, kind, day)  # type: ignore[arg-type]
    return event.seq


def test_local_points_and_redemptions_above_a_watermark(tmp_path: Path) -> None:
    journal = new_journal(edge_settings(tmp_path))
    try:
        record(journal, CARD_A, 100)
        record(journal, CARD_B, 50)
        record(journal, OTHER, 999)
        record(journal, CARD_A, -30, kind="redeem")
        record(journal, CARD_B, -20, kind="redeem", day=date(2026, 11, 24))
        record(journal, CARD_B, -5, kind="redeem")
        assert journal.local_points([CARD_A, CARD_B], 0) == [(1, 100), (2, 50), (4, -30), (5, -20), (6, -5)]
        assert journal.local_points([CARD_A, CARD_B], 2) == [(4, -30), (5, -20), (6, -5)]
        assert journal.local_points([], 0) == []
        assert journal.redeemed_since([CARD_A, CARD_B], 0, DAY) == 35
        assert journal.redeemed_since([CARD_A, CARD_B], 4, DAY) == 5
        with journal.transaction() as tx:  # the sale path reads inside its own write
            assert tx.local_points([CARD_A], 0) == [(1, 100), (4, -30)]
            assert tx.redeemed_since([CARD_A], 0, DAY) == 30
    finally:
        journal.close()


def test_a_ledger_row_with_the_wrong_sign_is_refused_and_rolls_back_with_its_event(tmp_path: Path) -> None:
    journal = new_journal(edge_settings(tmp_path))
    try:
        with pytest.raises(ValueError, match="redemptions negative"):
            record(journal, CARD_A, 30, kind="redeem")
        assert journal.last_seq == 0 and journal.local_points([CARD_A], 0) == []
    finally:
        journal.close()


def test_the_balance_at_a_box_counts_only_its_events_above_the_directorys_watermark(tmp_path: Path) -> None:
    journal = new_journal(edge_settings(tmp_path))
    try:
        seqs = [record(journal, CARD_A, 100), record(journal, CARD_B, 50), record(journal, CARD_A, 70),
                record(journal, CARD_B, -30, kind="redeem")]
        # The hub's balance includes this box's events up to seq 2, and other boxes' events.
        known = entry("card-a", balance=1000, seen={"riverside-box1": seqs[1], "riverside-box2": 40})
        local = journal.local_points([CARD_A, CARD_B], 0)
        assert balance_at_box(known, "riverside-box1", local) == 1000 + 70 - 30
        assert balance_at_box(known, "riverside-box1", journal.local_points([CARD_A, CARD_B], seqs[1])) == 1040
        assert balance_at_box(known, "riverside-box3", local) == 1000 + 100 + 50 + 70 - 30  # box3 never seen
        assert balance_at_box(None, "riverside-box1", local) == 190  # a card the directory does not know yet
    finally:
        journal.close()


def test_a_journal_written_before_the_ledger_gets_one_from_its_sales(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    record(journal, CARD_A, 250)
    record(journal, CARD_B, 100)
    journal.close()
    conn = sqlite3.connect(settings.journal_path)  # as a journal of schema version 2 was: no ledger
    conn.execute("DROP TABLE ledger")
    conn.execute("UPDATE state SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    journal = open_journal(settings, create_key=False)
    try:
        assert journal.local_points([CARD_A, CARD_B], 0) == [(1, 250), (2, 100)]
        days = [e.occurred_at.date().isoformat() for e in journal.read_events(from_seq=1, limit=10)]
        with journal.transaction() as tx:  # each event's own day (UTC), not the one its first row was given
            assert tx._conn.execute("SELECT day, kind FROM ledger ORDER BY seq").fetchall() == \
                [(day, "earn") for day in days]
        assert journal.stats().last_seq == 2
    finally:
        journal.close()


def test_a_ledger_from_before_refunds_is_rebuilt_to_take_them_and_keeps_its_rows(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    record(journal, CARD_A, 100)
    path = journal.path
    journal.close()
    # The table as boxes before refunds and approvals made it: its check refuses the new kinds.
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("ALTER TABLE ledger RENAME TO ledger_new_shape")
        conn.execute("CREATE TABLE ledger(seq INTEGER NOT NULL, card_token TEXT NOT NULL, points INTEGER NOT NULL, "
                      "day TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('earn', 'redeem', 'reversal')), "
                      "move TEXT)")
        conn.execute("INSERT INTO ledger SELECT seq, card_token, points, day, kind, move FROM ledger_new_shape")
        conn.execute("DROP TABLE ledger_new_shape")
    conn.close()
    journal = open_journal(settings, create_key=False)  # the box restarted with the new code
    try:
        record(journal, CARD_A, -30, kind="refund")
        record(journal, CARD_A, 20, kind="approval")
        assert sorted(points for _, points in journal.local_points([CARD_A], 0)) == [-30, 20, 100]
    finally:
        journal.close()
