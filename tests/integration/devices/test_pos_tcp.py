"""PosListener on real sockets (127.0.0.1, port 0): hello and welcome, several tills at once, refusals,
drops and redials, replacement, garbage, stop; and a till written from docs/pos-protocol.md section 7 alone.

A small handler stands in for the agent: it answers every sale frame with an answer frame whose `message`
names the till the connection belongs to, and NAKs a frame with a bad LRC, as the agent does.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edge.devices.pos import NAK, PosControl, PosFrame, PosFrameParser, SaleAnswer, encode_answer, encode_frame
from edge.devices.pos_link import PosConnection, TcpTill, Welcome, encode_hello, encode_message
from edge.devices.pos_tcp import PosListener
from edge.errors import DeviceError, FrameError
from tests.support.doc_pos_client import DocPosClient, build_hello, parse_hexdump, tcp_connect
from tests.support.pos_doc import doc_text
from tests.support.waiting import wait_for

BOX = "box-01"
LOGGER = "edge.devices.pos_tcp"
DEADLINE_S = 5.0  # a generous bound on any single wait; the waits end as soon as their condition holds


def sale(sale_id: str, till: str = "t1") -> dict[str, Any]:
    return {"type": "sale", "sale_id": sale_id, "till": till, "cashier": "c07", "currency": "EUR",
            "items": [{"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": 650}]}


def sale_frame(sale_id: str, till: str = "t1") -> bytes:
    return encode_frame(json.dumps(sale(sale_id, till), separators=(",", ":")).encode())


class Box:
    """Stands in for the agent: answers sales, NAKs damaged frames, records what it saw."""

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self.states: list[tuple[str, str]] = []
        self.connections: dict[str, PosConnection] = {}
        self._lock = threading.Lock()

    def on_item(self, till_id: str, conn: PosConnection, item: object) -> None:
        with self._lock:
            self.items.append((till_id, item))
            self.connections[till_id] = conn
        if isinstance(item, PosFrame):
            try:
                sale_id: str | None = json.loads(item.payload)["sale_id"]
            except (ValueError, KeyError, TypeError):
                sale_id = None
            conn.write(encode_answer(SaleAnswer(sale_id=sale_id, status="ok", message=f"till {till_id}")))
        elif isinstance(item, FrameError) and item.kind == "checksum":
            conn.write(bytes([NAK]))

    def on_state(self, till_id: str, state: str) -> None:
        with self._lock:
            self.states.append((till_id, state))

    def states_of(self, till_id: str) -> list[str]:
        with self._lock:
            return [state for till, state in self.states if till == till_id]

    def frames_of(self, till_id: str) -> int:
        with self._lock:
            return sum(1 for till, item in self.items if till == till_id and isinstance(item, PosFrame))


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def make_listener(box: Box) -> Iterator[Callable[..., PosListener]]:
    """Started listeners on 127.0.0.1, any free port, for tills t1 and t2 unless told; stopped at the end."""
    listeners: list[PosListener] = []

    def make(**kwargs: Any) -> PosListener:
        options: dict[str, Any] = {
            "host": "127.0.0.1", "port": 0, "box_id": BOX, "tills": [TcpTill("t1"), TcpTill("t2")],
            "on_item": box.on_item, "on_state": box.on_state,
        }
        options.update(kwargs)
        listener = PosListener(**options)
        listeners.append(listener)
        listener.start()
        return listener

    yield make
    for listener in listeners:
        listener.stop()


class Till:
    """The till's end of a TCP connection, reading frames with the box's own parser."""

    def __init__(self, address: tuple[str, int], source: str | None = None) -> None:
        self.sock = socket.create_connection(address, timeout=DEADLINE_S,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = PosFrameParser()
        self._items: list[object] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_item(self) -> object:
        """The next frame or control byte from the box (AssertionError if none within DEADLINE_S)."""
        deadline = time.monotonic() + DEADLINE_S
        while not self._items:
            assert time.monotonic() < deadline, "nothing from the box"
            data = self.sock.recv(4096)
            assert data, "the box closed the connection"
            self._items.extend(self._parser.feed(data))
        return self._items.pop(0)

    def next_message(self) -> dict[str, Any]:
        item = self.next_item()
        assert isinstance(item, PosFrame), item
        message: dict[str, Any] = json.loads(item.payload)
        return message

    def hello(self, till_id: str) -> dict[str, Any]:
        self.send(encode_hello(till_id))
        return self.next_message()

    def sell(self, sale_id: str, till_id: str = "t1") -> dict[str, Any]:
        self.send(sale_frame(sale_id, till_id))
        return self.next_message()

    def closed_by_box(self) -> bool:
        """True once the box has closed the connection (end of file or reset), with nothing more sent."""
        try:
            data = self.sock.recv(4096)
        except ConnectionResetError:
            return True
        assert not data, f"unexpected bytes from the box: {data!r}"
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tills() -> Iterator[Callable[[PosListener], Till]]:
    opened: list[Till] = []

    def connect(listener: PosListener) -> Till:
        till = Till(listener.address)
        opened.append(till)
        return till

    yield connect
    for till in opened:
        till.close()


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------------------ selling


def test_a_till_says_hello_is_welcomed_and_gets_the_answer_to_its_sale(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box
) -> None:
    listener = make_listener()
    assert listener.address[0] == "127.0.0.1" and listener.address[1] > 0
    assert listener.state("t1") == "down"
    till = tills(listener)

    till.send(encode_hello("t1"))
    welcome = till.next_item()
    assert welcome == PosFrame(b'{"type":"welcome","till":"t1","box":"box-01"}')
    assert listener.state("t1") == "up"  # up before the welcome is sent: the till may sell at once

    answer = till.sell("S-1")
    assert (answer["type"], answer["sale_id"], answer["status"]) == ("answer", "S-1", "ok")
    assert answer["message"] == "till t1"
    counters = listener.counters("t1")
    assert counters["opens"] == 1 and counters["items"] == 1 and counters["errors"] == {}
    assert counters["bytes"] == len(encode_hello("t1")) + len(sale_frame("S-1"))
    written = len(encode_message(Welcome(till="t1", box=BOX))) + len(
        encode_answer(SaleAnswer(sale_id="S-1", status="ok", message="till t1")))
    # Counted once the write returned, which may be just after the till read the answer.
    wait_for(lambda: listener.counters("t1")["bytes_written"] == written, timeout=DEADLINE_S)
    assert box.connections["t1"].name == "t1-pos"
    assert box.states_of("t1") == ["down", "up"] and listener.state("t2") == "down"


def test_accepted_connections_have_no_nagle_delay_and_keepalive(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box
) -> None:
    # The one look inside: the socket options of the connection the agent was given (DESIGN.md, Known traps).
    listener = make_listener()
    till = tills(listener)
    till.hello("t1")
    till.sell("S-1")
    server_side = box.connections["t1"]._sock
    assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert server_side.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    if hasattr(socket, "TCP_KEEPIDLE"):
        idle = server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        interval = server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        count = server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        assert idle + interval * count <= 60  # a pulled cable is noticed within about a minute


def test_two_tills_sell_at_once_and_each_gets_only_its_own_answers(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till]
) -> None:
    listener = make_listener()
    answers: dict[str, list[dict[str, Any]]] = {"t1": [], "t2": []}
    failures: list[BaseException] = []

    def sell_many(till_id: str, till: Till) -> None:
        try:
            assert till.hello(till_id)["type"] == "welcome"
            for n in range(100):
                answers[till_id].append(till.sell(f"{till_id.upper()}-{n}", till_id))
        except BaseException as exc:  # surfaced in the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=sell_many, args=(till_id, tills(listener))) for till_id in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S * 4)
    assert not failures and not any(thread.is_alive() for thread in threads)
    for till_id in ("t1", "t2"):
        assert [a["sale_id"] for a in answers[till_id]] == [f"{till_id.upper()}-{n}" for n in range(100)]
        assert {a["message"] for a in answers[till_id]} == {f"till {till_id}"}
        assert listener.counters(till_id)["items"] == 100


def test_a_damaged_frame_gets_a_nak_and_silence_inside_a_frame_drops_it(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till]
) -> None:
    listener = make_listener(inter_byte_timeout=0.2)
    till = tills(listener)
    till.hello("t1")
    frame = sale_frame("S-1")
    till.send(frame[:-1] + bytes([frame[-1] ^ 0xFF]))
    assert till.next_item() == PosControl(NAK)
    till.send(frame[:40])  # then silence: the box drops the partial frame, as on a serial line
    wait_for(lambda: listener.counters("t1")["errors"].get("timeout") == 1, timeout=DEADLINE_S)
    assert till.sell("S-1")["sale_id"] == "S-1"
    assert listener.counters("t1")["errors"] == {"checksum": 1, "timeout": 1}


# ------------------------------------------------------------------------------------------ refusals


def test_an_unknown_till_is_refused_with_one_warning_naming_the_peer_and_the_till(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    listener = make_listener()
    ports: list[int] = []
    for attempt in range(1, 4):  # a till that keeps redialling with the wrong id
        till = tills(listener)
        ports.append(till.sock.getsockname()[1])
        assert till.hello("t9") == {"type": "refused", "message": "till 't9' is not configured for TCP on this box"}
        assert till.closed_by_box()
        assert listener.refused == attempt  # counted before the refused frame was sent
    (warning,) = warnings_from(caplog)
    reason = "till 't9' is not configured for TCP on this box"
    assert warning == f"POS connection from 127.0.0.1:{ports[0]} refused: {reason}"
    repeats = [r for r in caplog.records if r.levelno == logging.DEBUG and reason in r.getMessage()]
    assert len(repeats) == 2
    assert listener.state("t1") == "down" and listener.counters("t1")["opens"] == 0


def test_a_till_connecting_from_outside_its_peers_is_refused(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    listener = make_listener(tills=[
        TcpTill("t1", peers=(ipaddress.ip_network("10.0.0.0/8"),)),
        TcpTill("t2", peers=(ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("127.0.0.1/32"))),
    ])
    outsider = tills(listener)
    refused = outsider.hello("t1")
    assert refused == {"type": "refused", "message": "till 't1' may not connect from 127.0.0.1"}
    assert outsider.closed_by_box()
    assert listener.refused == 1 and listener.state("t1") == "down"
    assert len(warnings_from(caplog)) == 1 and "127.0.0.1" in warnings_from(caplog)[0]

    allowed = tills(listener)
    assert allowed.hello("t2")["type"] == "welcome"
    assert allowed.sell("S-1", "t2")["status"] == "ok"


HELLO = encode_hello("t1")


@pytest.mark.parametrize(
    ("first", "refusal"),
    [
        pytest.param(b"", None, id="nothing"),
        pytest.param(HELLO[:12], None, id="half-a-hello"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", None, id="not-a-frame"),
        pytest.param(sale_frame("S-1"), "the first frame must be a hello, got a 'sale' frame", id="a-sale-first"),
        pytest.param(HELLO[:-1] + bytes([HELLO[-1] ^ 1]), "expected a hello frame first, got a frame with a bad LRC",
                     id="a-damaged-hello"),
    ],
)
def test_a_connection_without_a_hello_is_closed(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box,
    first: bytes, refusal: str | None,
) -> None:
    listener = make_listener(hello_timeout=0.3)
    till = tills(listener)
    till.send(first)
    if refusal is not None:
        assert till.next_message() == {"type": "refused", "message": refusal}
    assert till.closed_by_box()
    assert listener.refused == 1 and box.items == [] and box.states_of("t1") == ["down"]


def test_connections_beyond_the_limit_are_refused_at_once(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till]
) -> None:
    listener = make_listener(max_connections=2)
    first, second = tills(listener), tills(listener)
    assert first.hello("t1")["type"] == "welcome"  # both are being served before the third knocks
    third = tills(listener)
    assert third.closed_by_box()
    assert listener.refused == 1
    assert second.hello("t2")["type"] == "welcome" and second.sell("S-1", "t2")["status"] == "ok"


# ------------------------------------------------------------------------------------------ drops


def test_a_till_that_drops_mid_frame_and_redials_is_served_again(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    listener = make_listener()
    till = tills(listener)
    till.hello("t1")
    till.send(sale_frame("S-1")[:30])
    # A reset (SO_LINGER 0), as a till that crashes or loses power mid-send leaves it.
    till.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    till.close()
    wait_for(lambda: listener.state("t1") == "down", timeout=DEADLINE_S)
    drops = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(drops) == 1 and drops[0].startswith("POS till t1 (127.0.0.1:")

    again = tills(listener)
    assert again.hello("t1")["type"] == "welcome"
    assert again.sell("S-1")["sale_id"] == "S-1"
    assert box.states_of("t1") == ["down", "up", "down", "up"]
    assert listener.counters("t1")["opens"] == 2 and box.frames_of("t1") == 1


def test_a_second_connection_for_a_till_replaces_the_first(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    listener = make_listener()
    old = tills(listener)
    old.hello("t1")
    old.sell("S-1")
    old_connection = box.connections["t1"]

    new = tills(listener)
    assert new.hello("t1")["type"] == "welcome"
    assert old.closed_by_box()
    assert old_connection.write(b"\x06") is False  # the agent writing to the replaced connection: no exception
    assert new.sell("S-2")["sale_id"] == "S-2"
    assert box.connections["t1"] is not old_connection
    assert box.states_of("t1") == ["down", "up"]  # the till never looked down
    replaced = [r.getMessage() for r in caplog.records if "connected again" in r.getMessage()]
    assert len(replaced) == 1 and "closed its previous connection" in replaced[0]
    assert not any("disconnected" in r.getMessage() for r in caplog.records)


def test_another_machine_cannot_take_over_a_connected_till(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    listener = make_listener()
    real = tills(listener)
    real.hello("t1")
    intruder = Till(listener.address, source="127.0.0.2")  # another address on the loopback network
    try:
        refused = intruder.hello("t1")
        assert refused["type"] == "refused" and "already connected from 127.0.0.1" in refused["message"]
    finally:
        intruder.sock.close()
    assert real.sell("S-1")["sale_id"] == "S-1"  # the real till was never cut off
    assert box.states_of("t1") == ["down", "up"] and listener.refused == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "127.0.0.2" in warnings[0]


def test_two_machines_dialling_one_till_at_once_never_both_get_it(
    make_listener: Callable[..., PosListener], box: Box
) -> None:
    listener = make_listener(tills=[TcpTill("t1", (ipaddress.ip_network("127.0.0.0/8"),))])
    for attempt in range(20):
        first, second = Till(listener.address, "127.0.0.1"), Till(listener.address, "127.0.0.2")
        answers: dict[str, str] = {}
        start = threading.Barrier(2)

        def dial(till: Till, name: str, start: threading.Barrier, answers: dict[str, str]) -> None:
            start.wait()
            answers[name] = till.hello("t1")["type"]

        threads = [threading.Thread(target=dial, args=(till, name, start, answers))
                   for till, name in ((first, "a"), (second, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
        assert sorted(answers.values()) == ["refused", "welcome"], (attempt, answers)
        winner = first if answers["a"] == "welcome" else second
        assert winner.sell(f"S-{attempt}")["sale_id"] == f"S-{attempt}"  # the winner keeps the till
        first.sock.close()
        second.sock.close()
        wait_for(lambda: listener.state("t1") == "down", timeout=DEADLINE_S, what="the till released")


def test_garbage_on_a_connection_never_stops_the_listener(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till]
) -> None:
    listener = make_listener()
    seller = tills(listener)
    seller.hello("t1")
    noisy = tills(listener)
    noisy.hello("t2")
    rng = random.Random(7)
    stranger = tills(listener)  # garbage before any hello (no STX: it cannot pass for the start of a hello)
    stranger.send(bytes(b for b in rng.randbytes(256) if b != 0x02))
    assert stranger.closed_by_box()
    stop = threading.Event()

    def spray() -> None:
        while not stop.is_set():
            try:
                noisy.send(rng.randbytes(512))
            except OSError:
                return  # the box may close it (a partial send): the garbage has done its worst

    sprayer = threading.Thread(target=spray, daemon=True)
    sprayer.start()
    try:
        wait_for(lambda: sum(listener.counters("t2")["errors"].values()) > 10, timeout=DEADLINE_S)
        for n in range(50):
            assert seller.sell(f"S-{n}")["sale_id"] == f"S-{n}"
    finally:
        stop.set()
        sprayer.join(DEADLINE_S)
    assert listener.refused == 1  # the stranger
    late = tills(listener)
    assert late.hello("t1")["type"] == "welcome" and late.sell("S-late")["status"] == "ok"


def test_callback_errors_are_counted_and_the_connection_lives_on(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till]
) -> None:
    def on_item(till_id: str, conn: PosConnection, item: object) -> None:
        raise RuntimeError("agent bug")

    def on_state(till_id: str, state: str) -> None:
        raise RuntimeError("agent bug")

    listener = make_listener(on_item=on_item, on_state=on_state)
    till = tills(listener)
    assert till.hello("t1")["type"] == "welcome"
    till.send(sale_frame("S-1") + sale_frame("S-2"))
    wait_for(lambda: listener.counters("t1")["callback_errors"] == 4, timeout=DEADLINE_S)  # down, up, 2 sales
    assert listener.state("t1") == "up" and listener.counters("t1")["items"] == 2


# ------------------------------------------------------------------------------------------ life


def test_stop_returns_promptly_with_connections_open(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till], box: Box
) -> None:
    listener = make_listener()
    selling, greeting, cut = tills(listener), tills(listener), tills(listener)
    selling.hello("t1")
    cut.hello("t2")
    cut.send(sale_frame("S-1", "t2")[:20])
    greeting.send(b"\x02{")
    wait_for(lambda: listener.state("t2") == "up", timeout=DEADLINE_S)

    started = time.monotonic()
    listener.stop()
    assert time.monotonic() - started < 1.0
    assert selling.closed_by_box() and greeting.closed_by_box() and cut.closed_by_box()
    assert listener.state("t1") == listener.state("t2") == "down"
    assert box.states_of("t1")[-1] == "down"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("pos-tcp")]
    with pytest.raises(OSError):
        socket.create_connection(listener.address, timeout=1).close()


def test_a_bad_address_is_a_device_error_at_start(box: Box) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        for host, port in [("127.0.0.1", taken.getsockname()[1]), ("203.0.113.7", 7100), ("127.0.0.1", -1)]:
            listener = PosListener(host=host, port=port, box_id=BOX, tills=[TcpTill("t1")], on_item=box.on_item)
            with pytest.raises(DeviceError, match=re.escape(f"cannot listen for POS tills on {host}:{port}")):
                listener.start()
    finally:
        taken.close()


# ------------------------------------------------------------------------------------------ the page


_TCP_EXAMPLE = re.compile(r"<!-- tcp-example: ([a-z-]+) -->\n```[a-z]*\n(.*?)```", re.S)


def tcp_examples() -> dict[str, str]:
    return dict(_TCP_EXAMPLE.findall(doc_text()))


def test_the_pages_hello_and_welcome_are_what_the_till_and_the_box_send(
    make_listener: Callable[..., PosListener], tills: Callable[[PosListener], Till]
) -> None:
    examples = tcp_examples()
    assert set(examples) == {"hello", "welcome", "refused"}
    hello, welcome = parse_hexdump(examples["hello"]), parse_hexdump(examples["welcome"])
    stated = re.search(r"from till `t1`, (\d+)-byte payload, LRC `0x([0-9A-F]{2})`", doc_text())
    assert stated and (len(hello) - 3, hello[-1]) == (int(stated[1]), int(stated[2], 16))
    stated = re.search(r"from box `box-01`, (\d+)-byte payload, LRC `0x([0-9A-F]{2})`", doc_text())
    assert stated and (len(welcome) - 3, welcome[-1]) == (int(stated[1]), int(stated[2], 16))
    assert hello == build_hello("t1") == encode_hello("t1")

    listener = make_listener()
    till = tills(listener)
    till.send(hello)
    assert till.sock.recv(len(welcome), socket.MSG_WAITALL) == welcome
    till9 = tills(listener)
    till9.send(build_hello("t9"))
    refused = till9.next_item()
    assert isinstance(refused, PosFrame) and refused.payload == examples["refused"].strip().encode()


def test_a_till_written_from_the_page_alone_connects_sells_and_is_refused(
    make_listener: Callable[..., PosListener], box: Box
) -> None:
    listener = make_listener()
    host, port = listener.address
    sock, hello = tcp_connect(host, port, "t1")
    try:
        assert hello.result == "welcome" and hello.message == {"type": "welcome", "till": "t1", "box": BOX}
        client = DocPosClient(sock)
        outcome = client.sale(sale("S-000124"))
        assert outcome.answered and outcome.status == "ok" and outcome.elapsed_s < 0.5
        damaged = encode_frame(json.dumps(sale("S-000125")).encode())
        outcome = client.exchange_frame(damaged[:-1] + bytes([damaged[-1] ^ 1]), sale_id="S-000125")
        assert (outcome.result, outcome.sends, outcome.naks_received) == ("gave_up", 4, 4)  # NAKed, resent 3 times
        assert wait_for(lambda: listener.counters("t1")["errors"].get("checksum") == 4, timeout=DEADLINE_S)
    finally:
        sock.close()

    _, refused = tcp_connect(host, port, "t9")
    assert refused.result == "refused" and refused.message is not None
    assert refused.message["message"] == "till 't9' is not configured for TCP on this box"
    sock, again = tcp_connect(host, port, "t1")  # redialled after a drop: served again
    try:
        assert again.result == "welcome" and DocPosClient(sock).sale(sale("S-000126")).answered
    finally:
        sock.close()
    # The damaged sends were NAKed, never handed over as sales.
    assert listener.counters("t1")["opens"] == 2 and box.frames_of("t1") == 2
