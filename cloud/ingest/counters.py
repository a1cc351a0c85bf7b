"""Ingest counters and a log throttle: repeats are counted, and logged only when things change."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from protocol.throttle import Throttle as _Gate
from protocol.throttle import summarised


@dataclass
class IngestCounters:
    """Running totals since the worker started; read by the health API (ints are safe to read across threads)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    unregistered: int = 0
    unauthenticated: int = 0
    rejected: int = 0
    gaps: int = 0
    lost_events: int = 0
    conflicts: int = 0
    replays: int = 0
    bad_payloads: int = 0
    store_failures: int = 0
    acks_sent: int = 0
    statuses: int = 0
    stale_statuses: int = 0

    def as_dict(self) -> dict[str, int]:
        """A snapshot as a plain mapping."""
        return asdict(self)


class Throttle:
    """Logs the first occurrence at once, then at most one summary per `every` seconds."""

    def __init__(self, logger: logging.Logger, *, every: float = 60.0) -> None:
        self._logger = logger
        self._gate = _Gate(every)

    def warning(self, msg: str, *args: object) -> None:
        """Log `msg` at WARNING unless one was logged less than `every` seconds ago (then count it)."""
        held_back = self._gate.report(time.monotonic())
        if held_back is not None:
            msg, args = summarised(msg, args, held_back)
            self._logger.warning(msg, *args)
