"""The chain's blocklist at the box: the hub's newest it could verify, kept across restarts, applied offline.

It arrives retained on `marquee/v1/chain/blocklist`. It is taken only if it decodes, carries the hub's
signature (the key that signs rule bundles) and is newer than the one held; it is then written to disk
(atomically, 0600) before it replaces the one in use, so a restart, even offline, applies it again. A refused
one changes nothing; the refusal is counted, logged once per reason, and kept in `refusal`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.blocklist import Blocklist
from protocol.codec import decode
from protocol.errors import MalformedMessage, SignatureError
from protocol.signing import verify_blocklist

log = logging.getLogger(__name__)
NO_KEY = "no hub_public_key in this box's configuration: cannot check the blocklist's signature"


class BlocklistKeeper:
    """Holds the blocklist in use; `offer` a new one from the wire, `lists` on every sale."""

    def __init__(self, path: Path, hub_key: Ed25519PublicKey | None) -> None:
        self.path = path
        self._hub_key = hub_key
        self._lock = threading.Lock()  # offers come from the MQTT thread; reads are a reference copy
        self.refusal: str | None = None
        self.counters: dict[str, int] = {"blocklist_version": 0, "blocklist_applied": 0, "blocklist_refused": 0}
        self._current = self._load()
        if self._current is not None:
            self.counters["blocklist_version"] = self._current.version

    @property
    def current(self) -> Blocklist | None:
        """The blocklist in use (replaced whole, never changed in place); None before the hub's first."""
        return self._current

    @property
    def version(self) -> int:
        """The version in use (0: none yet)."""
        current = self._current
        return current.version if current is not None else 0

    def lists(self, token: str | None, member_id: str | None) -> bool:
        """True when the card token or its member is on the blocklist in use."""
        current = self._current
        return current is not None and current.lists(token, member_id)

    def offer(self, payload: bytes) -> bool:
        """A blocklist from the hub: True when it is now in use; False (and `refusal` says why) otherwise."""
        with self._lock:
            try:
                listed = self._verified(payload)
            except ValueError as exc:
                self._refuse(str(exc))
                return False
            if listed.version <= self.version:
                if listed.version < self.version:
                    self._refuse(f"blocklist version {listed.version} is older than the one in use ({self.version})")
                return False  # the same one again (retained, delivered at every connection): nothing to do
            try:
                _write_atomically(self.path, payload)
            except OSError as exc:
                # Applying a list that a restart would forget would decline a card now and not after a reboot.
                self._refuse(f"cannot keep blocklist version {listed.version} on disk ({exc.strerror}); still "
                             f"using version {self.version}")
                return False
            self._current = listed
            self.refusal = None
            self.counters["blocklist_version"] = listed.version
            self.counters["blocklist_applied"] += 1
        log.info("blocklist version %d in use: %d card(s), %d member(s)", listed.version, len(listed.cards),
                 len(listed.members))
        return True

    def _verified(self, payload: bytes) -> Blocklist:
        try:
            listed = decode(Blocklist, payload)  # field locations only in its message, never values
        except MalformedMessage as exc:
            raise ValueError(f"malformed blocklist ({exc})") from exc
        if self._hub_key is None:
            raise ValueError(NO_KEY)
        try:
            verify_blocklist(listed, self._hub_key)
        except SignatureError as exc:
            raise ValueError(str(exc)) from exc
        return listed

    def _refuse(self, reason: str) -> None:
        self.counters["blocklist_refused"] += 1
        if reason != self.refusal:  # once per reason: a retained bad one comes back at every reconnect
            log.warning("blocklist refused: %s", reason)
        self.refusal = reason

    def _load(self) -> Blocklist | None:
        """The blocklist kept on disk, checked again (a file edited by hand is refused like a forged one)."""
        try:
            payload = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._refuse(f"cannot read the kept blocklist {self.path}: {exc.strerror}")
            return None
        try:
            listed = self._verified(payload)
        except ValueError as exc:
            self._refuse(f"the kept blocklist {self.path} is not valid: {exc}")
            return None
        log.info("using the kept blocklist version %d", listed.version)
        return listed


def _write_atomically(path: Path, payload: bytes) -> None:
    """`payload` in `path`, owner-only, whole or not at all, and still there after a power cut."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:  # a large list may take several writes: the file object loops
        os.fchmod(fd, 0o600)  # a leftover temporary file may have had another mode
        file.write(payload)
        file.flush()
        os.fsync(fd)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
