"""The ledger that keeps refusals before authentication to one write a minute per device and reason."""

from __future__ import annotations

from cloud.ingest.refusals import RefusalLedger, fixed_detail


def test_the_first_refusal_is_written_at_once_then_one_a_minute_with_the_count() -> None:
    ledger = RefusalLedger(every=60)
    assert ledger.add("box-1", "bad_signature", 0.0) == 1
    assert [ledger.add("box-1", "bad_signature", t) for t in (1.0, 2.0, 59.0)] == [None, None, None]
    assert ledger.add("box-1", "malformed", 3.0) == 1  # another reason has its own minute
    assert ledger.add("box-1", "bad_signature", 60.0) == 4  # the three held back, and this one


def test_numbers_a_sender_varies_do_not_make_new_rows() -> None:
    assert fixed_detail("event #12: hash does not match") == fixed_detail("event #977: hash does not match")


def test_a_full_ledger_drops_the_least_recent_key_not_all_of_them() -> None:
    ledger = RefusalLedger(every=60, max_keys=2)
    ledger.add("box-1", "bad_signature", 0.0)
    ledger.add("box-2", "bad_signature", 0.0)
    assert ledger.add("box-1", "bad_signature", 1.0) is None  # box-1 is now the most recent
    ledger.add("box-3", "bad_signature", 2.0)  # drops box-2
    assert ledger.add("box-1", "bad_signature", 3.0) is None  # box-1 kept its minute
    assert ledger.add("box-2", "bad_signature", 4.0) == 1  # box-2 starts afresh
