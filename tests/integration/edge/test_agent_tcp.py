"""The agent with tills over TCP: two tills sell at once on real sockets, an unknown till is refused."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.devices.pos import PosFrame, PosFrameParser, encode_frame, parse_answer
from edge.devices.pos_link import encode_hello
from edge.devices.rdm6300 import encode_frame as fob_frame
from edge.simulator.pty import PtyEnd, create_pty_link
from edge.simulator.readers import member_cards
from edge.simulator.tcp_till import TcpTillEnd
from protocol.events import Event
from tests.edge_support import PEPPER, edge_settings, new_journal
from tests.support.waiting import wait_for


def sale(sale_id: str, till: str) -> bytes:
    return encode_frame(json.dumps({
        "type": "sale", "sale_id": sale_id, "till": till, "cashier": "c01", "currency": "EUR",
        "items": [{"kind": "ticket", "sku": "TKT-STD", "film": "Harbour of Glass", "hall": "h1",
                   "showtime": "2026-11-25T20:00:00Z", "qty": 1, "price": 1250}],
    }, separators=(",", ":")).encode())


def answer(end: TcpTillEnd, parser: PosFrameParser) -> dict[str, object]:
    frame = wait_for(lambda: next((i for i in parser.feed(end.read_available(0.05)) if isinstance(i, PosFrame)),
                                  None), timeout=10, what="an answer")
    return parse_answer(frame.payload).model_dump()


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[PtyEnd]:
    """t2's card reader, so a member can earn over TCP too."""
    pty = create_pty_link(tmp_path / "rdm6300-t2")
    yield pty
    pty.close()


@pytest.fixture
def agent(tmp_path: Path, reader: PtyEnd) -> Iterator[Agent]:
    reader_link = reader.link
    settings = edge_settings(
        tmp_path, pos_tcp={"listen": "127.0.0.1:0"},
        tills=[{"till_id": t, "pos_transport": "tcp", "pos_peers": ["127.0.0.1/32"]} for t in ("t1", "t2")],
        readers=[{"till": "t2", "kind": "rdm6300", "port": str(reader_link)}],
        mqtt={"port": 1},  # no broker: the box sells offline
    )
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    box.start()
    try:
        yield box
    finally:
        box.stop()


def test_two_tills_sell_at_once_over_tcp_and_each_gets_its_own_answers(agent: Agent) -> None:
    assert agent.peripherals.listener is not None
    host, port = agent.peripherals.listener.address
    results: dict[str, list[dict[str, object]]] = {"t1": [], "t2": []}

    def till(till_id: str) -> None:
        end = TcpTillEnd(host, port, till_id)
        parser = PosFrameParser()
        try:
            for n in range(20):
                end.write(sale(f"S-{till_id}-{n}", till_id))
                results[till_id].append(answer(end, parser))
        finally:
            end.close()

    threads = [threading.Thread(target=till, args=(t,)) for t in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for till_id in ("t1", "t2"):
        assert [a["sale_id"] for a in results[till_id]] == [f"S-{till_id}-{n}" for n in range(20)]
        assert all(a["status"] == "ok" for a in results[till_id])
    events = [e for e in agent.journal.read_outbox(from_seq=1, limit=100) if isinstance(e, Event)]
    assert sorted(e.payload["till_id"] for e in events) == ["t1"] * 20 + ["t2"] * 20
    health = agent.status(True).peripheral_health
    assert health["t1-pos"].kind == "pos-tcp" and health["t1-pos"].frames >= 20


def test_a_member_card_earns_on_a_tcp_till(agent: Agent, reader: PtyEnd) -> None:
    assert agent.peripherals.listener is not None
    host, port = agent.peripherals.listener.address
    card = member_cards(3, 1)[0]
    end = TcpTillEnd(host, port, "t2")
    try:
        wait_for(lambda: agent.status(True).peripherals.get("t2-rdm6300") == "up", timeout=10, what="reader up")
        reader.write(fob_frame(card.fob_hex))
        wait_for(lambda: agent.counters["cards"] == 1, timeout=10, what="the card read")
        end.write(sale("S-member-1", "t2"))
        got = answer(end, PosFrameParser())
        assert got["status"] == "ok" and got["loyalty"]["status"] == "earned"  # type: ignore[index]
        assert got["card"] == "******" + f"{card.fob & 0xFFFFFFFF:010d}"[-4:]
    finally:
        end.close()


def test_a_till_with_an_unknown_id_is_refused_with_one_clear_log_line(
    agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    assert agent.peripherals.listener is not None
    host, port = agent.peripherals.listener.address
    caplog.set_level(logging.INFO)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(encode_hello("t9"))
        parser = PosFrameParser()
        sock.settimeout(5)
        reply = wait_for(lambda: next((i for i in parser.feed(sock.recv(4096)) if isinstance(i, PosFrame)), None),
                         timeout=5, what="the refusal")
        assert json.loads(reply.payload)["type"] == "refused"
        assert sock.recv(4096) == b""  # and the box hung up
    lines = [r for r in caplog.records if r.levelno == logging.WARNING and "t9" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.1" in lines[0].getMessage() and "refused" in lines[0].getMessage()
    assert agent.peripherals.listener.refused == 1
    # Meanwhile a configured till still sells.
    end = TcpTillEnd(host, port, "t1")
    try:
        end.write(sale("S-after", "t1"))
        assert answer(end, PosFrameParser())["status"] == "ok"
    finally:
        end.close()
