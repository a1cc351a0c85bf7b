"""HTTP Basic without Argon2 on every request: (username, password) pairs verified lately, in memory.

A pair is remembered under an HMAC of both with a random key of this process (so memory holds no password,
and no stable hash of one), with the password hash it was verified against. A hit counts only while the
user's stored hash is still that one and the user is neither disabled nor locked, which the caller checks
with one indexed read: a changed password, a disabled or a locked account fall back to Argon2 at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict

MAX_PAIRS = 4096
"""Pairs remembered; the least recently used is forgotten first (only right passwords get in)."""


class VerifiedPasswords:
    """Pairs verified within `ttl` seconds; used from the event loop only, so it needs no lock."""

    def __init__(self, *, ttl: float, max_pairs: int = MAX_PAIRS) -> None:
        self.ttl = ttl
        self._max = max_pairs
        self._key = os.urandom(32)
        self._pairs: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pairs)

    def _name(self, username: str, password: str) -> bytes:
        # The username's length first, so that ("ab", "c") and ("a", "bc") never share a name.
        message = f"{len(username)}:{username}{password}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, username: str, password: str, *, now: float) -> str | None:
        """The password hash the pair was verified against, when it was within `ttl`; else None."""
        if self.ttl <= 0:
            return None
        name = self._name(username, password)
        held = self._pairs.get(name)
        if held is None:
            return None
        password_hash, at = held
        if now - at >= self.ttl:
            del self._pairs[name]
            return None
        self._pairs.move_to_end(name)
        return password_hash

    def put(self, username: str, password: str, password_hash: str, *, now: float) -> None:
        """Remember that the pair matched `password_hash` at `now`."""
        if self.ttl <= 0:
            return
        name = self._name(username, password)
        self._pairs.pop(name, None)
        self._pairs[name] = (password_hash, now)
        while len(self._pairs) > self._max:
            self._pairs.popitem(last=False)

    def forget(self, username: str, password: str) -> None:
        """Forget the pair (its user changed)."""
        self._pairs.pop(self._name(username, password), None)
