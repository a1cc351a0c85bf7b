"""The journal keeps every event, chained, sealed, and readable only with the box's key."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.errors import KeyFileError, StoreError
from edge.store.bootstrap import open_journal
from edge.store.journal import Journal
from edge.store.keys import create_master_key, load_master_key
from protocol.cards import card_token
from protocol.chain import verify_chain
from protocol.ids import uuid7
from tests.edge_support import edge_settings, fob, new_journal
from tests.unit.protocol.factories import sale_payload

CARD_ID = "67003B51C6"


def append_sale(journal: Journal, sale_id: str, *, token: str | None = None, points: int = 0,
                cashier: str = "c07") -> None:
    with journal.transaction() as tx:
        event = tx.append(type="sale.recorded", payload=sale_payload(sale_id, card_token=token, cashier_id=cashier),
                          event_id=uuid7(1_800_000_000_000, os.urandom(10)), occurred_at=datetime.now(UTC),
                          clock_ok=True, sale_key=f"t1:{sale_id}")
        if token:
            tx.add_ledger(event.seq, token, points, "earn", event.occurred_at.date())


def test_events_survive_a_restart_and_the_chain_continues(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    for n in range(3):
        append_sale(journal, f"S-{n}")
    journal.close()
    journal = open_journal(settings, create_key=False)
    append_sale(journal, "S-3")
    events = journal.read_events(from_seq=1, limit=100)
    verify_chain(events)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert journal.stats().backlog == 4


def test_nothing_personal_or_commercial_reads_in_clear_on_disk(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    token = card_token(b"pepper-0123456789", fob(CARD_ID))
    # A cashier id no hash or random byte run would spell by chance (a 3-character one would, now and then).
    append_sale(journal, "S-1", token=token, points=250, cashier="Cashier Quinn")
    journal.close()
    raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("journal.db*"))
    assert raw  # the files exist and were read
    for secret in [CARD_ID.encode(), CARD_ID.lower().encode(), b"The Long Night", b"Cashier Quinn", b"Popcorn"]:
        assert secret not in raw


def test_a_failed_transaction_leaves_no_trace(tmp_path: Path) -> None:
    journal = new_journal(edge_settings(tmp_path))
    append_sale(journal, "S-1")
    with pytest.raises(RuntimeError), journal.transaction() as tx:
        tx.append(type="sale.recorded", payload=sale_payload("S-2"), event_id=uuid7(1, os.urandom(10)),
                  occurred_at=datetime.now(UTC), clock_ok=True, sale_key="t1:S-2")
        raise RuntimeError("power cut before commit")
    append_sale(journal, "S-3")
    events = journal.read_events(from_seq=1, limit=10)
    verify_chain(events)
    assert [e.payload["sale_id"] for e in events] == ["S-1", "S-3"]


def test_the_same_sale_key_cannot_be_written_twice(tmp_path: Path) -> None:
    journal = new_journal(edge_settings(tmp_path))
    append_sale(journal, "S-1")
    with pytest.raises(StoreError):
        append_sale(journal, "S-1")
    assert journal.last_seq == 1
    with journal.transaction() as tx:
        found = tx.find_sale("t1:S-1")
    assert found is not None and found.seq == 1


def test_acks_only_move_forward_and_never_past_the_journal(tmp_path: Path) -> None:
    journal = new_journal(edge_settings(tmp_path))
    for n in range(5):
        append_sale(journal, f"S-{n}")
    assert journal.mark_acked(3) == 3
    assert journal.mark_acked(2) == 3
    assert journal.mark_acked(99) == 3
    assert journal.mark_acked(5) == 5
    assert journal.stats().backlog == 0


def test_a_tampered_row_is_refused(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    append_sale(journal, "S-1")
    append_sale(journal, "S-2")
    journal.close()
    conn = sqlite3.connect(settings.journal_path)
    conn.execute("UPDATE journal SET body = (SELECT body FROM journal WHERE seq = 2) WHERE seq = 1")
    conn.commit()
    conn.close()
    journal = open_journal(settings, create_key=False)
    with pytest.raises(StoreError, match="does not open"):
        journal.read_events(from_seq=1, limit=1)


def test_a_row_that_does_not_open_is_quarantined_once_and_the_rest_still_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    for n in range(4):
        append_sale(journal, f"S-{n}")
    hashes = [event.hash for event in journal.read_events(from_seq=1, limit=10)]
    conn = sqlite3.connect(settings.journal_path)
    damaged = bytes(conn.execute("SELECT body FROM journal WHERE seq = 2").fetchone()[0])
    conn.execute("UPDATE journal SET body = ? WHERE seq = 2", (damaged[:-1] + bytes([damaged[-1] ^ 1]),))
    conn.execute("UPDATE journal SET hash = 'not a hash' WHERE seq = 3")
    conn.execute("UPDATE journal SET body = X'00' WHERE seq = 3")
    conn.commit()

    for _ in range(3):  # the uplink reads the same rows again until the hub acks them
        items = journal.read_outbox(from_seq=1, limit=10)

    assert [type(item).__name__ for item in items] == ["Event", "LostEvent", "LostEvent", "Event"]
    assert (items[1].seq, items[1].hash, items[1].reason) == (2, hashes[1], "unreadable")
    # A hash column that is not a hash is not trusted; the next event's prev_hash names the row instead.
    assert (items[2].seq, items[2].hash) == (3, hashes[2]) and items[3].prev_hash == hashes[2]
    assert journal.stats().quarantined == 2
    kept = conn.execute("SELECT seq, body FROM quarantine ORDER BY seq").fetchall()
    assert [(seq, bytes(body)) for seq, body in kept][0] == (2, damaged[:-1] + bytes([damaged[-1] ^ 1]))
    conn.close()
    assert len([r for r in caplog.records if "does not open" in r.getMessage()]) == 2  # once per row


def test_keys_are_private_never_overwritten_and_required_for_an_existing_journal(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    journal = new_journal(settings)
    append_sale(journal, "S-1")
    journal.close()
    key = settings.key_path
    assert key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_master_key(key)
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_master_key(key)
    key.unlink()
    with pytest.raises(KeyFileError, match="missing"):
        open_journal(settings, create_key=True)
    other = tmp_path / "other.key"
    create_master_key(other)
    with pytest.raises(KeyFileError, match="not found"):
        open_journal(edge_settings(tmp_path, master_key_file=tmp_path / "absent.key"), create_key=False)

