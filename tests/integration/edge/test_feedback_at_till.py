"""The ticket's feedback link at the till (docs/pos-protocol.md section 11): the page's example byte for byte but
the code, which is the recorded sale's (`protocol.feedback.ticket_code` of its event hash); the same link on a
repeat; nothing without the till asking, a ticket, or the chain's feedback address; and a running box on a real
pty, offline, answering with the link of the sale it journaled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.devices.pos import PosFrame, PosFrameParser, encode_frame, parse_answer
from edge.simulator.pty import create_pty_link
from protocol.feedback import ticket_code
from protocol.rules import RuleBundle
from tests.support.brokers import free_port
from tests.support.pos_doc import example_json
from tests.support.redeeming import answer, payload, points_bundle, redeeming_agent, request
from tests.support.waiting import wait_for

FEEDBACK_URL = "https://hq.example.com/f"
DOC_CODE = "1BD0R0TM744SRJAY"  # the code the page shows; a real sale's differs (its hash has random bytes)


def with_feedback(url: str | None = FEEDBACK_URL) -> RuleBundle:
    return points_bundle().model_copy(update={"feedback_url": url})


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    box = redeeming_agent(tmp_path, with_feedback())
    yield box
    box.journal.close()
    box.directory.close()


def last_sale_code(agent: Agent) -> str:
    events = agent.journal.read_events(from_seq=1, limit=100)
    return ticket_code([event for event in events if event.type == "sale.recorded"][-1].hash)


def test_the_pages_example_is_what_the_box_answers_with_the_sales_own_code(agent: Agent) -> None:
    got = payload(agent.handle_sale("t1", example_json("sale-feedback"), now=1.0))
    code = last_sale_code(agent)
    assert got == example_json("answer-feedback").replace(DOC_CODE.encode(), code.encode())
    # A repeat (the till missed the answer) gets the same link; nothing new is journaled.
    assert payload(agent.handle_sale("t1", example_json("sale-feedback"), now=2.0)) == got
    assert agent.journal.stats().last_seq == 1


def test_no_link_unless_the_till_asks_and_the_sale_has_a_ticket(agent: Agent) -> None:
    plain = answer(agent.handle_sale("t1", request("sale", "S-1"), now=1.0))
    assert plain["status"] == "ok" and "feedback" not in plain
    concessions = json.loads(request("sale", "S-2", feedback=True))
    concessions["items"] = concessions["items"][1:]  # the popcorn alone
    bar_only = answer(agent.handle_sale("t1", json.dumps(concessions).encode(), now=2.0))
    assert bar_only["status"] == "ok" and "feedback" not in bar_only
    asked = answer(agent.handle_sale("t1", request("sale", "S-3", feedback=True), now=3.0))
    assert asked["feedback"] == {"code": last_sale_code(agent),
                                 "url": f"{FEEDBACK_URL}/riverside/{last_sale_code(agent)}"}


def test_no_link_when_the_chain_gives_no_feedback_address(tmp_path: Path) -> None:
    box = redeeming_agent(tmp_path, with_feedback(None))
    try:
        got = answer(box.handle_sale("t1", request("sale", "S-1", feedback=True), now=1.0))
        assert got["status"] == "ok" and "feedback" not in got
        assert "feedback_url" not in box.rules.current.model_dump(mode="json", by_alias=True)
    finally:
        box.journal.close()
        box.directory.close()


def test_a_running_box_offline_answers_a_pty_till_with_the_link_of_the_sale_it_journaled(tmp_path: Path) -> None:
    line = create_pty_link(tmp_path / "dev" / "pos-t1")
    # No broker listens on this port: the site's internet is down, the link is given all the same.
    box = redeeming_agent(tmp_path, with_feedback(), mqtt={"port": free_port()},
                          tills=[{"till_id": "t1", "pos_port": str(line.link)}], readers=[])
    box.start()
    try:
        wait_for(lambda: box.status(True).peripherals == {"t1-pos": "up"}, timeout=10, what="the till's line open")
        line.write(encode_frame(request("sale", "S-pty", popcorn=0, feedback=True)))
        parser = PosFrameParser()  # keeps a frame read in pieces until it is whole
        frame = wait_for(lambda: next((each for each in parser.feed(line.read_available(0.05))
                                       if isinstance(each, PosFrame)), None), timeout=10, what="the answer")
        assert frame is not None
        got = parse_answer(frame.payload)
        assert got.status == "ok" and got.feedback is not None
        code = last_sale_code(box)
        assert (got.feedback.code, got.feedback.url) == (code, f"{FEEDBACK_URL}/riverside/{code}")
    finally:
        box.stop()
        line.close()
