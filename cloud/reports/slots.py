"""A cap on work running at once in one process (the transaction exports): take a slot or be told to come back."""

from __future__ import annotations

import threading


class Slots:
    """At most `limit` holders at once; `take` never waits (the caller answers 429 instead)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0
        self._lock = threading.Lock()

    @property
    def taken(self) -> int:
        return self._taken

    def take(self) -> bool:
        """Take a slot; False when all are taken."""
        with self._lock:
            if self._taken >= self.limit:
                return False
            self._taken += 1
            return True

    def give_back(self) -> None:
        """Return a slot taken with `take`."""
        with self._lock:
            self._taken = max(0, self._taken - 1)
