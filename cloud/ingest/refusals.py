"""How often refusals before authentication reach the database: once a minute per device and reason.

Whoever can publish can send refusals as fast as the broker takes them; each recorded row is a durable
write on ingest's one thread. So they are counted in memory and written at most once a minute per
(device, reason), with the count since the last write, and only for registered devices (a stranger's
made-up device ids never become rows). Pure: the time is an argument.
"""

from __future__ import annotations

import re

from protocol.throttle import Throttle

MAX_KEYS = 10_000
"""Keys kept in memory; past it the ledger starts afresh (the counters and logs still count everything)."""


class RefusalLedger:
    """Pending refusal counts per (device, reason), released for writing at most once per period."""

    def __init__(self, *, every: float = 60.0) -> None:
        self._every = every
        self._gates: dict[tuple[str, str], tuple[Throttle, int]] = {}

    def add(self, device_id: str, reason: str, now: float) -> int | None:
        """Count one refusal; the number to write now (this one included), or None to wait."""
        key = (device_id, reason)
        if key not in self._gates and len(self._gates) >= MAX_KEYS:
            self._gates.clear()
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
