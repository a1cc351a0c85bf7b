"""A time-ordered series of instants (integer microseconds) with running sums of their points: how many fall in
a span and what they add up to, each by two binary searches, however long the series. Pure; the fraud window
(`protocol.fraud_window`) keeps one per card, card and till, and cashier."""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class Series:
    """Instants (µs) in order with running sums of their points; the oldest are dropped from the left."""

    __slots__ = ("base", "cap", "cum", "head", "times")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        """Entries kept at most: beyond, the oldest go."""
        self.times: list[int] = []
        self.cum: list[int] = []
        """cum[i]: points of every entry up to i, those dropped included (`base` before the list's start)."""
        self.head = 0
        self.base = 0

    def __len__(self) -> int:
        return len(self.times) - self.head

    def add(self, at: int, points: int) -> None:
        if not self.times or at >= self.times[-1]:
            self.times.append(at)
            self.cum.append((self.cum[-1] if self.cum else self.base) + points)
        else:  # a clock that stepped back: rare, so a slow insert
            index = bisect_right(self.times, at, self.head)
            self.times.insert(index, at)
            self.cum.insert(index, self._before(index) + points)
            for later in range(index + 1, len(self.cum)):
                self.cum[later] += points
        if len(self) > self.cap:
            self.head += 1
        self._compact()

    def drop_before(self, at: int) -> None:
        """Forget the entries older than `at`."""
        self.head = bisect_left(self.times, at, self.head)
        self._compact()

    def _compact(self) -> None:
        if self.head > 64 and self.head * 2 > len(self.times):
            self.base = self.cum[self.head - 1]
            del self.times[:self.head], self.cum[:self.head]
            self.head = 0

    def _before(self, index: int) -> int:
        return self.cum[index - 1] if index > 0 else self.base

    def count(self, after: int, until: int) -> int:
        """Entries in (after, until]."""
        return bisect_right(self.times, until, self.head) - bisect_right(self.times, after, self.head)

    def points(self, start: int, end: int) -> int:
        """Points of the entries in [start, end)."""
        first = bisect_left(self.times, start, self.head)
        last = bisect_left(self.times, end, first)
        return self._before(last) - self._before(first)

    def points_after(self, after: int, until: int) -> int:
        """Points of the entries in (after, until]."""
        first = bisect_right(self.times, after, self.head)
        last = bisect_right(self.times, until, first)
        return self._before(last) - self._before(first)

    def latest(self, after: int, until: int) -> int | None:
        """The latest instant in (after, until], if any."""
        index = bisect_right(self.times, until, self.head) - 1
        return self.times[index] if index >= self.head and self.times[index] > after else None
