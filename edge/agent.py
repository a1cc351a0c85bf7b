"""The composition: wires the tills' lines and readers, the desk that decides (edge/desk.py), the journal,
the rules and member directory from the hub, and the uplink together. Nothing here decides.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import __version__
from edge.blocklist import BlocklistKeeper
from edge.clock import clock_synchronised
from edge.desk import Desk
from edge.devices.pos import NAK, PosControl, PosFrame
from edge.directory import DirectoryKeeper
from edge.errors import FrameError
from edge.localstatus import SOCKET_NAME, StatusSocket
from edge.peripherals import Peripherals, Writer
from edge.redeem import resend, retry_reversals
from edge.rules import RuleKeeper
from edge.settings import EdgeSettings
from edge.store.bootstrap import open_identity
from edge.store.directory import Directory
from edge.store.journal import Journal
from edge.sync.uplink import Uplink
from protocol.cards import CardId
from protocol.messages import DeviceStatus
from protocol.signing import parse_public_key

log = logging.getLogger(__name__)


class Agent:
    """One site box: `start()`, then `stop()`; `handle_sale` is the decision path, callable directly."""

    def __init__(
        self, settings: EdgeSettings, *, journal: Journal, pepper: bytes, identity: Ed25519PrivateKey | None = None
    ) -> None:
        self.settings = settings
        self.journal = journal
        hub_key = parse_public_key(settings.hub_public_key) if settings.hub_public_key else None
        self.rules = RuleKeeper(settings.data_dir / "rules.json", hub_key, currency=settings.currency)
        self.blocklist = BlocklistKeeper(settings.data_dir / "blocklist.json", hub_key)
        self.directory = DirectoryKeeper(
            Directory(settings.data_dir / "directory.db", journal.sealer), hub_key, site_id=settings.site_id,
            device_id=settings.device_id, request=lambda request: self.uplink.publish_request(request))
        self._clock_ok = clock_synchronised()
        self._clock_checked = time.monotonic()
        identity = identity if identity is not None else open_identity(settings, create=True)
        self.uplink = Uplink(settings=settings, journal=journal, status=self.status, identity=identity,
                             on_rules=self.rules.offer, on_members=self.directory.offer,
                             on_connected=self.directory.start, on_blocklist=self.blocklist.offer)
        self.desk = Desk(settings, journal=journal, rules=self.rules, directory=self.directory, pepper=pepper,
                         clock_ok=self._clock_state, notify=self.uplink.notify,
                         blocklist=lambda: self.blocklist.current)
        self.counters = self.desk.counters
        self.directory.on_removed = self.desk.forget_cards
        self._ticker = threading.Event()
        self._ticks: threading.Thread | None = None
        self.peripherals = Peripherals(settings, on_card=self._card_read, on_pos=self._pos_item)
        self._status_socket = StatusSocket(
            settings.data_dir / SOCKET_NAME, lambda: self.status(True).model_dump_json(by_alias=True).encode())

    def start(self) -> None:
        """Open every till's lines and readers, listen for TCP tills, and start syncing."""
        # The fraud rules' memory of the day, read from the journal before the first till asks, not during it.
        self.desk.guard.window_for(self.rules.current, datetime.now(UTC))
        self.peripherals.start()
        self.uplink.start()
        self._status_socket.start()
        self._ticker.clear()
        self._ticks = threading.Thread(target=self._tick, name="holds", daemon=True)
        self._ticks.start()
        log.info("site %s box %s running with %d till(s)", self.settings.site_id, self.settings.device_id,
                 len(self.desk.tills))

    def stop(self) -> None:
        """Close the lines, say offline to the hub, close the journal."""
        self._status_socket.stop()
        self._ticker.set()
        if self._ticks is not None:
            self._ticks.join(timeout=5)
        self.peripherals.stop()
        self.uplink.stop()
        self.journal.close()
        self.directory.close()

    def _card_read(self, till_id: str, card: CardId, reader: str, window_s: float) -> bool:
        return self.present_card(till_id, card, reader=reader, window_s=window_s)

    def _tick(self) -> None:
        # Holds the till never confirmed lapse within about a second of their time.
        while not self._ticker.wait(1.0):
            try:
                self.desk.expire_holds()
                retry_reversals(self.desk)
            except Exception:  # the top of a long-running loop: never let it die
                log.exception("releasing lapsed holds failed; trying again")

    def _pos_item(self, till_id: str, line: Writer, item: object) -> None:
        till = self.desk.tills[till_id]
        if isinstance(item, PosFrame):
            till.last_answer = self.desk.handle(till_id, item.payload)
            till.answer_resends = 0
            line.write(till.last_answer)
        elif isinstance(item, FrameError) and item.kind == "checksum":
            # A complete frame damaged on the wire: the till resends it byte for byte.
            self.counters["naks"] += 1
            line.write(bytes([NAK]))
        elif isinstance(item, FrameError):
            # Noise, a cut or oversized frame, a timeout: silence (the line counts it by kind). A NAK
            # here would make a till resend a request it may already have had answered.
            pass
        elif isinstance(item, PosControl) and item.is_nak and till.last_answer is not None:
            # The till got our answer damaged: send it again, at most 3 times (docs/pos-protocol.md).
            if till.answer_resends < 3:
                till.answer_resends += 1
                self.counters["answers_resent"] += 1
                line.write(resend(self.desk, till_id) or till.last_answer)

    def present_card(self, till_id: str, card: CardId, *, reader: str = "", window_s: float = 0.5,
                     now: float | None = None) -> bool:
        """A card was read at a till (see `Desk.present_card`)."""
        return self.desk.present_card(till_id, card, reader=reader, window_s=window_s, now=now)

    def handle_sale(self, till_id: str, payload: bytes, *, now: float | None = None,
                    received: float | None = None) -> bytes:
        """Decide, journal and answer one POS request (a sale, or v1.1 a redeem or a cancel); the answer frame."""
        return self.desk.handle(till_id, payload, now=now, received=received)

    @property
    def last_decision_ms(self) -> float:
        return self.desk.last_decision_ms

    def _clock_state(self) -> bool:
        if time.monotonic() - self._clock_checked > 60:
            self._clock_ok = clock_synchronised()
            self._clock_checked = time.monotonic()
        return self._clock_ok

    def status(self, online: bool) -> DeviceStatus:
        """The heartbeat the uplink publishes (retained), and the last will when `online` is False."""
        stats = self.journal.stats()
        health = self.peripherals.health()
        try:
            disk_free: int | None = shutil.disk_usage(self.settings.data_dir).free
        except OSError:
            disk_free = None
        return DeviceStatus(
            site_id=self.settings.site_id,
            device_id=self.settings.device_id,
            online=online,
            sent_at=datetime.now(UTC),
            clock_ok=self._clock_ok,
            version=__version__,
            last_seq=stats.last_seq,
            acked_seq=stats.acked_seq,
            backlog=stats.backlog,
            quarantined=stats.quarantined,
            disk_free_bytes=disk_free,
            rules_version=self.rules.current.version,
            rules_refusal=self.rules.refusal[:300] if self.rules.refusal else None,
            directory_version=self.directory.version,
            peripherals={name: device.state for name, device in health.items()},
            peripheral_health=health,
            counters={**self.counters, **self.directory.counters, **self.blocklist.counters,
                      **self.desk.guard.counters},
        )
