"""Two-phase redemption holds: a hold ends exactly once, never both captured and expired or released."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.holds import Hold, HoldBook

OPS = st.lists(st.tuples(st.sampled_from(["capture", "release", "expire"]), st.integers(0, 4),
                         st.floats(0, 200, allow_nan=False)), max_size=40)


@given(OPS, st.lists(st.floats(1, 150, allow_nan=False), min_size=5, max_size=5))
@settings(max_examples=300)
def test_a_hold_never_both_expires_and_captures(ops: list[tuple[str, int, float]], lifetimes: list[float]) -> None:
    book = HoldBook()
    holds = [Hold(f"h{n:016x}", "t1", f"s{n}", "ab" * 16, 100, 100, expires_at=lifetimes[n]) for n in range(5)]
    for hold in holds:
        book.add(hold)
    endings: dict[str, list[str]] = {hold.hold_id: [] for hold in holds}
    now = 0.0
    for op, index, advance in sorted(ops, key=lambda op: op[2]):
        now = max(now, advance)  # time only goes forward
        hold = holds[index]
        if op == "capture":
            captured = book.capture(hold.hold_id, now)
            if captured is not None:
                assert now < hold.expires_at and captured.state == "captured"
                endings[hold.hold_id].append("captured")
        elif op == "release":
            if book.release(hold.hold_id) is not None:
                endings[hold.hold_id].append("released")
        else:
            for expired in book.expired(now):
                assert now >= expired.expires_at
                assert book.release(expired.hold_id) is not None
                endings[expired.hold_id].append("expired")
    for hold_id, ends in endings.items():
        assert len(ends) <= 1, (hold_id, ends)
        assert (book.get(hold_id) is None) == bool(ends)
    assert book.held(["ab" * 16]) == 100 * len(book)


def test_held_points_count_only_open_holds_of_the_given_cards() -> None:
    book = HoldBook([Hold("h" + "1" * 16, "t1", "s1", "aa" * 16, 300, 30, 100.0),
                     Hold("h" + "2" * 16, "t2", "s2", "bb" * 16, 200, 20, 100.0),
                     Hold("h" + "3" * 16, "t1", "s3", "aa" * 16, 50, 5, 100.0, state="captured")])
    assert book.held(["aa" * 16]) == 300 and book.held(["aa" * 16, "bb" * 16]) == 500
    assert book.for_sale("t2", "s2") is not None and book.for_sale("t1", "s3") is None
    assert book.capture("h" + "1" * 16, now=100.0) is None  # at its expiry it is no longer capturable
