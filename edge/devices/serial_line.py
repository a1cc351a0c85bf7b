"""The thin reader every device family shares: one daemon thread per port, bytes to a pure parser.

It owns the port's life (open, reopen with backoff, close) and nothing else: what the bytes mean is the
parser's business, what to do with a frame is the agent's. pyserial exceptions stop here.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import serial

from edge.errors import FrameError

logger = logging.getLogger(__name__)

READ_TIMEOUT = 0.1  # bounds how long stop() waits for the reader to notice
WRITE_TIMEOUT = 0.5  # a peer that stops reading must not wedge the writer

STARTING, UP, DOWN, STOPPED = "starting", "up", "down", "stopped"
NO_RESPONSE = "no_response"
"""The FrameError kind of a driven device that stopped answering: the line shows it down until it answers."""


class Parser(Protocol):
    """A pure, incremental framing parser (see rdm6300.Rdm6300Parser, pos.PosFrameParser).

    It never reads a clock: the line decides when silence has lasted long enough and calls `flush`.
    """

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (0 between frames)."""
        ...

    def feed(self, data: bytes) -> Sequence[object]:
        """Consume `data`; return the frames, controls and FrameErrors it completed, in order."""
        ...

    def flush(self) -> FrameError | None:
        """The line went silent: drop any partial frame (FrameError "timeout" if one was dropped, else None)."""
        ...


class Driver(Parser, Protocol):
    """A parser for a device the box must drive (PN532: wake-up, configuration, polling).

    Still pure: it says what to send, the line sends it; time is an argument.
    """

    def start(self) -> bytes:
        """Bytes to send as soon as the port is open (a fresh driver is made for every open)."""
        ...

    def poll(self, now: float) -> bytes:
        """Bytes to send now (b"" for none); called after every read attempt, at least every READ_TIMEOUT."""
        ...

    @property
    def answering(self) -> bool:
        """Whether the device behind the port answers; a FrameError "no_response" said it stopped."""
        ...


class SerialLine:
    """Reads one serial port in a daemon thread and hands every parsed item to `on_item`."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        baudrate: int = 9600,
        parity: str = "N",
        bytesize: int = 8,
        stopbits: int = 1,
        parser_factory: Callable[[], Parser],
        on_item: Callable[[SerialLine, object], None],
        on_state: Callable[[SerialLine, str], None] | None = None,
        backoff_min: float = 0.2,
        backoff_max: float = 10.0,
        inter_byte_timeout: float | None = None,
    ) -> None:
        """`inter_byte_timeout`: silence (seconds) after which a partial frame is dropped; None: never."""
        if not 0 < backoff_min <= backoff_max:
            raise ValueError("need 0 < backoff_min <= backoff_max")
        if inter_byte_timeout is not None and inter_byte_timeout <= 0:
            raise ValueError("inter_byte_timeout must be positive (or None for no timeout)")
        self.name = name
        self.url = url
        self.baudrate = baudrate
        self.parity, self.bytesize, self.stopbits = parity, bytesize, stopbits
        self._parser_factory = parser_factory
        self._on_item = on_item
        self._on_state = on_state
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._inter_byte_timeout = inter_byte_timeout
        self._state = STARTING
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()  # guards _port against a close racing a write
        self._counts_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._down_since: float | None = None

    # ------------------------------------------------------------ public

    @property
    def state(self) -> str:
        """One of "starting", "up", "down", "stopped"."""
        return self._state

    @property
    def counters(self) -> dict[str, Any]:
        """A snapshot: bytes, bytes_written, items, errors (by kind), opens, failures, callback_errors."""
        with self._counts_lock:
            snapshot: dict[str, Any] = {
                key: self._counts[key]
                for key in ("bytes", "bytes_written", "items", "opens", "failures", "callback_errors")
            }
            snapshot["errors"] = dict(self._errors)
        return snapshot

    def start(self) -> None:
        """Start the reader thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"serial line {self.name} already started")
        self._thread = threading.Thread(target=self._run, name=f"serial-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        """Stop the reader, close the port and join the thread (returns within READ_TIMEOUT or so)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.error("serial line %s: reader thread did not stop within %.1fs", self.name, timeout)
        self._close_port()
        self._set_state(STOPPED)

    def write(self, data: bytes) -> bool:
        """Write `data` to the port; False (never an exception) when the port is down or the write fails."""
        with self._port_lock:
            port = self._port
            if port is None:
                return False
            try:
                # No flush(): tcdrain() on a pty whose master is not read can block without limit.
                port.write(data)
            except (serial.SerialException, OSError) as exc:
                # The reader notices a vanished port on its own and drives the state; only count here.
                logger.debug("serial line %s: write failed: %s", self.name, exc)
                self._count("write_failures")
                return False
        self._count("bytes_written", len(data))
        return True

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        delay = self._backoff_min
        while not self._stop.is_set():
            try:
                delay = self._cycle(delay)
            except Exception:
                # A bug (ours, the parser factory's, pyserial's): log it and retry rather than go silent.
                logger.exception("serial line %s: reader failed; restarting it", self.name)
                self._count("failures")
                self._close_port()
                self._went_down("the reader failed (see the traceback above)")
                delay = self._pause(delay)

    def _cycle(self, delay: float) -> float:
        """Open the port, read until it fails or stop(); return the next backoff delay."""
        try:
            port = self._open()
        except (serial.SerialException, OSError, ValueError) as exc:  # ValueError: a malformed URL
            self._count("failures")
            self._went_down(f"cannot open: {exc}")
            return self._pause(delay)
        try:
            got_data = self._read_until_gone(port)
        finally:
            self._close_port()
        if got_data:
            delay = self._backoff_min  # a port that worked for a while retries quickly
        return delay if self._stop.is_set() else self._pause(delay)

    def _open(self) -> serial.SerialBase:
        port = serial.serial_for_url(
            self.url, baudrate=self.baudrate, parity=self.parity, bytesize=self.bytesize, stopbits=self.stopbits,
            timeout=READ_TIMEOUT, write_timeout=WRITE_TIMEOUT,
        )
        with self._port_lock:
            self._port = port
        self._count("opens")
        if self._down_since is None:
            logger.info("serial line %s opened %s", self.name, self.url)
        self._came_back()
        return port

    def _read_until_gone(self, port: serial.SerialBase) -> bool:
        """Pump bytes into a fresh parser until stop() or the port fails; True if any byte came."""
        parser = self._parser_factory()
        driver = parser if callable(getattr(parser, "poll", None)) else None
        if driver is not None:
            self._drive(port, driver.start())  # type: ignore[attr-defined]
        got_data = False
        last_byte_at = time.monotonic()
        quiet = True  # no byte since the last flush (or since the port opened): nothing to flush
        while not self._stop.is_set():
            try:
                # A blocking read of one byte (bounded by READ_TIMEOUT), then whatever is queued:
                # one system call per burst, where readline() would make one per byte.
                data = port.read(1)
                if data:
                    waiting = port.in_waiting  # type: ignore[attr-defined]  # every port class has it; the stubs' base lacks it
                    if waiting:
                        data += port.read(waiting)
            except (serial.SerialException, OSError) as exc:
                self._count("failures")
                self._went_down(f"read failed: {exc}")
                return got_data
            now = time.monotonic()
            # Checked before feeding too: bytes arriving after a long gap must not complete the old
            # frame even if no empty read happened to fall past the deadline. One flush per silence;
            # the parser reports a dropped frame only when it held one (pending > 0).
            timeout = self._inter_byte_timeout
            if timeout is not None and not quiet and now - last_byte_at >= timeout:
                quiet = True
                parser = self._flush(parser)
            if data:
                got_data = True
                quiet = False
                last_byte_at = now
                parser = self._deliver(parser, data)
            if driver is not None:
                if parser is not driver:  # the parser raised and was replaced: drive the fresh one
                    driver = parser
                    self._drive(port, driver.start())  # type: ignore[attr-defined]
                self._drive(port, driver.poll(now))  # type: ignore[attr-defined]
                # What the driver concluded on its own (a chip that stopped answering) is an item too.
                parser = self._deliver(parser, b"")
                if self._state == DOWN and getattr(driver, "answering", False):
                    self._came_back()  # the port never closed: the device behind it answers again
        return got_data

    def _drive(self, port: serial.SerialBase, data: bytes) -> None:
        """Send what a driver asks for; a failed write surfaces as the next read's failure."""
        if data:
            self.write(data)

    def _flush(self, parser: Parser) -> Parser:
        """Silence on the line: make the parser drop a partial frame (and report it, as any FrameError)."""
        try:
            dropped = parser.flush()
        except Exception:
            logger.exception("serial line %s: parser raised; starting a fresh one", self.name)
            self._count_error("parser")
            return self._parser_factory()
        if dropped is not None:
            self._hand_over([dropped])
        return parser

    def _deliver(self, parser: Parser, data: bytes) -> Parser:
        self._count("bytes", len(data))
        try:
            items = parser.feed(data)
        except Exception:
            # Parsers promise never to raise; if one does, keep the line alive on a fresh parser.
            logger.exception("serial line %s: parser raised; starting a fresh one", self.name)
            self._count_error("parser")
            return self._parser_factory()
        self._hand_over(items)
        return parser

    def _hand_over(self, items: Sequence[object]) -> None:
        for item in items:
            if isinstance(item, FrameError):
                self._count_error(item.kind)
                if item.kind == NO_RESPONSE:
                    # The port is open but the device behind it is silent (a driven chip lost power).
                    self._went_down("the device does not answer")
            else:
                self._count("items")
                if self._state == DOWN:
                    self._came_back()
            try:
                self._on_item(self, item)
            except Exception:
                logger.exception("serial line %s: on_item callback raised", self.name)
                self._count("callback_errors")

    # ------------------------------------------------------------ helpers

    def _pause(self, delay: float) -> float:
        """Wait a jittered `delay` (or until stop()); return the next, doubled delay."""
        wait = min(self._backoff_max, max(self._backoff_min, delay * random.uniform(0.5, 1.0)))
        self._stop.wait(wait)
        return min(self._backoff_max, delay * 2)

    def _went_down(self, reason: str) -> None:
        if self._stop.is_set():
            return
        if self._state != DOWN:
            # Once per outage: the retries that follow are logged at DEBUG only.
            logger.warning(
                "serial line %s (%s) is down: %s; retrying in the background", self.name, self.url, reason
            )
            self._down_since = time.monotonic()
            self._set_state(DOWN)
        else:
            logger.debug("serial line %s still down: %s", self.name, reason)

    def _came_back(self) -> None:
        if self._down_since is not None:
            logger.info("serial line %s (%s) is back after %.1fs", self.name, self.url,
                        time.monotonic() - self._down_since)
        self._down_since = None
        self._set_state(UP)

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                logger.debug("serial line %s: close failed: %s", self.name, exc)

    def _set_state(self, state: str) -> None:
        if state == self._state:
            return
        self._state = state
        if self._on_state is None:
            return
        try:
            self._on_state(self, state)
        except Exception:
            logger.exception("serial line %s: on_state callback raised", self.name)
            self._count("callback_errors")

    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[key] += n

    def _count_error(self, kind: str) -> None:
        with self._counts_lock:
            self._errors[kind] += 1
