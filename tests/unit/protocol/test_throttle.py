"""The log throttle both sides use: first report at once, then one per period with the count held back."""

from __future__ import annotations

from protocol.throttle import Throttle, summarised


def test_first_at_once_then_once_per_period_with_what_was_held_back() -> None:
    gate = Throttle(every=60)
    assert gate.report(0.0) == 0
    assert [gate.report(t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert gate.report(60.0) == 3
    assert gate.report(61.0) is None
    assert gate.reset() == 1
    assert gate.report(62.0) == 0  # a new episode is reported at once


def test_a_summary_says_how_many_were_held_back() -> None:
    assert summarised("lost %s", ("x",), 0) == ("lost %s", ("x",))
    assert summarised("lost %s", ("x",), 3) == ("lost %s (and %d more like it since the last report)", ("x", 3))
