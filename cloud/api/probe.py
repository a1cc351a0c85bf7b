"""The database probe behind /healthz: asked in the background, read for free by each request.

Why in the background rather than per request: /healthz needs no login, so a request to it must not
turn into database work (a flood of them would be a flood of queries), and its answer must not wait for
the API's thread pool or connection pool, which a flood of logins or slow queries may hold. One probe a
second on a thread and a connection of its own keeps the answer at most a second old, and a probe that
hangs (a database that stopped answering) turns the answer to down after `stale_after` seconds.
"""

from __future__ import annotations

import logging
import time

import anyio
import anyio.to_thread
import sqlalchemy as sa

from cloud.db.engine import database_ok, describe

log = logging.getLogger(__name__)

PROBE_INTERVAL = 1.0
STALE_AFTER = 5.0


class DatabaseProbe:
    """Runs `SELECT 1` every `interval` seconds; `up(now)` says whether the last one answered recently."""

    def __init__(self, engine: sa.Engine, *, interval: float = PROBE_INTERVAL, stale_after: float = STALE_AFTER):
        self._engine = engine
        self._interval = interval
        self._stale_after = stale_after
        self._thread = anyio.CapacityLimiter(1)
        self._ok_at: float | None = None  # monotonic time of the last probe that answered
        self._ok: bool | None = None  # the last answer; None before the first one

    def up(self, now: float) -> bool:
        """True when the last probe answered and did so less than `stale_after` seconds before `now`."""
        return bool(self._ok) and self._ok_at is not None and now - self._ok_at <= self._stale_after

    def record(self, ok: bool, now: float) -> None:
        """Take in one probe's answer, logging only a change."""
        if ok != self._ok:
            if ok:
                log.info("database %s answers", describe(self._engine))
            elif self._ok is not None:
                log.warning("database %s does not answer; /healthz says down", describe(self._engine))
        self._ok = ok
        if ok:
            self._ok_at = now

    async def probe(self) -> bool:
        """Ask the database once (on the probe's own thread) and record the answer."""
        # abandon_on_cancel: a probe stuck on a dead server must not hold up the hub's shutdown.
        ok = await anyio.to_thread.run_sync(database_ok, self._engine, limiter=self._thread, abandon_on_cancel=True)
        self.record(ok, time.monotonic())
        return ok

    async def run(self) -> None:
        """Probe forever, `interval` seconds apart; cancel to stop."""
        while True:
            try:
                await self.probe()
            except Exception:  # the top of a long-running loop: the probe must outlive any surprise
                log.exception("the database probe failed unexpectedly")
                self.record(False, time.monotonic())
            await anyio.sleep(self._interval)
