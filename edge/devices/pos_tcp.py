"""The POS line protocol over TCP: the box listens, each till connects, says hello, then sells as on a serial line.

Frames, answers, NAK and fail-open are those of edge/devices/pos.py; this module adds the listening socket,
the hello that says which till a connection is, and each connection's life (docs/pos-protocol.md, section 7).
The box never dials out: a dropped connection is the till's to redial.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from edge.devices.pos import PosFrame
from edge.devices.pos_link import (
    READ_TIMEOUT,
    PosConnection,
    Refused,
    Session,
    TcpTill,
    Welcome,
    encode_message,
    parse_hello,
    peer_of,
)
from edge.errors import DeviceError, FrameError
from edge.logthrottle import LogThrottle

logger = logging.getLogger(__name__)

REFUSAL_QUIET_S = 60.0  # the same refusal from the same address is logged at WARNING once a minute

STARTING, UP, DOWN = "starting", "up", "down"


class PosListener:
    """Listens for tills on one TCP address; hands every parsed item of an identified till to `on_item`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        box_id: str,
        tills: Sequence[TcpTill],
        on_item: Callable[[str, PosConnection, object], None],
        on_state: Callable[[str, str], None] | None = None,
        inter_byte_timeout: float = 0.5,
        hello_timeout: float = 5.0,
        max_connections: int = 32,
    ) -> None:
        """`inter_byte_timeout`: silence inside a frame after which it is dropped, as on a serial line."""
        ids = [till.till_id for till in tills]
        if len(set(ids)) != len(ids):
            raise ValueError("till ids must be unique")
        if inter_byte_timeout <= 0 or hello_timeout <= 0 or max_connections < 1:
            raise ValueError("need inter_byte_timeout > 0, hello_timeout > 0 and max_connections >= 1")
        if not box_id or len(box_id) > 200:
            raise ValueError("box_id must be 1 to 200 characters")
        self._host, self._port, self._box_id = host, port, box_id
        self._tills = {till.till_id: till for till in tills}
        self._on_item, self._on_state = on_item, on_state
        self._inter_byte_timeout, self._hello_timeout = inter_byte_timeout, hello_timeout
        self._max_connections = max_connections
        # Guards the sessions, which session serves which till, and the states; on_state is called under
        # it so that callbacks arrive in the order the changes happened. Re-entrant: a callback may read.
        self._lock = threading.RLock()
        self._sessions: set[Session] = set()
        self._current: dict[str, Session] = {}
        self._states = dict.fromkeys(self._tills, STARTING)
        self._counts_lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {till_id: Counter() for till_id in self._tills}
        self._errors: dict[str, Counter[str]] = {till_id: Counter() for till_id in self._tills}
        self._listener_counts: Counter[str] = Counter()  # refused; failures before a till is known
        self._refusals_logged: dict[tuple[str, str], float] = {}
        self._accept_log = LogThrottle(logger)
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._address = (host, port)

    # ------------------------------------------------------------ public

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the configured ones before start())."""
        return self._address

    @property
    def refused(self) -> int:
        """Connections refused: unknown till, wrong peer, no hello, too many connections."""
        with self._counts_lock:
            return self._listener_counts["refused"]

    @property
    def failures(self) -> int:
        """Bugs caught in the accept thread or in a connection not yet identified (see the log)."""
        with self._counts_lock:
            return self._listener_counts["failures"]

    def state(self, till_id: str) -> str:
        """"up" while the till is connected, else "down" ("starting" before start()); KeyError if unknown."""
        return self._states[till_id]

    def counters(self, till_id: str) -> dict[str, Any]:
        """A snapshot as SerialLine.counters: bytes, bytes_written, items, errors (by kind), opens, ..."""
        with self._counts_lock:
            counts = self._counts[till_id]
            snapshot: dict[str, Any] = {
                key: counts[key] for key in ("bytes", "bytes_written", "items", "opens", "failures", "callback_errors")
            }
            snapshot["errors"] = dict(self._errors[till_id])
        return snapshot

    def start(self) -> None:
        """Bind and listen (port 0: any free port), start the accept thread; DeviceError for a bad address."""
        if self._accept_thread is not None:
            raise RuntimeError("POS listener already started")
        where = f"{self._host}:{self._port}"
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                self._host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            dualstack = family == socket.AF_INET6 and socket.has_dualstack_ipv6()
            server = socket.create_server(sockaddr, family=family, backlog=64, dualstack_ipv6=dualstack)
        except (OSError, OverflowError) as exc:  # OverflowError: a port beyond 65535
            raise DeviceError(f"cannot listen for POS tills on {where}: {exc}") from exc
        server.settimeout(READ_TIMEOUT)
        self._address = (str(server.getsockname()[0]), int(server.getsockname()[1]))
        with self._lock:
            for till_id in self._tills:
                self._set_state(till_id, DOWN)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(server,), name="pos-tcp-accept", daemon=True
        )
        self._accept_thread.start()
        logger.info("listening for POS tills on %s:%d", *self._address)

    def stop(self, timeout: float = 5) -> None:
        """Close the listening socket and every connection, and join the threads."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        self._join(self._accept_thread, deadline, timeout)  # first, so that no session starts after this
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.conn.shutdown()
        for session in sessions:
            self._join(session.thread, deadline, timeout)
        with self._lock:
            self._current.clear()
            for till_id in self._tills:
                self._set_state(till_id, DOWN)

    @staticmethod
    def _join(thread: threading.Thread | None, deadline: float, timeout: float) -> None:
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.error("POS listener: thread %s did not stop within %.1fs", thread.name, timeout)

    # ------------------------------------------------------------ accepting

    def _accept_loop(self, server: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._accept_one(server)
                except Exception:
                    logger.exception("POS listener: accepting a connection failed")
                    self._count(None, "failures")
                    self._stop.wait(READ_TIMEOUT)
        finally:
            server.close()

    def _accept_one(self, server: socket.socket) -> None:
        try:
            sock, address = server.accept()
        except TimeoutError:
            return
        except OSError as exc:
            # Out of file descriptors, or a connection reset before we took it: the next one may work.
            self._accept_log.warning("POS listener: cannot accept a connection: %s", exc)
            self._stop.wait(READ_TIMEOUT)
            return
        self._accept_log.recovered("POS listener accepts connections again")
        ip, peer = peer_of(address)
        session = Session(PosConnection(sock, peer, self._counter_for(None)), ip, time.monotonic())
        with self._lock:
            full = len(self._sessions) >= self._max_connections
            if not full:
                self._sessions.add(session)
        if full:
            self._refuse(session, f"too many connections ({self._max_connections} open)", answer=False)
            sock.close()  # at once: a flood of connections costs no thread and no hello wait
            return
        session.thread = threading.Thread(target=self._serve, args=(session,), name=f"pos-tcp-{peer}", daemon=True)
        session.thread.start()

    # ------------------------------------------------------------ one connection

    def _serve(self, session: Session) -> None:
        reason = "internal error"
        try:
            session.conn._configure()
            if self._greet(session):
                reason = self._pump(session)
        except Exception:
            logger.exception("POS connection from %s failed; closing it", session.conn.peer)
            self._count(session.till_id, "failures")
        finally:
            session.conn._close()
            self._release(session, reason)

    def _greet(self, session: Session) -> bool:
        """Read the hello; welcome the till (True) or refuse the connection (False)."""
        conn = session.conn
        while not self._stop.is_set():
            if time.monotonic() - session.accepted_at >= self._hello_timeout:
                self._refuse(session, f"no hello within {self._hello_timeout:g} s", answer=False)
                return False
            data = conn._read()
            if data is None:
                continue
            if not data or isinstance(data, str):
                logger.debug("POS connection from %s ended before its hello", conn.peer)
                return False
            session.received += len(data)
            items = session.parser.feed(data)
            if items:
                first, session.backlog = items[0], list(items[1:])
                return self._identify(session, first)
        return False

    def _identify(self, session: Session, first: object) -> bool:
        if isinstance(first, FrameError):
            complete = first.kind == "checksum"  # a whole frame came, so the till can read an answer
            got = "a frame with a bad LRC" if complete else f"bytes that are not a frame ({first.kind})"
            self._refuse(session, f"expected a hello frame first, got {got}", answer=complete)
            return False
        if not isinstance(first, PosFrame):
            self._refuse(session, "expected a hello frame first, got a control byte", answer=False)
            return False
        hello = parse_hello(first.payload)
        if isinstance(hello, str):
            self._refuse(session, f"the first frame must be a hello, got {hello}", answer=True)
            return False
        till = self._tills.get(hello.till)
        if till is None:
            self._refuse(session, f"till {hello.till!r} is not configured for TCP on this box", answer=True)
            return False
        if session.ip is None or not till.allows(session.ip):
            self._refuse(session, f"till {hello.till!r} may not connect from {session.ip}", answer=True)
            return False
        holder = self._register(session, till.till_id)
        if holder is not None:
            # A till redials from its own address; another machine claiming a connected till is refused
            # rather than allowed to cut the real till off (it may retry once that connection is gone).
            self._refuse(session, f"till {hello.till!r} is already connected from {holder}", answer=True)
            return False
        session.conn.write(encode_message(Welcome(till=till.till_id, box=self._box_id)))
        return True

    def _register(self, session: Session, till_id: str) -> str | None:
        """Make `session` the till's connection, replacing (and closing) an older one from the same address.

        Returns the peer holding the till when another address holds it (nothing registered then). The check
        and the registration happen under one lock, so two machines dialling at once cannot both win.
        """
        conn = session.conn
        with self._lock:
            old = self._current.get(till_id)
            if old is not None and not old.conn.closed and old.ip != session.ip:
                return old.conn.peer
            session.till_id, conn.name = till_id, f"{till_id}-pos"
            conn._on_written = self._counter_for(till_id)
            if session.thread is not None:
                session.thread.name = f"pos-tcp-{till_id}"
            self._current[till_id] = session
            if old is not None:
                # A till redials when it believes its connection dead: the newer one is the live one.
                old.conn.shutdown()
                logger.info("POS till %s connected again from %s; closed its previous connection from %s",
                            till_id, conn.peer, old.conn.peer)
            else:
                logger.info("POS till %s connected from %s", till_id, conn.peer)
                self._set_state(till_id, UP)
        self._count(till_id, "opens")
        self._count(till_id, "bytes", session.received)
        return None

    def _pump(self, session: Session) -> str:
        """Hand the till's items to on_item until the connection ends; returns why it ended."""
        assert session.till_id is not None
        till_id, conn, parser = session.till_id, session.conn, session.parser
        self._hand_over(till_id, conn, session.backlog)
        last_byte_at = time.monotonic()
        quiet = parser.pending == 0  # nothing held: no partial frame for a silence to drop
        while not self._stop.is_set():
            data = conn._read()
            if isinstance(data, str):
                return data
            if data == b"":
                return "connection closed by the till" if not conn.closed else "connection closed by the box"
            now = time.monotonic()
            # As SerialLine: one flush per silence, checked before feeding so late bytes cannot complete
            # a frame whose tail was lost.
            if not quiet and now - last_byte_at >= self._inter_byte_timeout:
                quiet = True
                dropped = parser.flush()
                if dropped is not None:
                    self._hand_over(till_id, conn, [dropped])
            if data:
                quiet, last_byte_at = False, now
                self._count(till_id, "bytes", len(data))
                self._hand_over(till_id, conn, parser.feed(data))
        return "the box is stopping"

    def _hand_over(self, till_id: str, conn: PosConnection, items: Sequence[object]) -> None:
        for item in items:
            if isinstance(item, FrameError):
                self._count_error(till_id, item.kind)
            else:
                self._count(till_id, "items")
            try:
                self._on_item(till_id, conn, item)
            except Exception:
                logger.exception("POS till %s: on_item callback raised", till_id)
                self._count(till_id, "callback_errors")

    def _release(self, session: Session, reason: str) -> None:
        """The connection's thread is ending: forget it; if it was its till's live connection, the till is down."""
        with self._lock:
            self._sessions.discard(session)
            till_id = session.till_id
            if till_id is None or self._current.get(till_id) is not session:
                return
            del self._current[till_id]
            if not self._stop.is_set():
                logger.info("POS till %s (%s) disconnected: %s", till_id, session.conn.peer, reason)
            self._set_state(till_id, DOWN)

    def _refuse(self, session: Session, reason: str, *, answer: bool) -> None:
        """Refuse a connection: count, log (WARNING once a minute per address and reason), answer if asked."""
        key, now = (str(session.ip), reason), time.monotonic()
        with self._counts_lock:
            self._listener_counts["refused"] += 1
            last = self._refusals_logged.get(key)
            loud = last is None or now - last >= REFUSAL_QUIET_S
            if loud:
                if len(self._refusals_logged) >= 1024:  # bounded, however many addresses keep knocking
                    recent = {k: t for k, t in self._refusals_logged.items() if now - t < REFUSAL_QUIET_S}
                    self._refusals_logged = recent if len(recent) < 1024 else {}
                self._refusals_logged[key] = now
        logger.log(logging.WARNING if loud else logging.DEBUG,
                   "POS connection from %s refused: %s", session.conn.peer, reason)
        if answer:  # last, so that a till that reads the refusal finds it counted and logged
            session.conn.write(encode_message(Refused(message=reason[:200])))

    # ------------------------------------------------------------ helpers

    def _set_state(self, till_id: str, state: str) -> None:
        """Change a till's state and tell on_state; the caller holds self._lock."""
        if self._states[till_id] == state:
            return
        self._states[till_id] = state
        if self._on_state is None:
            return
        try:
            self._on_state(till_id, state)
        except Exception:
            logger.exception("POS till %s: on_state callback raised", till_id)
            self._count(till_id, "callback_errors")

    def _counter_for(self, till_id: str | None) -> Callable[[str, int], None]:
        return lambda key, n: self._count(till_id, key, n)

    def _count(self, till_id: str | None, key: str, n: int = 1) -> None:
        with self._counts_lock:
            (self._counts[till_id] if till_id is not None else self._listener_counts)[key] += n

    def _count_error(self, till_id: str, kind: str) -> None:
        with self._counts_lock:
            self._errors[till_id][kind] += 1

