"""The rule bundle a box runs: the hub's latest it could verify, kept across restarts, or the safe default.

A bundle arrives retained on `marquee/v1/{site}/rules`. It is run only if it decodes, carries the hub's
signature (the hub's public key is in the box's configuration) and is newer than the one running; it is
then written to disk (atomically, 0600) before it replaces the running one, so a restart, even offline,
runs it again. A refused bundle changes nothing; the refusal is logged once and shown in the status.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.rules import MAX_BUNDLE_BYTES, RuleBundle, default_bundle
from protocol.signing import verify_bundle

log = logging.getLogger(__name__)



class RuleKeeper:
    """Holds the running bundle; `offer` a new one from the wire, `current` for every decision."""

    def __init__(self, path: Path, hub_key: Ed25519PublicKey | None, *, currency: str = "EUR") -> None:
        self.path = path
        self._hub_key = hub_key
        self._lock = threading.Lock()  # offers come from the MQTT thread; reads are a reference copy
        self.refusal: str | None = None
        self._current = self._load() or default_bundle(currency, datetime(2026, 1, 1, tzinfo=UTC))
        if self._current.version == 0:
            log.info("no rule bundle from the hub yet: running the built-in default (10 percent of ticket prices "
                     "earned, no redemption) until one arrives")

    @property
    def current(self) -> RuleBundle:
        """The bundle every decision uses now (replaced whole, never changed in place)."""
        return self._current

    def offer(self, payload: bytes) -> bool:
        """A bundle from the hub: True when it is now running; False (and `refusal` says why) otherwise."""
        with self._lock:
            try:
                bundle = self._verified(payload)
            except ValueError as exc:
                self._refuse(str(exc))
                return False
            if bundle.version <= self._current.version:
                if bundle.version < self._current.version:
                    self._refuse(f"bundle version {bundle.version} is older than the running {self._current.version}")
                return False  # the same bundle again (retained, re-delivered): nothing to do
            try:
                self._save(payload)
            except OSError as exc:
                # Running a bundle that a restart would forget would change the rules under the members twice.
                self._refuse(f"cannot keep bundle {bundle.version} on disk ({exc.strerror}); still running "
                             f"{self._current.version}")
                return False
            self._current = bundle
            self.refusal = None
        log.info("running rule bundle version %d (published %s)", bundle.version, bundle.published_at.isoformat())
        return True

    def _verified(self, payload: bytes) -> RuleBundle:
        if len(payload) > MAX_BUNDLE_BYTES:
            raise ValueError(f"bundle of {len(payload)} bytes is over {MAX_BUNDLE_BYTES}")
        try:
            bundle = RuleBundle.model_validate_json(payload)
        except ValidationError as exc:
            # Field locations and messages only: a bundle holds no card or personal data, but stay consistent.
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "bundle"
            raise ValueError(f"bundle does not fit this box's rules ({where}: {first['msg']}); a newer box "
                             "version may be needed") from exc
        if self._hub_key is None:
            raise ValueError("no hub_public_key in this box's configuration: cannot check the bundle's signature")
        try:
            verify_bundle(bundle, self._hub_key)
        except SignatureError as exc:
            raise ValueError(str(exc)) from exc
        return bundle

    def _refuse(self, reason: str) -> None:
        if reason != self.refusal:  # once per reason: a retained bad bundle comes back at every reconnect
            log.warning("rule bundle refused: %s", reason)
        self.refusal = reason

    def _save(self, payload: bytes) -> None:
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _load(self) -> RuleBundle | None:
        """The bundle kept on disk, checked again (a file edited by hand is refused like a forged one)."""
        try:
            payload = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._refuse(f"cannot read the kept bundle {self.path}: {exc.strerror}")
            return None
        try:
            bundle = self._verified(payload)
        except ValueError as exc:
            self._refuse(f"the kept bundle {self.path} is not valid: {exc}")
            return None
        log.info("running the kept rule bundle version %d", bundle.version)
        return bundle

