"""A virtual cinema site: a card reader and a till on pseudo-terminals, selling like a busy box office.

Used by the demo and the end-to-end tests. It plays the devices' side of the lines: RDM6300 frames on the
card link, framed JSON sale requests on the POS link, waiting for the agent's answers (docs/pos-protocol.md).
"""

from __future__ import annotations

import logging
import random
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.devices import pos, rdm6300
from edge.devices.pty import PtyEnd, create_pty_link
from edge.errors import FrameError, PosRequestError

__all__ = [
    "PtyEnd", "SimStats", "SiteSimulator", "create_pty_link", "member_card_ids", "run_simulator_forever",
]

logger = logging.getLogger(__name__)

MAX_RESENDS = 3  # the POS resends a NAKed frame at most 3 times (docs/pos-protocol.md)
CARD_RATE = 0.7  # share of sales where the customer shows a loyalty card

# Invented titles; any likeness to a real film is accidental.
FILM_TITLES = [
    "The Clockmaker's Garden", "Harbour of Glass", "Seven Winters North", "Marigold Street",
    "Beyond the Salt Flats", "A Kite for Tomasz", "Orbital Drift", "Copper Valley Nights",
    "The Quiet Engine", "Lanterns on the Water", "Paper Astronauts", "The Ninth Lighthouse",
]
TICKETS = {"TKT-STD": 1250, "TKT-STU": 1000, "TKT-CHD": 900, "TKT-PRM": 1600}
TICKET_WEIGHTS = [55, 15, 20, 10]
CONCESSIONS = {
    "POP-S": ("Popcorn S", 450), "POP-M": ("Popcorn M", 550), "POP-L": ("Popcorn L", 650),
    "DRK-S": ("Soft drink S", 350), "DRK-L": ("Soft drink L", 450), "WTR": ("Still water", 350),
    "NACHO": ("Nachos with cheese", 750), "COMBO": ("Popcorn M + drink L", 850),
}


def member_card_ids(seed: int | None, members: int) -> list[str]:
    """The simulated members' card ids: distinct 10-hex RDM6300 ids, the same for the same seed."""
    rng = random.Random(f"marquee-members-{seed}" if seed is not None else secrets.randbits(64))
    ids: dict[str, None] = {}
    while len(ids) < members:
        ids[f"{rng.choice((0x1A, 0x3C, 0x67, 0x84)):02X}{rng.getrandbits(32):08X}"] = None
    return list(ids)


@dataclass(frozen=True, slots=True)
class Showing:
    film: str
    hall: str
    showtime: datetime


@dataclass
class SimStats:
    """What the simulator did and saw; `stats["answered"]` works as well as `stats.answered`."""

    sales_sent: int = 0
    answered: int = 0
    unanswered: int = 0
    gave_up: int = 0  # NAKed more than MAX_RESENDS times
    interrupted: int = 0  # stop() came while waiting for an answer
    ok: int = 0
    rejected: int = 0
    errors: int = 0
    naks: int = 0
    resends: int = 0
    corrupted_sent: int = 0
    bad_answers: int = 0
    stale_answers: int = 0
    cards_presented: int = 0
    card_frames: int = 0
    noise_bursts: int = 0
    points_seen: int = 0
    answer_ms_max: float = 0.0
    answer_ms_total: float = 0.0
    by_loyalty: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict, for logs and JSON."""
        return asdict(self)


class SiteSimulator:
    """One till and its card reader on two pty links; `start()` sells in the background, `run_sales` now.

    `noise` is the chance that a card presentation is preceded by line garbage; half of it is the chance
    that a sale frame first goes out with a damaged LRC. `pace` scales the human pauses (tests use 0.01).
    """

    def __init__(
        self,
        *,
        card_link: Path,
        pos_link: Path,
        till_id: str = "t1",
        seed: int | None = None,
        sales_per_minute: float = 30,
        currency: str = "EUR",
        members: int = 50,
        noise: float = 0.02,
        answer_timeout: float = 2.0,
        pace: float = 1.0,
        run_id: str | None = None,
    ) -> None:
        if not re.fullmatch(pos.ID_PATTERN, till_id):
            raise ValueError(f"till id {till_id!r} does not match {pos.ID_PATTERN}")
        self.card_link = Path(card_link)
        self.pos_link = Path(pos_link)
        self.till_id = till_id
        self.currency = currency
        self.sales_per_minute = sales_per_minute
        self.noise = noise
        self.answer_timeout = answer_timeout
        self.pace = pace  # scales the human pauses; tests use a small value
        self.run_id = run_id or secrets.token_hex(3)  # never from the seed: sale ids must differ per run
        self.member_cards = member_card_ids(seed, members)
        self._rng = random.Random(seed)
        self._showings = self._programme()
        self._sale_no = 0
        self._stats = SimStats()
        self._card: PtyEnd | None = None
        self._pos: PtyEnd | None = None
        self._parser = pos.PosFrameParser()
        self._lock = threading.Lock()  # one sale at a time, whoever drives
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> SimStats:
        """A snapshot of the counters."""
        # No lock: the sale lock is held for a whole sale, and a snapshot a few counts stale is fine.
        return replace(self._stats, by_loyalty=dict(self._stats.by_loyalty))

    def open(self) -> None:
        """Create the two pty links (idempotent); start() and run_sales() call it."""
        if self._card is None:
            self._card = create_pty_link(self.card_link)
        if self._pos is None:
            self._pos = create_pty_link(self.pos_link)

    def start(self) -> None:
        """Open the links and sell in a background thread at about `sales_per_minute`."""
        self.open()
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"simulator-{self.till_id}", daemon=True)
        self._thread.start()
        logger.info(
            "simulator for till %s started (card %s, pos %s)", self.till_id, self.card_link, self.pos_link
        )

    def stop(self) -> None:
        """Stop selling, close the ptys (the agent sees the lines hang up) and remove the links."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.answer_timeout + 5)
            self._thread = None
        with self._lock:
            for end in (self._card, self._pos):
                if end is not None:
                    end.close()
            self._card = self._pos = None
        logger.info("simulator for till %s stopped: %s", self.till_id, self.stats.as_dict())

    def run_sales(self, n: int) -> SimStats:
        """Perform `n` sales synchronously (no pause between sales) and return the stats."""
        if self._stop.is_set():
            return self.stats  # stop() is final
        self.open()
        for _ in range(n):
            if self._stop.is_set():
                break
            self._sale()
        return self.stats

    # ------------------------------------------------------------ one sale

    def _run(self) -> None:
        mean_gap = 60.0 / self.sales_per_minute if self.sales_per_minute > 0 else 60.0
        while not self._stop.is_set():
            try:
                self._sale()
            except Exception:
                logger.exception("simulator: a sale failed")
            self._stop.wait(self._rng.expovariate(1.0 / mean_gap))

    def _sale(self) -> None:
        with self._lock:
            if self._card is None or self._pos is None:
                return
            card = self._rng.choice(self.member_cards) if self._rng.random() < CARD_RATE else None
            if card is not None:
                self._present_card(self._card, card)
                # A cashier takes a moment between the beep and the total; the agent also needs the card
                # to arrive before the sale it belongs to, so keep a floor whatever the pace.
                self._stop.wait(max(0.02, self._rng.uniform(0.3, 1.5) * self.pace))
            request = self._build_request()
            self._transact(self._pos, request)

    def _present_card(self, end: PtyEnd, card: str) -> None:
        self._stats.cards_presented += 1
        if self.noise > 0 and self._rng.random() < self.noise:
            self._stats.noise_bursts += 1
            end.write(self._rng.randbytes(self._rng.randint(1, 12)))
        frame = rdm6300.encode_frame(card)
        for _ in range(self._rng.randint(2, 4)):  # the module repeats while the card is in the field
            end.write(frame)
            self._stats.card_frames += 1
            self._stop.wait(0.05 * self.pace)
        logger.debug("simulator: card %s presented", pos.mask_card_id(card))

    def _transact(self, end: PtyEnd, request: pos.SaleRequest) -> None:
        frame = pos.encode_request(request)
        self._drain(end)
        first = frame
        if self.noise > 0 and self._rng.random() < self.noise / 2:
            first = frame[:-1] + bytes([frame[-1] ^ 0x5A])  # a line glitch the agent must NAK
            self._stats.corrupted_sent += 1
        self._stats.sales_sent += 1
        sent_at = time.monotonic()
        end.write(first)
        resends = 0
        deadline = sent_at + self.answer_timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stats.unanswered += 1  # fail open: the till completes the sale without loyalty
                logger.debug("simulator: sale %s unanswered", request.sale_id)
                return
            for item in self._parser.feed(end.read_available(min(remaining, 0.1))):
                if isinstance(item, pos.PosControl):
                    if not item.is_nak:
                        continue
                    self._stats.naks += 1
                    if resends >= MAX_RESENDS:
                        self._stats.gave_up += 1
                        logger.info(
                            "simulator: sale %s NAKed %d times; giving up",
                            request.sale_id, resends + 1
                        )
                        return
                    resends += 1
                    self._stats.resends += 1
                    end.write(frame)
                    deadline = time.monotonic() + self.answer_timeout
                elif isinstance(item, FrameError):
                    self._stats.bad_answers += 1
                    end.write(bytes([pos.NAK]))
                elif self._answered(end, request, item, sent_at):
                    return
        self._stats.interrupted += 1  # stop() while waiting for the answer

    def _answered(self, end: PtyEnd, request: pos.SaleRequest, frame: pos.PosFrame, sent_at: float) -> bool:
        try:
            answer = pos.parse_answer(frame.payload)
        except PosRequestError as exc:
            self._stats.bad_answers += 1
            logger.warning("simulator: unreadable answer: %s", exc)
            return False
        if answer.sale_id != request.sale_id:
            self._stats.stale_answers += 1  # a late answer to a sale we already gave up on
            return False
        end.write(bytes([pos.ACK]))
        elapsed_ms = (time.monotonic() - sent_at) * 1000
        stats = self._stats
        stats.answered += 1
        stats.answer_ms_total += elapsed_ms
        stats.answer_ms_max = max(stats.answer_ms_max, elapsed_ms)
        stats.ok += answer.status == "ok"
        stats.rejected += answer.status == "rejected"
        stats.errors += answer.status == "error"
        if answer.loyalty is not None:
            stats.by_loyalty[answer.loyalty.status] = stats.by_loyalty.get(answer.loyalty.status, 0) + 1
            stats.points_seen += answer.loyalty.points
        logger.debug("simulator: sale %s answered %s in %.1f ms", request.sale_id, answer.status, elapsed_ms)
        return True

    def _drain(self, end: PtyEnd) -> None:
        # Late answers to earlier sales are read (and discarded as stale) before a new sale starts.
        for item in self._parser.feed(end.read_available(0)):
            if isinstance(item, pos.PosFrame):
                self._stats.stale_answers += 1

    # ------------------------------------------------------------ the catalogue

    def _programme(self) -> list[Showing]:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        slots = [today + timedelta(hours=11, minutes=30 * i) for i in range(24)]  # 11:00 .. 22:30
        films = self._rng.sample(FILM_TITLES, self._rng.randint(6, 10))
        showings = []
        for film in films:
            hall = f"h{self._rng.randint(1, 6)}"
            for slot in self._rng.sample(slots, self._rng.randint(2, 5)):
                showings.append(Showing(film, hall, slot))
        return showings

    def _build_request(self) -> pos.SaleRequest:
        self._sale_no += 1
        showing = self._rng.choice(self._showings)
        tickets: dict[str, int] = {}
        for sku in self._rng.choices(list(TICKETS), weights=TICKET_WEIGHTS, k=self._rng.randint(1, 4)):
            tickets[sku] = tickets.get(sku, 0) + 1
        items: list[pos.SaleItem] = [
            pos.SaleItem(
                kind="ticket", sku=sku, film=showing.film, hall=showing.hall,
                showtime=showing.showtime, qty=qty, price=TICKETS[sku],
            )
            for sku, qty in tickets.items()
        ]
        for sku in self._rng.sample(list(CONCESSIONS), self._rng.randint(0, 3)):
            description, price = CONCESSIONS[sku]
            items.append(
                pos.SaleItem(kind="concession", sku=sku, description=description, qty=1, price=price)
            )
        return pos.SaleRequest(
            sale_id=f"S-{self.till_id}-{self.run_id}-{self._sale_no}",
            till=self.till_id,
            cashier=f"c{self._rng.randint(1, 8):02d}",
            currency=self.currency,
            items=items,
        )


def run_simulator_forever(sim: SiteSimulator, stop_event: threading.Event) -> None:
    """Run `sim` until `stop_event` is set, then stop it (for CLIs and services)."""
    sim.start()
    try:
        stop_event.wait()
    finally:
        sim.stop()
