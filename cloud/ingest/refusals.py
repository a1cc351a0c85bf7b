"""How often refusals before authentication reach the database: once a minute per device and reason.

Whoever can publish can send refusals as fast as the broker takes them; each recorded row is a durable
write on ingest's one thread. So they are counted in memory and written at most once a minute per
(device, reason), with the count since the last write, and only for registered devices (a stranger's
made-up device ids never become rows). Pure: the time is an argument.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from protocol.throttle import Throttle

MAX_KEYS = 10_000
"""Keys kept in memory (registered devices times reasons); past it the least recent is dropped."""


class RefusalLedger:
    """Pending refusal counts per (device, reason), released for writing at most once per period."""

    def __init__(self, *, every: float = 60.0, max_keys: int = MAX_KEYS) -> None:
        self._every = every
        self._max_keys = max_keys
        self._gates: OrderedDict[tuple[str, str], tuple[Throttle, int]] = OrderedDict()

    def add(self, device_id: str, reason: str, now: float) -> int | None:
        """Count one refusal; the number to write now (this one included), or None to wait.

        Counts held back after a key's last refusal are not written (the in-memory counters have them).
        """
        key = (device_id, reason)
        if key in self._gates:
            self._gates.move_to_end(key)
        elif len(self._gates) >= self._max_keys:
            self._gates.popitem(last=False)
        gate, pending = self._gates.get(key, (Throttle(self._every), 0))
        pending += 1
        if gate.report(now) is None:
            self._gates[key] = (gate, pending)
            return None
        self._gates[key] = (gate, 0)
        return pending


def fixed_detail(detail: str) -> str:
    """The detail with its numbers masked, so that one kind of refusal keeps to one row whatever a sender
    varies (seqs, counts, lengths)."""
    return re.sub(r"\d+", "N", detail)[:300]
