"""The agent's decision path on a real journal: what the till sees for each sale."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from edge.devices.pos import PosFrameParser, SaleAnswer, parse_answer
from edge.settings import EdgeSettings
from tests.edge_support import PEPPER, edge_settings, fob, new_journal

CARD = "67003B51C6"


def request(sale_id: str, *, tickets: int = 2, price: int = 1250, **extra: Any) -> bytes:
    body = {
        "type": "sale", "sale_id": sale_id, "till": "t1", "cashier": "c07", "currency": "EUR",
        "items": [
            {"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
             "showtime": "2026-11-23T19:30:00Z", "qty": tickets, "price": price},
            {"kind": "concession", "sku": "POP-L", "description": "Popcorn L", "qty": 1, "price": 650},
        ],
    }
    body.update(extra)
    return json.dumps(body).encode()


def answer_of(frame: bytes) -> SaleAnswer:
    items = PosFrameParser().feed(frame)
    assert len(items) == 1, items
    return parse_answer(items[0].payload)  # type: ignore[union-attr]


@pytest.fixture
def settings(tmp_path: Path) -> EdgeSettings:
    return edge_settings(tmp_path)


@pytest.fixture
def agent(settings: EdgeSettings) -> Iterator[Agent]:
    box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
    yield box
    box.journal.close()


def test_a_member_earns_ten_percent_of_tickets_and_the_balance_grows(agent: Agent) -> None:
    agent.present_card("t1", fob(CARD), now=10.0)
    first = answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    assert first.status == "ok" and first.loyalty is not None
    assert (first.loyalty.status, first.loyalty.points, first.loyalty.balance) == ("earned", 250, 250)
    assert first.card == "******7558"
    agent.present_card("t1", fob(CARD), now=200.0)
    second = answer_of(agent.handle_sale("t1", request("S-2", tickets=1, price=1000), now=201.0))
    assert second.loyalty is not None and (second.loyalty.points, second.loyalty.balance) == (100, 350)
    assert agent.journal.stats().last_seq == 2


def test_a_sale_without_a_card_is_recorded_without_points(agent: Agent) -> None:
    answer = answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    assert answer.status == "ok" and answer.loyalty is not None and answer.loyalty.status == "no_card"
    assert answer.card is None
    event = agent.journal.read_events(from_seq=1, limit=1)[0]
    assert event.payload["card_token"] is None and event.payload["total"] == 3150


def test_a_card_is_used_once_and_repeats_of_the_same_read_are_ignored(agent: Agent) -> None:
    assert agent.present_card("t1", fob(CARD), now=10.0)
    assert not agent.present_card("t1", fob(CARD), now=10.1)  # the module repeats its frame
    answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    later = answer_of(agent.handle_sale("t1", request("S-2"), now=12.0))
    assert later.loyalty is not None and later.loyalty.status == "no_card"


def test_a_resent_sale_gets_the_same_answer_and_earns_once(agent: Agent) -> None:
    agent.present_card("t1", fob(CARD), now=10.0)
    first = answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    again = answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    assert again.loyalty == first.loyalty
    assert agent.journal.stats().last_seq == 1
    assert agent.counters["sales_repeated"] == 1


@pytest.mark.parametrize(
    ("payload", "sale_id"),
    [(b"not json", None), (b"[]", None), (request("S-1", currency="euro"), "S-1"), (request("S-1", items=[]), "S-1"),
     (request("bad id!"), None), (json.dumps({"type": "refund"}).encode(), None), (b"{" * 5000, None),
     (request("S-1", cashier="c\u0000"), "S-1"), (request("S-1").replace(b"Popcorn L", b"Pop\\u0000corn"), "S-1")],
)
def test_a_bad_request_gets_a_clear_rejection_and_nothing_is_recorded(agent: Agent, payload: bytes,
                                                                      sale_id: str | None) -> None:
    answer = answer_of(agent.handle_sale("t1", payload, now=11.0))
    assert answer.status == "rejected" and answer.message
    assert answer.sale_id == sale_id  # the till can tell which of its sales was refused
    assert agent.journal.stats().last_seq == 0
    assert agent.counters["sales_rejected"] == 1
    assert answer_of(agent.handle_sale("t1", request("S-ok"))).status == "ok"  # and the agent goes on


def test_a_full_disk_fails_open_and_loses_no_recorded_sale(agent: Agent) -> None:
    answer_of(agent.handle_sale("t1", request("S-0"), now=11.0))
    conn = agent.journal._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: SQLITE_FULL
    answers = {}
    for n in range(1, 400):
        answers[f"S-{n}"] = answer_of(agent.handle_sale("t1", request(f"S-{n}"), now=11.0))
        if answers[f"S-{n}"].status != "ok":
            break
    failed = [sale for sale, answer in answers.items() if answer.status != "ok"]
    assert len(failed) == 1, "the journal never filled up"
    full = answers[failed[0]]
    assert full.status == "error" and full.loyalty is not None and full.loyalty.status == "unavailable"
    assert agent.counters["sales_failed_open"] == 1
    conn.execute("PRAGMA max_page_count = 1073741823")  # space returns
    agent.present_card("t1", fob(CARD), now=20.0)
    ok = answer_of(agent.handle_sale("t1", request("S-after"), now=21.0))
    assert ok.status == "ok" and ok.loyalty is not None and ok.loyalty.status == "earned"
    recorded = [e.payload["sale_id"] for e in agent.journal.read_events(from_seq=1, limit=1000)]
    answered_ok = ["S-0"] + [sale for sale, answer in answers.items() if answer.status == "ok"] + ["S-after"]
    assert recorded == answered_ok


def test_every_value_the_pos_protocol_allows_is_recorded(agent: Agent) -> None:
    hall = "h" + "x" * 63  # the longest hall id the POS protocol accepts
    body = json.loads(request("S-long"))
    body["items"][0]["hall"] = hall
    body["items"][0]["film"] = "F" * 120
    answer = answer_of(agent.handle_sale("t1", json.dumps(body).encode(), now=11.0))
    assert answer.status == "ok"
    assert agent.journal.read_events(from_seq=1, limit=1)[0].payload["items"][0]["hall"] == hall


def events(agent: Agent) -> list[tuple[str, dict[str, Any]]]:
    return [(event.type, event.payload) for event in agent.journal.read_events(from_seq=1, limit=100)]


@pytest.mark.parametrize(
    "changed",
    [
        {"tickets": 3},
        {"price": 1000},
        {"cashier": "c08"},
        {"currency": "GBP"},
        {"items": json.loads(request("x"))["items"][:1]},  # a line fewer
        {"items": json.loads(request("x"))["items"][::-1]},  # the same lines in another order
    ],
    ids=["qty", "price", "cashier", "currency", "fewer-items", "item-order"],
)
def test_a_reused_sale_id_with_other_content_is_a_conflict_that_earns_nothing(
    agent: Agent, changed: dict[str, Any]
) -> None:
    agent.present_card("t1", fob(CARD), now=10.0)
    first = answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    agent.present_card("t1", fob("1A00C0FFEE"), now=12.0)
    conflict = answer_of(agent.handle_sale("t1", request("S-1", **changed), now=13.0))
    assert (conflict.sale_id, conflict.status, conflict.loyalty, conflict.card) == ("S-1", "conflict", None, None)
    assert conflict.message == "sale_id S-1 was already used for a different sale; nothing earned"
    (_, recorded), (kind, attempt) = events(agent)
    assert kind == "sale.conflict"
    sent = json.loads(request("S-1", **changed))
    assert attempt["original_seq"] == 1 and attempt["sale_id"] == "S-1" and attempt["till_id"] == "t1"
    assert (attempt["cashier_id"], attempt["currency"]) == (sent["cashier"], sent["currency"])
    assert [item["sku"] for item in attempt["items"]] == [item["sku"] for item in sent["items"]]
    assert attempt["total"] == sum(item["qty"] * item["price"] for item in sent["items"])
    assert "card_token" not in attempt and "loyalty" not in attempt
    assert agent.counters["sales_conflicting"] == 1 and agent.counters["sales"] == 1
    # The first sale stands, and its answer is still what a repeat of it gets.
    assert answer_of(agent.handle_sale("t1", request("S-1"), now=14.0)).loyalty == first.loyalty
    # The card presented before the conflict was not spent by it.
    later = answer_of(agent.handle_sale("t1", request("S-2"), now=15.0))
    assert later.loyalty is not None and later.loyalty.status == "earned" and later.card == "******8430"


def test_the_same_sale_written_differently_is_a_repeat_not_a_conflict(agent: Agent) -> None:
    agent.present_card("t1", fob(CARD), now=10.0)
    first = answer_of(agent.handle_sale("t1", request("S-1"), now=11.0))
    body = json.loads(request("S-1"))
    body["items"][0]["showtime"] = "2026-11-23T20:30:00+01:00"  # the same instant
    body["items"][1]["seat"] = "F12"  # an unknown field, ignored
    reordered = {key: body[key] for key in reversed(list(body))}
    again = answer_of(agent.handle_sale("t1", json.dumps(reordered, indent=1).encode(), now=12.0))
    assert (again.status, again.loyalty) == ("ok", first.loyalty)
    assert [kind for kind, _ in events(agent)] == ["sale.recorded"]
    assert agent.counters["sales_repeated"] == 1 and agent.counters.get("sales_conflicting", 0) == 0


def test_a_request_naming_another_till_is_refused_and_not_recorded(agent: Agent) -> None:
    answer = answer_of(agent.handle_sale("t1", request("S-1", till="t2"), now=11.0))
    assert (answer.sale_id, answer.status) == ("S-1", "rejected")
    assert answer.message == "request names till t2 but arrived on the line of till t1"
    assert events(agent) == [] and agent.counters["sales_wrong_till"] == 1


def test_an_empty_request_is_rejected_without_a_sale_id(agent: Agent) -> None:
    answer = answer_of(agent.handle_sale("t1", b"", now=11.0))
    assert (answer.sale_id, answer.status) == (None, "rejected")
    assert answer.message == "empty request: no payload between STX and ETX"
    assert events(agent) == []


@pytest.mark.parametrize("showtime", [1795462200, "1795462200", 1795462200.0])
def test_a_showtime_given_as_a_number_is_refused(agent: Agent, showtime: object) -> None:
    body = json.loads(request("S-1"))
    body["items"][0]["showtime"] = showtime
    answer = answer_of(agent.handle_sale("t1", json.dumps(body).encode(), now=11.0))
    assert answer.status == "rejected" and answer.message is not None
    assert answer.message.startswith("items.0.showtime")
    assert events(agent) == []


def test_a_newer_card_replaces_the_waiting_one(agent: Agent) -> None:
    agent.present_card("t1", fob(CARD), now=10.0)
    agent.present_card("t1", fob("1A00C0FFEE"), now=11.0)
    answer = answer_of(agent.handle_sale("t1", request("S-1"), now=12.0))
    assert answer.card == "******8430"


def test_a_card_waits_card_hold_s_and_no_longer(agent: Agent, settings: EdgeSettings) -> None:
    hold = settings.tills[0].card_hold_s
    assert hold == 120.0  # the documented default
    agent.present_card("t1", fob(CARD), now=10.0)
    kept = answer_of(agent.handle_sale("t1", request("S-1"), now=10.0 + hold - 1))
    assert kept.loyalty is not None and kept.loyalty.status == "earned"
    agent.present_card("t1", fob(CARD), now=200.0)
    late = answer_of(agent.handle_sale("t1", request("S-2"), now=200.0 + hold + 1))
    assert late.loyalty is not None and late.card is None
    assert (late.loyalty.status, late.loyalty.points, late.loyalty.balance) == ("no_card", 0, None)


def test_a_card_is_not_spent_by_a_rejected_or_repeated_sale(agent: Agent) -> None:
    answer_of(agent.handle_sale("t1", request("S-1"), now=10.0))  # no card yet
    agent.present_card("t1", fob(CARD), now=11.0)
    assert answer_of(agent.handle_sale("t1", request("S-2", currency="euro"), now=12.0)).status == "rejected"
    assert answer_of(agent.handle_sale("t1", request("S-1"), now=13.0)).status == "ok"  # a repeat
    answer = answer_of(agent.handle_sale("t1", request("S-3"), now=14.0))
    assert answer.loyalty is not None and answer.loyalty.status == "earned" and answer.card == "******7558"


def test_the_same_conflicting_request_sent_again_is_recorded_once(agent: Agent) -> None:
    agent.handle_sale("t1", request("S-1"), now=11.0)
    other = request("S-1", cashier="c99")
    answers = [answer_of(agent.handle_sale("t1", other, now=12.0 + n)) for n in range(4)]
    another = answer_of(agent.handle_sale("t1", request("S-1", currency="GBP"), now=20.0))

    assert {answer.status for answer in [*answers, another]} == {"conflict"}
    assert [kind for kind, _ in events(agent)] == ["sale.recorded", "sale.conflict", "sale.conflict"]
    assert agent.counters["sales_conflicting"] == 5


def test_a_repeat_whose_recorded_answer_no_longer_opens_sells_without_loyalty(
    agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.present_card("t1", fob(CARD), now=10.0)
    agent.handle_sale("t1", request("S-1"), now=11.0)
    conn = sqlite3.connect(agent.journal.path)
    conn.execute("UPDATE journal SET body = X'00112233445566778899aabbccddeeff00' WHERE seq = 1")
    conn.commit()
    conn.close()

    repeat = answer_of(agent.handle_sale("t1", request("S-1"), now=12.0))
    later = answer_of(agent.handle_sale("t1", request("S-2"), now=13.0))

    assert (repeat.status, repeat.message) == ("error", "loyalty unavailable")
    assert later.status == "ok"  # the journal itself works
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert logged == ["sale S-1 at till t1 was recorded but journal row #1 does not open (altered, moved or wrong "
                      "key); answered without loyalty"]


def test_a_full_disk_is_logged_once_while_it_lasts_and_once_when_it_ends(
    agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    answer_of(agent.handle_sale("t1", request("S-0"), now=11.0))
    conn = agent.journal._conn
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    caplog.set_level(logging.INFO, logger="edge.desk")
    caplog.clear()
    statuses = [answer_of(agent.handle_sale("t1", request(f"S-{n}", tickets=20), now=11.0)).status
                for n in range(1, 60)]
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert answer_of(agent.handle_sale("t1", request("S-after"), now=12.0)).status == "ok"

    assert statuses.count("error") >= 20  # every sale on the full disk failed open
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "edge.desk"]
    assert [level for level, _ in lines] == ["ERROR", "INFO"]
    assert "tills sell without loyalty" in lines[0][1] and "more failures went unlogged" in lines[1][1]
