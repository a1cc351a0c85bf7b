"""The answers shown in docs/pos-protocol.md are the very bytes the box sends for the requests shown there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.devices.pos import PosFrame, PosFrameParser, encode_frame
from tests.edge_support import PEPPER, edge_settings, fob, new_journal
from tests.support.pos_doc import example_hex, example_json


def doc_request() -> bytes:
    """The payload of the page's request hex dump (sale S-000124 at till t1, one 12.50 ticket)."""
    (frame,) = PosFrameParser().feed(example_hex("request-hex"))
    assert isinstance(frame, PosFrame)
    return frame.payload


def payload_of(answer_frame: bytes) -> bytes:
    (frame,) = PosFrameParser().feed(answer_frame)
    assert isinstance(frame, PosFrame)
    return frame.payload


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    settings = edge_settings(tmp_path)
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    yield box
    box.journal.close()


def test_the_member_answer_in_hex(agent: Agent) -> None:
    # The page's member already holds 1375 points: earn them with a 137.50 ticket first (10 %).
    earlier = json.loads(doc_request())
    earlier["sale_id"], earlier["items"][0]["price"] = "S-000100", 13750
    agent.present_card("t1", fob("67003B51C6"), now=10.0)
    agent.handle_sale("t1", json.dumps(earlier).encode(), now=11.0)
    agent.present_card("t1", fob("67003B51C6"), now=20.0)
    assert agent.handle_sale("t1", doc_request(), now=21.0) == example_hex("answer-hex")


def test_the_no_card_answer(agent: Agent) -> None:
    assert payload_of(agent.handle_sale("t1", doc_request(), now=11.0)) == example_json("no-card")


def test_the_conflict_answer(agent: Agent) -> None:
    agent.handle_sale("t1", doc_request(), now=11.0)
    changed = json.loads(doc_request())
    changed["items"][0]["qty"] = 2
    assert payload_of(agent.handle_sale("t1", json.dumps(changed).encode(), now=12.0)) == example_json("conflict")


def test_the_empty_frame_answer(agent: Agent) -> None:
    (empty,) = PosFrameParser().feed(encode_frame(b""))
    assert isinstance(empty, PosFrame)
    assert payload_of(agent.handle_sale("t1", empty.payload, now=11.0)) == example_json("empty")


def test_the_wrong_till_answer(agent: Agent) -> None:
    other = json.loads(doc_request())
    other["till"] = "t2"
    assert payload_of(agent.handle_sale("t1", json.dumps(other).encode(), now=11.0)) == example_json("wrong-till")
