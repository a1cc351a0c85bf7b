"""A virtual cinema till: its card readers on pseudo-terminals and its POS on a pty or over TCP, selling
like a busy box office.

Used by the demo and the end-to-end tests. It plays the devices' side of the lines: each reader's frames
(edge/simulator/readers.py, every family, with faults), framed JSON sale requests on the POS line, waiting
for the agent's answers (docs/pos-protocol.md); it can also pull a reader's plug and put it back.
"""

from __future__ import annotations

import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.devices import pos
from edge.errors import FrameError, PosRequestError
from edge.simulator.catalogue import programme, sale_request
from edge.simulator.pty import PtyEnd, create_pty_link
from edge.simulator.readers import ReaderOptions, SimCard, VirtualReader, member_cards
from edge.simulator.staff import TillStaff, cheats
from edge.simulator.stats import RulesTally, SimStats
from edge.simulator.tcp_till import TcpTillEnd

__all__ = [
    "PtyEnd", "SimReader", "SimStats", "SiteSimulator", "create_pty_link", "member_card_ids", "run_simulator_forever",
]

logger = logging.getLogger(__name__)

MAX_RESENDS = 3  # the POS resends a NAKed frame at most 3 times (docs/pos-protocol.md)
CARD_RATE = 0.7  # share of sales where the customer shows a loyalty card


def member_card_ids(seed: int | None, members: int) -> list[str]:
    """The simulated members' fobs as an RDM6300 reads them (10 hex chars), the same for the same seed."""
    return [card.fob_hex for card in member_cards(seed, members)]


@dataclass(frozen=True, slots=True)
class SimReader:
    """A reader to play: its family, the link the box opens, and how the real one would be configured."""

    kind: str
    link: Path
    options: ReaderOptions = ReaderOptions()


class SiteSimulator:
    """One till and its card readers; `start()` sells in the background, `run_sales` now.

    The POS is on the pty `pos_link` or dials the box at `pos_tcp` (host, port). Readers are `readers`, or
    one RDM6300 at `card_link`. `noise` is the chance that a card presentation first meets a fault (line
    noise, a partial or damaged frame); half of it is the chance that a sale frame first goes out with a
    damaged LRC. `unplug_every` (seconds) pulls a random reader's plug for `unplug_for` seconds now and
    then. `redeem_rate`: the chance that a member with a card pays part of the sale with points (a redeem,
    then the sale with its hold). `pass_rate`: the chance that a member with a card buys the chain's pass
    with the sale. Every sale asks for the benefits the rules give (v1.2); the stats count what the answers
    showed. `staff`: the cashier working the till, who signs in first (v1.3) and may swipe their own card on
    customers' sales. `pace` scales the human pauses (tests use 0.01).
    """

    def __init__(
        self,
        *,
        card_link: Path | None = None,
        pos_link: Path | None = None,
        pos_tcp: tuple[str, int] | None = None,
        readers: Sequence[SimReader] = (),
        till_id: str = "t1",
        seed: int | None = None,
        sales_per_minute: float = 30,
        currency: str = "EUR",
        members: int = 50,
        noise: float = 0.02,
        answer_timeout: float = 2.0,
        pace: float = 1.0,
        run_id: str | None = None,
        unplug_every: float | None = None,
        unplug_for: float = 2.0,
        redeem_rate: float = 0.0,
        pass_rate: float = 0.0,
        staff: TillStaff | None = None,
    ) -> None:
        if not re.fullmatch(pos.ID_PATTERN, till_id):
            raise ValueError(f"till id {till_id!r} does not match {pos.ID_PATTERN}")
        if (pos_link is None) == (pos_tcp is None):
            raise ValueError("a till's POS is on a pty link or over TCP: give pos_link or pos_tcp")
        self.pos_link = Path(pos_link) if pos_link is not None else None
        self.pos_tcp = pos_tcp
        specs = list(readers) + ([SimReader("rdm6300", Path(card_link))] if card_link is not None else [])
        self.till_id = till_id
        self.currency = currency
        self.sales_per_minute = sales_per_minute
        self.noise = noise
        self.answer_timeout = answer_timeout
        self.pace = pace  # scales the human pauses; tests use a small value
        self.run_id = run_id or secrets.token_hex(3)  # never from the seed: sale ids must differ per run
        self.cards: list[SimCard] = member_cards(seed, members)
        self.member_cards = [card.fob_hex for card in self.cards]
        self.unplug_every = unplug_every
        self.unplug_for = unplug_for
        self.redeem_rate = redeem_rate  # of sales with a member card: the member pays part with points
        self.pass_rate = pass_rate  # of sales with a member card: the member buys the pass
        self.staff = staff  # the cashier working the till (v1.3: signed in; perhaps dishonest)
        self._signed_in = False
        self._sign_ins = 0
        self._rng = random.Random(seed)
        self.readers = [VirtualReader(spec.kind, spec.link, rng=self._rng, options=spec.options, pace=pace)
                        for spec in specs]
        self._showings = programme(self._rng)
        self._sale_no = 0
        self._stats = SimStats()
        self._tally = RulesTally(self._stats)
        self._card: str | None = None  # the member card shown for the sale under way
        self._pos: PtyEnd | TcpTillEnd | None = None
        self._opened = False
        self._parser = pos.PosFrameParser()
        self._lock = threading.Lock()  # one sale at a time, whoever drives
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> SimStats:
        """A snapshot of the counters."""
        # No lock: the sale lock is held for a whole sale, and a snapshot a few counts stale is fine.
        return self._stats.snapshot()

    def open(self) -> None:
        """Create the pty links (idempotent); start() and run_sales() call it. A TCP till dials on its first sale."""
        for reader in self.readers:
            reader.open()
        if self._pos is None:
            if self.pos_link is not None:
                self._pos = create_pty_link(self.pos_link)
            else:
                assert self.pos_tcp is not None
                self._pos = TcpTillEnd(self.pos_tcp[0], self.pos_tcp[1], self.till_id)
        self._opened = True

    def start(self) -> None:
        """Open the links and sell in a background thread at about `sales_per_minute`."""
        self.open()
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"simulator-{self.till_id}", daemon=True)
        self._thread.start()
        logger.info("simulator for till %s started (readers: %s; pos %s)", self.till_id,
                    ", ".join(f"{r.kind} at {r.link}" for r in self.readers) or "none",
                    self.pos_link or f"tcp {self.pos_tcp}")

    def stop(self) -> None:
        """Stop selling, close the ptys (the agent sees the lines hang up) and remove the links."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.answer_timeout + 5)
            self._thread = None
        with self._lock:
            for reader in self.readers:
                reader.close()
            if self._pos is not None:
                self._pos.close()
            self._pos = None
            self._opened = False
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
        next_unplug = time.monotonic() + self._unplug_gap()
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_unplug:
                    self.unplug_a_reader()
                    next_unplug = time.monotonic() + self._unplug_gap()
                self._sale()
            except Exception:
                logger.exception("simulator: a sale failed")
            self._stop.wait(self._rng.expovariate(1.0 / mean_gap))

    def _unplug_gap(self) -> float:
        return self._rng.uniform(0.5, 1.5) * self.unplug_every if self.unplug_every else float("inf")

    def unplug_a_reader(self) -> None:
        """Pull a random reader's plug and put it back `unplug_for` seconds later (in the background)."""
        plugged = [reader for reader in self.readers if reader.plugged]
        if not plugged:
            return
        reader = self._rng.choice(plugged)
        self._stats.unplugs += 1
        logger.info("simulator: unplugging the %s reader at %s for %.1fs", reader.kind, reader.link, self.unplug_for)
        reader.unplug()
        timer = threading.Timer(self.unplug_for, lambda: None if self._stop.is_set() else reader.replug())
        timer.daemon = True
        timer.start()

    def _sale(self) -> None:
        with self._lock:
            if not self._opened or self._pos is None:
                return
            plugged = [reader for reader in self.readers if reader.plugged]
            if self.staff is not None and not self._signed_in:
                self._sign_in(self._pos, plugged)
            card = self._rng.choice(self.cards) if plugged and self._rng.random() < CARD_RATE else None
            if card is None and plugged and (card := cheats(self.staff, self._rng)) is not None:
                self._stats.own_card_sales += 1
            if card is not None:
                self._present_card(self._rng.choice(plugged), card)
                # A cashier takes a moment between the beep and the total; the agent also needs the card
                # to arrive before the sale it belongs to, so keep a floor whatever the pace.
                self._stop.wait(max(0.02, self._rng.uniform(0.3, 1.5) * self.pace))
            self._card = card.fob_hex if card is not None else None
            buys_pass = card is not None and self._rng.random() < self.pass_rate
            self._stats.passes_bought += buys_pass
            request = self._build_request(buys_pass)
            hold_id = None
            if card is not None and self._rng.random() < self.redeem_rate:
                hold_id = self._redeem(self._pos, request)
            if hold_id is not None:
                request = request.model_copy(update={"hold_id": hold_id})
            self._transact(self._pos, request)

    def _sign_in(self, end: PtyEnd | TcpTillEnd, plugged: list[VirtualReader]) -> None:
        """The cashier signs in: their badge on a reader, then the sign-in request."""
        assert self.staff is not None
        if self.staff.badge is not None and plugged:
            self._present_card(self._rng.choice(plugged), self.staff.badge)
            self._stop.wait(max(0.02, 0.3 * self.pace))
        answer = self._transact(end, pos.SignInRequest(till=self.till_id, cashier=self.staff.cashier))
        self._sign_ins += 1
        # A box that does not know the cashier yet (its directory still on the way) refuses: ask again at the
        # next sale, a few times, as a cashier would.
        ok = isinstance(answer, pos.StaffAnswer) and answer.status == "ok"
        self._signed_in = ok or self._sign_ins >= 20
        self._stats.signins += ok

    def _redeem(self, end: PtyEnd | TcpTillEnd, sale: pos.SaleRequest) -> str | None:
        """Ask to pay part of the sale with points, as a member at the counter does; the hold id if authorised."""
        request = pos.RedeemRequest(sale_id=sale.sale_id, till=sale.till, cashier=sale.cashier,
                                    currency=sale.currency, items=sale.items,
                                    points=self._rng.choice((500, 1000, 2000, 5000)))
        self._stats.redeems_sent += 1
        answer = self._transact(end, request)
        if isinstance(answer, pos.Authorisation) and answer.status == "authorised":
            self._stats.authorised += 1
            return answer.hold_id
        self._stats.declined += 1
        return None

    def _present_card(self, reader: VirtualReader, card: SimCard) -> None:
        self._stats.cards_presented += 1
        before = reader.frames_sent
        fault = reader.present(card, fault_rate=self.noise, wait=self._stop)
        if fault is not None:
            self._stats.reader_faults += 1
            self._stats.noise_bursts += fault == "noise"
        self._stats.card_frames += reader.frames_sent - before
        logger.debug("simulator: card presented at the %s reader", reader.kind)

    def _transact(self, end: PtyEnd | TcpTillEnd, request: pos.AnyRequest) -> object | None:
        """Send `request`, resending on NAK; the box's answer, or None (unanswered: the till goes on)."""
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
                logger.debug("simulator: sale %s unanswered", getattr(request, "sale_id", request.type))
                return None
            for item in self._parser.feed(end.read_available(min(remaining, 0.1))):
                if isinstance(item, pos.PosControl):
                    if not item.is_nak:
                        continue
                    self._stats.naks += 1
                    if resends >= MAX_RESENDS:
                        self._stats.gave_up += 1
                        logger.info(
                            "simulator: request %s NAKed %d times; giving up",
                            getattr(request, "sale_id", request.type), resends + 1
                        )
                        return None
                    resends += 1
                    self._stats.resends += 1
                    end.write(frame)
                    deadline = time.monotonic() + self.answer_timeout
                elif isinstance(item, FrameError):
                    self._stats.bad_answers += 1
                    end.write(bytes([pos.NAK]))
                else:
                    answer = self._answered(end, request, item, sent_at)
                    if answer is not None:
                        return answer
        self._stats.interrupted += 1  # stop() while waiting for the answer
        return None

    def _answered(
        self, end: PtyEnd | TcpTillEnd, request: pos.AnyRequest, frame: pos.PosFrame, sent_at: float
    ) -> object | None:
        try:
            answer = pos.parse_box_message(frame.payload)
        except PosRequestError as exc:
            self._stats.bad_answers += 1
            logger.warning("simulator: unreadable answer: %s", exc)
            return None
        if getattr(answer, "sale_id", None) != getattr(request, "sale_id", None) or \
                (answer.type == "answer") != (request.type == "sale"):
            self._stats.stale_answers += 1  # a late answer to a request we already gave up on
            return None
        end.write(bytes([pos.ACK]))
        if not isinstance(answer, pos.SaleAnswer) or not isinstance(request, pos.SaleRequest):
            return answer
        elapsed_ms = (time.monotonic() - sent_at) * 1000
        stats = self._stats
        stats.answered += 1
        stats.answer_ms_total += elapsed_ms
        stats.answer_ms_max = max(stats.answer_ms_max, elapsed_ms)
        stats.ok += answer.status == "ok"
        stats.rejected += answer.status == "rejected"
        stats.errors += answer.status == "error"
        if answer.fraud is not None:
            stats.fraud[answer.fraud.action] = stats.fraud.get(answer.fraud.action, 0) + 1
        if answer.loyalty is not None:
            stats.by_loyalty[answer.loyalty.status] = stats.by_loyalty.get(answer.loyalty.status, 0) + 1
            stats.points_seen += answer.loyalty.points
            stats.points_redeemed += answer.loyalty.redeemed or 0
            self._tally.count(request, answer.loyalty, self._card)
        logger.debug("simulator: sale %s answered %s in %.1f ms", request.sale_id, answer.status, elapsed_ms)
        return answer

    def _drain(self, end: PtyEnd | TcpTillEnd) -> None:
        # Late answers to earlier sales are read (and discarded as stale) before a new sale starts.
        for item in self._parser.feed(end.read_available(0)):
            if isinstance(item, pos.PosFrame):
                self._stats.stale_answers += 1

    def _build_request(self, buys_pass: bool) -> pos.SaleRequest:
        self._sale_no += 1
        request = sale_request(self._rng, self._showings, sale_id=f"S-{self.till_id}-{self.run_id}-{self._sale_no}",
                               till_id=self.till_id, currency=self.currency, buys_pass=buys_pass)
        if self.staff is None:
            return request
        return request.model_copy(update={"cashier": self.staff.cashier, "fraud": True})


def run_simulator_forever(sim: SiteSimulator, stop_event: threading.Event) -> None:
    """Run `sim` until `stop_event` is set, then stop it (for CLIs and services)."""
    sim.start()
    try:
        stop_event.wait()
    finally:
        sim.stop()
