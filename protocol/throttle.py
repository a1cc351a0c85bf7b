"""When to report a condition that repeats: the first time at once, then at most once per period.

Pure (the time is an argument), so the box and the hub throttle their log lines the same way.
"""

from __future__ import annotations


class Throttle:
    """Say whether a repeat should be reported now, and how many were held back since the last report."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._last: float | None = None
        self._held_back = 0

    def report(self, now: float) -> int | None:
        """None when this occurrence should stay quiet; else how many were held back before it."""
        if self._last is not None and now - self._last < self.every:
            self._held_back += 1
            return None
        held_back, self._held_back, self._last = self._held_back, 0, now
        return held_back

    def reset(self) -> int:
        """The condition is over: forget it; returns how many occurrences went unreported."""
        held_back, self._held_back, self._last = self._held_back, 0, None
        return held_back


def summarised(msg: str, args: tuple[object, ...], held_back: int) -> tuple[str, tuple[object, ...]]:
    """A %-style log message and its arguments, saying how many like it were held back (if any)."""
    if not held_back:
        return msg, args
    return msg + " (and %d more like it since the last report)", (*args, held_back)
