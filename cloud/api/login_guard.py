"""Login throttling: failure windows per client and per username, and a gate around password checks.

A wrong password costs an Argon2 run (about 150 ms of CPU and 64 MiB). Without limits a flood of them
takes every core, every thread and the memory. Two things stop that:

- `LoginGuard` counts failures per client address and per username over sliding windows; a key over its
  limit is refused before any database or Argon2 work. Pure: time is an argument, state lives in memory
  (per hub process: with several processes the limits apply to each).
- `VerifyGate` runs at most `slots` verifications at once on threads of their own, with a bounded queue;
  beyond it a request is refused at once, so memory and threads stay bounded under a flood from many
  addresses (which no per-address count can stop).

Both are used from the event loop only, so they need no locks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import anyio

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECK_NICENESS = 10
"""How much nicer than the rest of the hub the password checks run (Linux): a weight of about a tenth."""

MAX_TRACKED_KEYS = 10_000
"""Keys kept per window. Failures are recorded only after an Argon2 run, so a few thousand per window is
what the gate lets through; the cap keeps memory bounded whatever an attacker sends."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a login is refused before its password is checked, and when to try again (whole seconds)."""

    reason: Literal["client", "user", "busy"]
    retry_after: int

    @property
    def detail(self) -> str:
        """The message for the HTTP client."""
        if self.reason == "busy":
            return f"too many logins are being checked right now; retry in {self.retry_after} s"
        what = "from this address" if self.reason == "client" else "for this user"
        return f"too many failed logins {what}; retry in {self.retry_after} s"


class LoginRefused(Exception):
    """Raised by `VerifyGate.run` when a login is refused before its password is checked."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


class FailureWindow:
    """At most `limit` failures per key within any `window` seconds (a sliding window)."""

    def __init__(self, *, limit: int, window: float, max_keys: int = MAX_TRACKED_KEYS) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be at least 1 and window positive")
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        # Ordered by last failure, oldest first, so expired keys are pruned from the front. Only the
        # newest `limit` failures matter: the oldest of them says when the key is free again.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, key: str, *, now: float) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        self._prune(now)
        failures = self._failures.get(key)
        if failures is None or not self._refused(failures, now):
            return None
        return failures[0] + self.window - now

    def record(self, key: str, *, now: float) -> bool:
        """Count a failure of `key`; True when this one reached the limit (the key is now refused)."""
        self._prune(now)
        failures = self._failures.get(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)  # forget the key that failed least recently
        else:
            self._failures.move_to_end(key)
        was_refused = self._refused(failures, now)
        failures.append(now)
        return not was_refused and self._refused(failures, now)

    def _refused(self, failures: deque[float], now: float) -> bool:
        return len(failures) == self.limit and now - failures[0] < self.window

    def _prune(self, now: float) -> None:
        # Keys are in order of their newest failure: stop at the first one still inside the window.
        while self._failures:
            key, failures = next(iter(self._failures.items()))
            if now - failures[-1] < self.window:
                return
            del self._failures[key]


class LoginGuard:
    """Failure windows per client and per username; `check` before a login, `record_failure` after one."""

    def __init__(
        self, *, client_limit: int, client_window: float, user_limit: int, user_window: float
    ) -> None:
        self.clients = FailureWindow(limit=client_limit, window=client_window)
        self.users = FailureWindow(limit=user_limit, window=user_window)

    def check(self, *, client: str, username: str, now: float) -> Refusal | None:
        """A refusal when the client or the username has failed too often lately, else None."""
        wait = self.clients.retry_after(client, now=now)
        if wait is not None:
            return Refusal("client", _whole_seconds(wait))
        wait = self.users.retry_after(username, now=now)
        if wait is not None:
            return Refusal("user", _whole_seconds(wait))
        return None

    def record_failure(self, *, client: str, username: str | None, now: float) -> list[str]:
        """Count a failed login; returns which of "client" and "user" it blocked (for a log line).

        A success is not recorded: it must not reset the client's count (an attacker with one valid
        account would otherwise interleave its logins with guesses), nor the user's (a dashboard
        refreshing with the right password would reopen the window for the guesser)."""
        blocked: list[str] = []
        if self.clients.record(client, now=now):
            blocked.append("client")
        if username is not None and self.users.record(username, now=now):
            blocked.append("user")
        return blocked


def client_key(host: str | None) -> str:
    """The key a client's failures are counted under: its address, or its /64 network for IPv6 (one
    host usually holds a whole /64, so counting single addresses would not limit it)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class VerifyGate:
    """Runs password checks `slots` at a time on threads of their own, at most `max_waiting` queued.

    Its own threads, for two reasons. A check never takes a token of the thread pool that serves the
    API's routes, so a flood of logins cannot starve them. And on Linux the threads run at a lower
    priority (Argon2's lanes inherit it): a check is the hub's least urgent work, and at normal
    priority its four lanes would outweigh the event loop and ingest's thread on a small machine."""

    def __init__(self, *, slots: int, max_waiting: int) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("slots must be at least 1 and max_waiting not negative")
        self.slots = slots
        self.max_waiting = max_waiting
        self._admitted = 0  # running plus waiting
        self._turns = anyio.CapacityLimiter(slots)
        self._executor: ThreadPoolExecutor | None = None

    @property
    def admitted(self) -> int:
        """Checks running or waiting for a slot."""
        return self._admitted

    @property
    def full(self) -> bool:
        """True when a new check would be refused."""
        return self._admitted >= self.slots + self.max_waiting

    async def run(self, check: Callable[[], T], *, recheck: Callable[[], Refusal | None]) -> T:
        """`check()` on a thread once a slot is free; LoginRefused at once when the queue is full, or
        when `recheck()` refuses once the slot is ours (failures recorded while this one waited)."""
        if self.full:
            raise LoginRefused(Refusal("busy", 1))
        self._admitted += 1
        try:
            async with self._turns:
                refusal = recheck()
                if refusal is not None:
                    raise LoginRefused(refusal)
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.slots, thread_name_prefix="login-check", initializer=_lower_priority
                    )
                # asyncio's executor rather than anyio's threads: those are shared with the API's routes
                # and cannot be given a lower priority. The hub runs on asyncio (uvicorn).
                return await asyncio.get_running_loop().run_in_executor(self._executor, check)
        finally:
            self._admitted -= 1

    def close(self) -> None:
        """Let the threads end once their checks are done."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    # On Linux the nice value belongs to the thread, and threads it starts inherit it.
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)
    except OSError as exc:
        log.debug("password checks keep the normal priority: %s", exc)


def _whole_seconds(wait: float) -> int:
    # Retry-After is in whole seconds; rounding down would invite a retry that is refused again.
    return max(1, math.ceil(wait))
