"""The member directory a box decides from offline: the hub's signed pages, applied in version order.

Pages arrive on `marquee/v1/{site}/members` (not retained). A page is applied only if it decodes, is
not addressed to another box of the site, and carries the hub's signature (the key that signs rule
bundles); a delta only on top of the version held. When the box lacks versions (new, offline while
deltas went by, a page lost) it asks with `DirectoryRequest(have=version)`: at start, at each (re)connect,
and on a gap, at most once per `ASK_EVERY_S` while no answer comes. A refused page changes nothing; the
refusal is counted and logged, never with the page's content.

Staff accounts come in the same pages; `staff`, `badge` and `staff_of_member` answer from memory, for every sale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.errors import StoreError
from edge.logthrottle import LogThrottle
from edge.store.directory import ApplyResult, Directory
from protocol.codec import decode
from protocol.directory import DirectoryEntry, DirectoryPage, DirectoryRequest
from protocol.errors import MalformedMessage, SignatureError
from protocol.signing import verify_directory_page
from protocol.staff import StaffEntry

log = logging.getLogger(__name__)
ASK_EVERY_S = 10.0
NO_KEY = "no hub_public_key in this box's configuration: cannot check the directory's signature"


class DirectoryKeeper:
    """Feeds the directory from the wire (`offer`), asks for what it lacks, and answers the sale path."""

    def __init__(
        self,
        directory: Directory,
        hub_key: Ed25519PublicKey | None,
        *,
        site_id: str,
        device_id: str,
        request: Callable[[DirectoryRequest], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`request` publishes a request to the hub; `clock` is monotonic seconds (a test may give its own)."""
        self.directory = directory
        self._hub_key = hub_key
        self._site, self._device = site_id, device_id
        self._request = request
        self._clock = clock
        self._lock = threading.Lock()  # pages come from the MQTT thread, requests also from start()
        self._asked_at: float | None = None  # the last request not yet answered
        self._said_no_key = False
        self._refusal_log = LogThrottle(log)
        self._store_log = LogThrottle(log)
        self._read_log = LogThrottle(log)
        self.counters: dict[str, int] = {
            "directory_pages_applied": 0,
            "directory_pages_partial": 0,
            "directory_pages_stale": 0,
            "directory_pages_refused": 0,
            "directory_pages_ignored": 0,
            "directory_gaps": 0,
            "directory_requests": 0,
            "directory_store_failures": 0,
        }
        self.refusal: str | None = NO_KEY if hub_key is None else None
        self.readable = True
        """False while the directory cannot be read: redemption then fails closed (earning goes on)."""
        self.on_removed: Callable[[list[str]], None] | None = None
        """Told the tokens a delta removed (an erased member's cards), to forget them everywhere."""

    def close(self) -> None:
        """Close the directory file."""
        self.directory.close()

    @property
    def version(self) -> int:
        """The directory version held (0: none yet)."""
        return self.directory.version

    def start(self) -> None:
        """Ask the hub for what the box lacks: at start and at each (re)connect, since deltas published
        while the box was away are not kept for it."""
        with self._lock:
            self._ask(force=True)

    def offer(self, payload: bytes) -> ApplyResult | None:
        """A page from the wire: what applying it did, or None when it was ignored or refused."""
        with self._lock:
            try:
                page = decode(DirectoryPage, payload)
            except MalformedMessage as exc:
                self._refuse(f"malformed page ({exc})")  # field locations only, never values
                return None
            if page.for_device is not None and page.for_device != self._device:
                self.counters["directory_pages_ignored"] += 1  # the answer to another box's request
                return None
            if self._hub_key is None:
                self.counters["directory_pages_refused"] += 1
                self.refusal = NO_KEY
                if not self._said_no_key:  # the configuration will not change while the box runs: once
                    self._said_no_key = True
                    log.warning("member directory page refused: %s", NO_KEY)
                return None
            try:
                verify_directory_page(page, self._hub_key)
            except SignatureError as exc:
                self._refuse(str(exc))
                return None
            try:
                result = self.directory.apply(page)
            except StoreError as exc:
                self.counters["directory_store_failures"] += 1
                self._store_log.error("member directory cannot keep page %d/%d of version %d: %s",
                                      page.page, page.pages, page.version, exc)
                return None
            self._store_log.recovered("member directory keeps pages again")
            self._accepted(result)
        if result == "applied" and page.removed and self.on_removed is not None:
            self.on_removed(list(page.removed))
        return result

    def _accepted(self, result: ApplyResult) -> None:
        if result == "gap":
            self.counters["directory_gaps"] += 1
            self._ask(force=False)
            return
        self.counters[f"directory_pages_{result}"] += 1
        if result == "applied":
            self._asked_at = None  # answered: a later gap may ask at once
            if self.refusal is not None:
                self.refusal = None
                self._refusal_log.recovered("member directory pages accepted again (version %d)", self.version)
        elif result == "partial":
            self._asked_at = self._clock()  # an answer is arriving: asking again would start another

    def _refuse(self, reason: str) -> None:
        self.counters["directory_pages_refused"] += 1
        self.refusal = reason
        self._refusal_log.warning("member directory page refused: %s", reason)

    def _ask(self, *, force: bool) -> None:
        now = self._clock()
        if not force and self._asked_at is not None and now - self._asked_at < ASK_EVERY_S:
            return
        self._asked_at = now
        self.counters["directory_requests"] += 1
        try:
            self._request(DirectoryRequest(have=self.directory.version))
        except Exception:  # a request lost is asked again at the next gap or connect
            log.exception("could not ask the hub for the member directory")

    def staff(self, staff_id: str) -> StaffEntry | None:
        """The staff account with this cashier code (whatever its status), or None."""
        return self.directory.team.by_id.get(staff_id)

    def badge(self, token: str) -> StaffEntry | None:
        """The staff member whose badge this card token is, or None."""
        return self.directory.team.by_badge.get(token)

    def staff_of_member(self, member_id: str) -> StaffEntry | None:
        """The staff member whose own loyalty membership `member_id` is, or None."""
        return self.directory.team.by_member.get(member_id)

    def member(self, token: str) -> tuple[DirectoryEntry | None, list[str]]:
        """A card's directory entry and every token of its member (just `token` when it is unknown).

        A directory that cannot be read counts as not knowing the card: the sale is still recorded and
        earns, with the balance this box's own ledger gives."""
        try:
            entry = self.directory.lookup(token)
            tokens = sorted({token, *self.directory.tokens_of(entry.member_id)}) if entry is not None else [token]
        except StoreError as exc:
            self.readable = False
            self._read_log.error("member directory cannot be read (%s); deciding from this box's ledger", exc)
            return None, [token]
        self.readable = True
        self._read_log.recovered("member directory reads again")
        return entry, tokens
