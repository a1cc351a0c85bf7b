"""Sends the member directory to the boxes: each new change (a card's entry or a staff account) as a signed
delta to every site, and to a box that asks (`DirectoryRequest`) the deltas it lacks, or a snapshot in pages
when the change log no longer reaches back to its version (every staff account on its first page).

Runs on its own thread beside ingest (a snapshot of a million cards must not hold up acks). Several hub
processes may each run one: a box applies a delta once and ignores repeats as stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from cloud.bundles import load_signing_key, site_ids
from cloud.db.schema import devices, member_cards
from cloud.errors import HubError
from cloud.members.directory import (
    Change,
    changes_after,
    current_version,
    oldest_change,
    snapshot_entries,
    staff_entries,
)
from protocol.codec import decode, encode
from protocol.directory import MAX_PAGE_ENTRIES, PAGE_ENTRIES, DirectoryEntry, DirectoryPage, DirectoryRequest
from protocol.errors import ProtocolError
from protocol.signing import sign_directory_page
from protocol.staff import StaffEntry
from protocol.topics import parse_topic, site_topic

log = logging.getLogger(__name__)
Publish = Callable[[str, bytes], bool]
POLL_SECONDS = 0.5
REQUEST_INTERVAL_SECONDS = 5.0
"""A box's requests answered at most this often (a snapshot is large)."""
MAX_WAITING_REQUESTS = 10_000
"""Boxes whose asks wait for an answer at once; more are refused (they ask again)."""


class DirectoryPublisher:
    """`start()`, `offer_request(topic, payload)` from the MQTT thread, `notify()` after a change, `stop()`."""

    def __init__(self, engine: sa.Engine, key_file: Any, publish: Publish) -> None:
        self._engine = engine
        self._key_file = key_file
        self._publish = publish
        self._key: Ed25519PrivateKey | None = None
        self._requests: dict[str, tuple[str, int]] = {}  # by device: its latest ask (site, have)
        self._requests_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._published: int | None = None
        self._answered: dict[str, float] = {}
        self._key_problem: str | None = None
        self._staff_cut = False
        self.counters = {"deltas": 0, "snapshots": 0, "pages": 0, "requests": 0, "requests_refused": 0,
                         "entries_refused": 0, "staff_refused": 0}

    def start(self) -> None:
        if self._thread is None:
            # Where to publish from, known before anything can change: a change made while the thread starts
            # is published, not taken for one the boxes already have.
            try:
                with self._engine.connect() as conn:
                    self._published = current_version(conn)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("directory publisher: %s; it starts from the version it reads first",
                            str(exc).splitlines()[0][:200])
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="directory-publisher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def notify(self) -> None:
        """Something changed: publish without waiting for the next poll."""
        self._wake.set()

    def offer_request(self, topic: str, payload: bytes) -> None:
        """A box's request, from the MQTT thread: checked for shape here, answered on the publisher's thread."""
        try:
            ref = parse_topic(topic)
            request = decode(DirectoryRequest, payload)
        except ProtocolError:
            self.counters["requests_refused"] += 1
            return
        if ref.site_id is None or ref.device_id is None:
            return
        with self._requests_lock:
            if ref.device_id not in self._requests and len(self._requests) >= MAX_WAITING_REQUESTS:
                self.counters["requests_refused"] += 1
                return
            self._requests[ref.device_id] = (ref.site_id, request.have)  # a newer ask replaces an older one
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                if self._signing_key() is None:
                    continue
                self._publish_new()  # every site's deltas first: a box's snapshot must not hold them up
                with self._requests_lock:
                    asks, self._requests = self._requests, {}
                for device_id, (site_id, have) in asks.items():
                    self._answer(site_id, device_id, have)
                    self._publish_new()
            except (sa.exc.SQLAlchemyError, HubError) as exc:
                log.warning("directory publisher: %s", str(exc).splitlines()[0][:200])
                time.sleep(1)
            except Exception:  # the top of a long-running loop: never let it die
                log.exception("directory publisher failed; retrying")
                time.sleep(1)

    def _signing_key(self) -> Ed25519PrivateKey | None:
        if self._key is None:
            try:
                self._key = load_signing_key(self._key_file)
            except HubError as exc:
                if self._key_problem != str(exc):
                    log.warning("member directory not published: %s", exc)
                    self._key_problem = str(exc)
                return None
        return self._key

    def _send(self, sites: list[str], page: DirectoryPage) -> None:
        key = self._signing_key()
        assert key is not None
        payload = encode(sign_directory_page(page, key))
        for site in sites:
            self._publish(site_topic(site, "members"), payload)
        self.counters["pages"] += 1

    def _publish_new(self) -> None:
        with self._engine.connect() as conn:
            if self._published is None:
                self._published = current_version(conn)  # boxes that lack older ones ask
                return
            changes = changes_after(conn, self._published, limit=PAGE_ENTRIES)
            if not changes:
                return
            sites = site_ids(conn)
        page = self._delta(self._published, changes)
        self._send(sites, page)
        self.counters["deltas"] += 1
        self._published = page.version
        self._wake.set()  # more may be waiting

    def _answer(self, site_id: str, device_id: str, have: int) -> None:
        now = time.monotonic()
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot of the tables for the version and every entry read below (set before the
                # first statement: a transaction's isolation cannot change once it began).
                conn.execution_options(isolation_level="REPEATABLE READ")
            registered = conn.execute(sa.select(devices.c.site_id, devices.c.revoked_at)
                                      .where(devices.c.device_id == device_id)).first()
            if registered is None or registered.site_id != site_id or registered.revoked_at is not None:
                self.counters["requests_refused"] += 1
                return
            if now - self._answered.get(device_id, -1e9) < REQUEST_INTERVAL_SECONDS:
                return
            self._answered[device_id] = now
            self.counters["requests"] += 1
            current = current_version(conn)
            if have == current:
                return
            if 0 < have < current and oldest_change(conn) <= have + 1:
                while have < current:
                    changes = changes_after(conn, have, limit=PAGE_ENTRIES)
                    if not changes:
                        break
                    page = self._delta(have, changes).model_copy(update={"for_device": device_id})
                    self._send([site_id], page)
                    have = page.version
                return
            self._snapshot(conn, site_id, device_id, current)

    def _snapshot(self, conn: sa.Connection, site_id: str, device_id: str, version: int) -> None:
        # Streamed page by page (a million cards are 500 pages): counted first, in the same snapshot of the
        # tables, since every page says how many there are.
        total = conn.execute(sa.select(sa.func.count()).select_from(member_cards)).scalar_one()
        pages = max(1, -(-int(total) // PAGE_ENTRIES))
        team = self._all_staff(conn)  # on the first page: a box switches to them with the page's members
        batch: list[DirectoryEntry] = []
        number = 0
        for entry in snapshot_entries(conn):
            checked = self._entry(entry)
            if checked is not None:
                batch.append(checked)
            if len(batch) == PAGE_ENTRIES and number + 1 < pages:
                number += 1
                self._send([site_id], DirectoryPage(kind="snapshot", version_from=0, version=version, page=number,
                                                    pages=pages, entries=batch, staff=team if number == 1 else [],
                                                    for_device=device_id))
                batch = []
        while number + 1 < pages:  # entries refused above: the page count stands, pages may be short
            number += 1
            self._send([site_id], DirectoryPage(kind="snapshot", version_from=0, version=version, page=number,
                                                pages=pages, entries=batch, staff=team if number == 1 else [],
                                                for_device=device_id))
            batch = []
        self._send([site_id], DirectoryPage(kind="snapshot", version_from=0, version=version, page=pages,
                                            pages=pages, entries=batch, staff=team if pages == 1 else [],
                                            for_device=device_id))
        self.counters["snapshots"] += 1

    def _all_staff(self, conn: sa.Connection) -> list[StaffEntry]:
        checked = [self._staff(entry) for entry in staff_entries(conn).values()]
        team = [entry for entry in checked if entry is not None]
        if len(team) > MAX_PAGE_ENTRIES:
            # A page holds at most this many; the rest reach boxes as deltas when they change.
            if not self._staff_cut:
                log.error("%d staff accounts: a snapshot carries the first %d only", len(team), MAX_PAGE_ENTRIES)
                self._staff_cut = True
            team = team[:MAX_PAGE_ENTRIES]
        return team

    def _entry(self, entry: dict[str, Any]) -> DirectoryEntry | None:
        """An entry as boxes take it; None (logged once per card and counted) for one they could not."""
        try:
            return DirectoryEntry.model_validate(entry)
        except ValidationError as exc:
            self.counters["entries_refused"] += 1
            fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
            log.error("a directory entry cannot be sent to the boxes (fields: %s); they keep the previous one",
                      fields[:200])
            return None

    def _staff(self, entry: dict[str, Any]) -> StaffEntry | None:
        """A staff account as boxes take it; None (logged once per account and counted) for one they could not."""
        try:
            return StaffEntry.model_validate(entry)
        except ValidationError as exc:
            self.counters["staff_refused"] += 1
            fields = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
            log.error("a staff account cannot be sent to the boxes (fields: %s); they keep the previous one",
                      fields[:200])
            return None

    def _delta(self, version_from: int, changes: list[Change]) -> DirectoryPage:
        latest: dict[str, dict[str, Any] | None] = {}
        team: dict[str, dict[str, Any] | None] = {}
        for change in changes:
            if change.staff_id is not None:
                team[change.staff_id] = change.entry
            elif change.token is not None:
                latest[change.token] = change.entry
        entries = [self._entry(entry) for entry in latest.values() if entry is not None]
        staff = [self._staff(entry) for entry in team.values() if entry is not None]
        return DirectoryPage(
            kind="delta", version_from=version_from, version=changes[-1].version,
            entries=[entry for entry in entries if entry is not None],
            removed=[token for token, entry in latest.items() if entry is None],
            staff=[entry for entry in staff if entry is not None],
            staff_removed=[staff_id for staff_id, entry in team.items() if entry is None],
        )
