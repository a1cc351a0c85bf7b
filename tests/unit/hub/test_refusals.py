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
