"""Ingest counters and a log throttle: repeats are counted, and logged only when things change."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass


@dataclass
class IngestCounters:
    """Running totals since the worker started; read by /healthz (ints are safe to read across threads)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    rejected: int = 0
    gaps: int = 0
    chain_breaks: int = 0
    store_failures: int = 0
    acks_sent: int = 0
    statuses: int = 0

    def as_dict(self) -> dict[str, int]:
        """A snapshot as a plain mapping."""
        return asdict(self)


class Throttle:
    """Logs the first occurrence at once, then at most one summary per `every` seconds."""

    def __init__(self, logger: logging.Logger, *, every: float = 60.0) -> None:
        self._logger = logger
        self._every = every
        self._last: float | None = None
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        """Log `msg` at WARNING unless one was logged less than `every` seconds ago (then count it)."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self._every:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += " (and %d more like it since the last report)"
            args = (*args, self._suppressed)
        self._logger.warning(msg, *args)
        self._last, self._suppressed = now, 0
