"""Login throttling: failure windows per client and per username, and a gate around password checks.

A wrong password costs an Argon2 run (about 150 ms of CPU and 64 MiB). Without limits a flood of them
takes every core, every thread and the memory. Two things stop that:

- `LoginGuard` counts failures per client address and per username over sliding windows; a key over its
  limit is refused before any database or Argon2 work. A username's limit does not hold back an address
  that username signed in from within the last day (OWASP's answer to lockout as a denial of service:
  a stranger's failures lock the account for strangers only); that address still meets its own limit.
  Pure: time is an argument, state lives in memory (per hub process: with several processes the limits
  apply to each), bounded whatever an attacker sends.
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

TRUST_SECONDS = 24 * 3600
"""How long a sign-in from an address exempts that (username, address) from the username's limit."""

TRUSTED_CLIENTS_PER_USER = 8
"""Addresses remembered per username (home, office, phone...); the least recent sign-in is forgotten."""


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
        # Keys below the limit and keys at it, each ordered by last failure, oldest first, so expired keys
        # are pruned from the front. Only the newest `limit` failures matter: the oldest of them says when
        # the key is free again.
        self._below: OrderedDict[str, deque[float]] = OrderedDict()
        self._full: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._below) + len(self._full)

    def retry_after(self, key: str, *, now: float) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        self._prune(now)
        failures = self._full.get(key)
        if failures is None or not self._refused(failures, now):
            return None
        return failures[0] + self.window - now

    def record(self, key: str, *, now: float) -> bool:
        """Count a failure of `key`; True when this one reached the limit (the key is now refused)."""
        self._prune(now)
        failures = self._full.pop(key, None)
        if failures is None:
            failures = self._below.pop(key, None)
        if failures is None:
            if len(self) >= self._max_keys:
                self._forget_one()
            failures = deque(maxlen=self.limit)
        was_refused = self._refused(failures, now)
        failures.append(now)
        (self._full if len(failures) == self.limit else self._below)[key] = failures  # now the newest
        return not was_refused and self._refused(failures, now)

    def forget(self, key: str) -> None:
        """Drop `key`'s failures (an admin unlocked the account: its window starts again)."""
        self._below.pop(key, None)
        self._full.pop(key, None)

    def _forget_one(self) -> None:
        # A key below the limit goes first, the least recent: forgetting a key at the limit would unlock it,
        # and a spray of fresh keys (usernames, addresses) must not buy an attacker a new round of guesses.
        # Keys at the limit go only when nothing else is left, memory winning. That does not happen at the
        # defaults: the gate lets through at most about 27 failures a second (4 checks of 150 ms), so at
        # most about 2,400 usernames reach 10 failures within 15 minutes, and 160 addresses 10 within a
        # minute, far below MAX_TRACKED_KEYS.
        (self._below or self._full).popitem(last=False)

    def _refused(self, failures: deque[float], now: float) -> bool:
        return len(failures) == self.limit and now - failures[0] < self.window

    def _prune(self, now: float) -> None:
        # Keys are in order of their newest failure: stop at the first one still inside the window.
        for keys in (self._below, self._full):
            while keys:
                key, failures = next(iter(keys.items()))
                if now - failures[-1] < self.window:
                    break
                del keys[key]


class RecentSignIns:
    """The addresses each username signed in from within `within` seconds: at most `per_user` addresses
    for each of at most `max_users` usernames, the least recent forgotten first.

    Only real users sign in, so the usernames are few; bounded per username so that only someone who
    knows a user's password can push that user's addresses out (an attacker's account fills its own)."""

    def __init__(self, *, within: float, max_users: int, per_user: int) -> None:
        if within <= 0 or max_users < 1 or per_user < 1:
            raise ValueError("within must be positive and max_users and per_user at least 1")
        self.within = within
        self._max_users = max_users
        self._per_user = per_user
        # Usernames by last sign-in, oldest first; for each, its addresses by last sign-in, oldest first.
        self._users: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def __len__(self) -> int:
        """(username, address) pairs remembered."""
        return sum(len(clients) for clients in self._users.values())

    def add(self, *, username: str, client: str, now: float) -> None:
        """Remember that `username` signed in from `client` at `now`."""
        self._prune(now)
        clients = self._users.pop(username, None)
        if clients is None:
            clients = OrderedDict()
            if len(self._users) >= self._max_users:
                self._users.popitem(last=False)
        self._users[username] = clients
        clients.pop(client, None)
        clients[client] = now
        if len(clients) > self._per_user:
            clients.popitem(last=False)

    def recent(self, *, username: str, client: str, now: float) -> bool:
        """True when `username` signed in from `client` within the last `within` seconds."""
        self._prune(now)
        clients = self._users.get(username)
        at = clients.get(client) if clients is not None else None
        return at is not None and now - at < self.within

    def _prune(self, now: float) -> None:
        # Usernames are in order of their newest sign-in, which is the last of their addresses.
        while self._users:
            username, clients = next(iter(self._users.items()))
            if now - next(reversed(clients.values())) < self.within:
                return
            del self._users[username]


class LoginGuard:
    """Failure windows per client and per username; `check` before a login, `record_failure` after a
    failed one, `record_success` after a successful one.

    A username's window, once full, refuses every address except those the username signed in from
    within `trust_window` seconds: ten wrong passwords from a stranger must not lock the real user out
    (the dashboard sends the password with every request). The client's own window and the gate still
    hold those addresses. The price: whoever shares such an address (a NAT, an IPv6 /64) guesses at the
    client's rate, not the username's."""

    def __init__(
        self,
        *,
        client_limit: int,
        client_window: float,
        user_limit: int,
        user_window: float,
        trust_window: float = TRUST_SECONDS,
        trusted_users: int = MAX_TRACKED_KEYS,
        trusted_clients_per_user: int = TRUSTED_CLIENTS_PER_USER,
    ) -> None:
        self.clients = FailureWindow(limit=client_limit, window=client_window)
        self.users = FailureWindow(limit=user_limit, window=user_window)
        self.signed_in = RecentSignIns(
            within=trust_window, max_users=trusted_users, per_user=trusted_clients_per_user
        )

    @property
    def trusted_pairs(self) -> int:
        """(username, client) pairs exempt from the username's window (some may have expired)."""
        return len(self.signed_in)

    def check(self, *, client: str, username: str, now: float) -> Refusal | None:
        """A refusal when the client has failed too often lately, or the username has and the client has
        not signed in as it lately; else None."""
        wait = self.clients.retry_after(client, now=now)
        if wait is not None:
            return Refusal("client", _whole_seconds(wait))
        wait = self.users.retry_after(username, now=now)
        if wait is not None and not self.signed_in.recent(username=username, client=client, now=now):
            return Refusal("user", _whole_seconds(wait))
        return None

    def record_failure(self, *, client: str, username: str | None, now: float) -> list[str]:
        """Count a failed login; returns which of "client" and "user" it blocked (for a log line)."""
        blocked: list[str] = []
        if self.clients.record(client, now=now):
            blocked.append("client")
        if username is not None and self.users.record(username, now=now):
            blocked.append("user")
        return blocked

    def unlocked(self, username: str) -> None:
        """An admin unlocked `username`: this process forgets its failures too (other processes' windows end on
        their own, within `user_window`)."""
        self.users.forget(username)

    def record_success(self, *, client: str, username: str, now: float) -> None:
        """Remember a successful login, exempting (username, client) from the username's window for a day.

        It resets no count: not the client's (an attacker with one valid account would otherwise
        interleave its logins with guesses), nor the user's (a dashboard refreshing with the right password
        would reopen the window for the guesser elsewhere)."""
        self.signed_in.add(username=username, client=client, now=now)


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
