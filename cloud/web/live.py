"""The live overview's feed: one poller per hub process reads today's sales from the rollups about once a second
and fans each change out to every open Server-Sent Events stream of that process.

One read feeds every screen, so a wall of dashboards costs one query a second, not one per screen. The poller
reads the database rather than listening to ingest because, with several hub processes, a batch is stored by
whichever process took it: the database is the one place every process sees every sale. The poller runs only
while someone watches (and a minute after, so moving between pages keeps its history of changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from cloud.analytics.box_office import SiteToday
from cloud.ingest.counters import Throttle

log = logging.getLogger(__name__)

RECENT_CHANGES = 200
"""Changes the feed remembers (every site); each stream gets the newest of its own sites'."""
CHANGES_SHOWN = 20
IDLE_STOP_S = 60.0
RETRY_MS = 1000
"""How soon a browser reconnects after a stream ends (EventSource's `retry`)."""

Key = tuple[str, str]  # site id, currency


@dataclass(frozen=True, slots=True)
class Change:
    """What a site sold between two reads of the feed (money in minor units of `currency`)."""

    at: datetime
    site_id: str
    name: str | None
    currency: str
    tickets: int
    ticket_revenue: int
    concession_revenue: int
    sales: int


@dataclass(eq=False, slots=True)
class Subscription:
    """One open stream: the sites it may see (None: every site) and the flag the poller raises on news."""

    sites: frozenset[str] | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class LiveFeed:
    """Today's sales per site, read by one poller and shared by every subscription of this process.

    `read` is blocking (a database read, run on a worker thread) and returns every site's totals for its local
    day; the poller compares each read with the last and records what changed.
    """

    def __init__(self, read: Callable[[], list[SiteToday]], *, poll_s: float, max_streams: int) -> None:
        self._read = read
        self.poll_s = poll_s
        self.max_streams = max_streams
        self.reads = 0
        """Database reads so far (whatever the number of streams: one per poll)."""
        self.version = 0
        """Bumped when a read changed anything, and by the first read after the poller starts."""
        self.totals: dict[Key, SiteToday] = {}
        self.changes: deque[Change] = deque(maxlen=RECENT_CHANGES)
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._warm = False  # the poller has read since it (re)started
        self._idle_since: float | None = None
        self._failing = False
        self._error_log = Throttle(log)
        self._messages: dict[frozenset[str] | None, dict[str, Any]] = {}

    @property
    def streams(self) -> int:
        """Open subscriptions."""
        return len(self._subscriptions)

    def subscribe(self, sites: frozenset[str] | None) -> Subscription:
        """A new subscription (call from the event loop); starts the poller if it is not running."""
        subscription = Subscription(sites)
        self._subscriptions.add(subscription)
        self._idle_since = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="live-feed")
        elif self._warm:
            subscription.wake.set()  # the poller is warm: the current figures go out at once
        return subscription

    async def close(self) -> None:
        """Stop the poller (the app is shutting down: no read may outlive the database's engines)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription; the poller stops a while after the last one."""
        self._subscriptions.discard(subscription)
        if not self._subscriptions:
            self._idle_since = time.monotonic()

    async def _poll(self) -> None:
        self._warm = False
        while True:
            if self._idle_since is not None and time.monotonic() - self._idle_since > IDLE_STOP_S:
                return
            try:
                rows = await anyio.to_thread.run_sync(self._read)
            except SQLAlchemyError as exc:  # the database is away: keep serving the last figures, say so sparingly
                self._failing = True
                self._error_log.warning("live feed: reading today's sales failed: %s", exc)
            except Exception:  # the top of a long-running loop: a bug, with its traceback, once until it recovers
                if not self._failing:
                    log.exception("live feed: reading today's sales failed")
                self._failing = True
            else:
                self.reads += 1
                if self._failing:
                    self._failing = False
                    log.info("live feed: reading today's sales again")
                if self._update(rows, at=datetime.now(UTC), baseline=not self._warm) or not self._warm:
                    self._warm = True
                    self._publish()
            await asyncio.sleep(self.poll_s)

    def _update(self, rows: list[SiteToday], *, at: datetime, baseline: bool) -> bool:
        """Take a read; True when any site's figures changed. Changes are recorded except for the baseline (the
        first read after a pause would otherwise show a pause's sales as one sale) and across a site's midnight."""
        fresh = {(row.site_id, row.currency): row for row in rows}
        changed = fresh.keys() != self.totals.keys()
        for key, new in sorted(fresh.items()):
            old = self.totals.get(key)
            if new == old:
                continue
            changed = True
            if baseline or (old is not None and old.day != new.day):
                continue
            before = _amounts(old) if old is not None else (0, 0, 0, 0)
            delta = [now - then for now, then in zip(_amounts(new), before, strict=True)]
            if any(delta):
                self.changes.append(Change(at, new.site_id, new.name, new.currency, *delta))
        self.totals = fresh
        return changed

    def _publish(self) -> None:
        self.version += 1
        self._messages.clear()
        for subscription in self._subscriptions:
            subscription.wake.set()

    def message(self, sites: frozenset[str] | None) -> dict[str, Any]:
        """What a stream limited to `sites` shows now: each site's totals and its newest changes."""
        cached = self._messages.get(sites)
        if cached is None:
            cached = self._messages[sites] = {
                "sites": [_today(row) for key, row in sorted(self.totals.items()) if _visible(key[0], sites)],
                "changes": [_change(change) for change in reversed(self.changes)
                            if _visible(change.site_id, sites)][:CHANGES_SHOWN],
            }
        return cached

    async def stream(self, sites: frozenset[str] | None, *, heartbeat_s: float, max_s: float) -> AsyncIterator[str]:
        """The Server-Sent Events of a stream limited to `sites`: a `sales` event whenever their figures change
        (the first as soon as the feed has read), a comment line after `heartbeat_s` without one, and the end
        after `max_s` (the browser reconnects). Subscribed while it is iterated, and only then."""
        subscription = self.subscribe(sites)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            deadline = time.monotonic() + max_s
            written = time.monotonic()
            last: dict[str, Any] | None = None
            while (now := time.monotonic()) < deadline:
                timeout = min(deadline, written + heartbeat_s) - now
                try:
                    await asyncio.wait_for(subscription.wake.wait(), timeout=max(timeout, 0))
                except TimeoutError:
                    pass
                else:
                    subscription.wake.clear()
                    message = self.message(subscription.sites)
                    if message is not last and message != last:
                        last = message
                        written = time.monotonic()
                        body = json.dumps({"at": _iso(datetime.now(UTC)), **message}, separators=(",", ":"))
                        yield f"event: sales\ndata: {body}\n\n"
                        continue
                if time.monotonic() - written >= heartbeat_s:
                    written = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            self.unsubscribe(subscription)


def _amounts(row: SiteToday) -> tuple[int, int, int, int]:
    return row.tickets, row.ticket_revenue, row.concession_revenue, row.sales


def _visible(site_id: str, sites: frozenset[str] | None) -> bool:
    return sites is None or site_id in sites


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _today(row: SiteToday) -> dict[str, Any]:
    return {"site_id": row.site_id, "name": row.name, "day": row.day.isoformat(), "currency": row.currency,
            "tickets": row.tickets, "ticket_revenue": row.ticket_revenue,
            "concession_revenue": row.concession_revenue, "sales": row.sales}


def _change(change: Change) -> dict[str, Any]:
    return {"at": _iso(change.at), "site_id": change.site_id, "name": change.name, "currency": change.currency,
            "tickets": change.tickets, "ticket_revenue": change.ticket_revenue,
            "concession_revenue": change.concession_revenue, "sales": change.sales}
