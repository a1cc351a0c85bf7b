"""Each behaviour docs/pos-protocol.md promises a till, checked against a real box through a till client
written from that page alone (tests/support/doc_pos_client.py).

The box is an in-process `Agent` whose POS and card lines are real pseudo-terminals; the till speaks on
the master side of the POS pty. Every assertion is about what the till observes on its line.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.agent import Agent
from edge.devices.rdm6300 import encode_frame as card_frame
from edge.settings import EdgeSettings
from edge.simulator.pty import PtyEnd, create_pty_link
from tests.edge_support import PEPPER, edge_settings, new_journal
from tests.support.brokers import free_port
from tests.support.doc_pos_client import (
    ACK,
    EOT,
    MAX_PAYLOAD,
    NAK,
    DocPosClient,
    FrameReader,
    Outcome,
    build_frame,
    encode_request,
    lrc,
    parse_hexdump,
)
from tests.support.waiting import wait_for

DOC = Path(__file__).resolve().parents[3] / "docs" / "pos-protocol.md"
CARD = "67003B51C6"
SILENCE_S = 0.6  # longer than the till's 500 ms answer budget: "nothing" means nothing within it


def doc_example(name: str) -> str:
    """The fenced block after `<!-- example: name -->` in the doc."""
    m = re.search(rf"<!-- example: {re.escape(name)} -->\s*```\w*\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"no example {name!r} in {DOC}"
    return m.group(1)


def doc_json(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(doc_example(name))
    return value


def doc_request() -> dict[str, Any]:
    """The one-ticket sale request of the doc's hex example (S-000124, till t1)."""
    frame = parse_hexdump(doc_example("request-hex"))
    value: dict[str, Any] = json.loads(frame[1:-2])
    return value


def sale(sale_id: str, *, till: str = "t1", qty: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "type": "sale", "sale_id": sale_id, "till": till, "cashier": "c07", "currency": "EUR",
        "items": [{"kind": "ticket", "sku": "TKT-STD", "film": "The Long Night", "hall": "h2",
                   "showtime": "2026-11-23T19:30:00Z", "qty": qty, "price": 1250}],
        **extra,
    }


def items_of(raw: bytes) -> list[Any]:
    return FrameReader().feed(raw)


def read_bytes(till: DocPosClient, n: int, timeout: float = 2.0) -> bytes:
    """At least `n` bytes from the box, waiting at most `timeout` for them."""
    buf = bytearray()

    def enough() -> bool:
        buf.extend(till.read_for(0.02))
        return len(buf) >= n

    wait_for(enough, timeout=timeout, interval=0, what=f"{n} bytes from the box")
    return bytes(buf)


def assert_only_its_answer(outcome: Outcome, sale_id: str | None) -> dict[str, Any]:
    """The till got an answer in time, and that one frame is all the box sent (no NAK, no other answer)."""
    assert outcome.result == "answered", outcome
    assert outcome.answer is not None and outcome.answer["sale_id"] == sale_id
    assert outcome.sends == 1 and outcome.naks_received == 0 and outcome.void_answers == ()
    assert outcome.elapsed_s < 0.5
    assert outcome.raw == build_frame(outcome.raw[1:-2], check=False), f"the box sent {outcome.raw!r}"
    return outcome.answer


class Site:
    def __init__(self, root: Path) -> None:
        self.pos: PtyEnd = create_pty_link(root / "pos-t1")
        self.card: PtyEnd = create_pty_link(root / "card-t1")
        self.till = DocPosClient(self.pos.master_fd)
        self.agent: Agent | None = None
        self.settings: EdgeSettings | None = None
        self.cards_read = 0

    def start(self, settings: EdgeSettings) -> None:
        self.settings = settings
        box = Agent(settings, journal=new_journal(settings), pepper=PEPPER.encode())
        box.start()
        self.agent, self.cards_read = box, 0
        wait_for(lambda: box.status(True).peripherals == {"t1-pos": "up", "t1-rdm6300": "up"}, timeout=10,
                 what="both lines open")

    def restart(self) -> None:
        assert self.agent is not None and self.settings is not None
        self.agent.stop()
        self.start(self.settings)

    def present_card(self, card_id: str = CARD) -> None:
        """Hold a tag to the reader (the module repeats its frame), and wait until the box has read it."""
        assert self.agent is not None
        self.card.write(card_frame(card_id) * 3)
        self.cards_read += 1
        agent = self.agent
        wait_for(lambda: agent.counters["cards"] == self.cards_read, timeout=5, what="the card read")

    def close(self) -> None:
        self.pos.close()
        self.card.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site = Site(tmp_path / "dev")
    # No broker listens on this port: the box works offline (its answers are the same, doc section 4).
    settings = edge_settings(
        tmp_path, mqtt={"port": free_port()},
        tills=[{"till_id": "t1", "pos_port": str(site.pos.link)}],
            readers=[{"till": "t1", "kind": "rdm6300", "port": str(site.card.link)}],
    )
    site.start(settings)
    yield site
    assert site.agent is not None
    site.agent.stop()
    site.close()


# ------------------------------------------------------------------------------- section 2: the examples


def test_the_worked_lrc_example_matches_byte_for_byte() -> None:
    assert lrc(b"PING") == 0x13
    assert build_frame(b"PING") == bytes.fromhex("02 50 49 4E 47 03 13")  # checklist item 1


def test_the_request_hex_example_is_a_compact_frame_with_the_stated_size_and_lrc() -> None:
    frame = parse_hexdump(doc_example("request-hex"))
    payload = frame[1:-2]
    assert len(payload) == 218 and frame[-1] == 0x61
    assert build_frame(payload) == frame
    assert encode_request(json.loads(payload)) == payload  # compact JSON, as the till is told to send
    assert build_frame(payload)[-1] != 0x3B  # the doc's "damaged LRC" is indeed wrong


def test_the_answer_hex_example_matches_byte_for_byte() -> None:
    frame = parse_hexdump(doc_example("answer-hex"))
    payload = frame[1:-2]
    assert frame[-1] == 0x66 and build_frame(payload) == frame
    answer = json.loads(payload)
    assert answer["card"] == "******7558" and answer["loyalty"]["status"] == "earned"
    assert encode_request(answer) == payload


def test_the_sale_example_is_298_bytes_on_the_wire() -> None:
    assert len(encode_request(doc_json("sale"))) == 298


@pytest.mark.parametrize("name", ["conflict", "empty", "wrong-till", "no-card"])
def test_the_json_answer_examples_are_compact_one_line_json(name: str) -> None:
    assert encode_request(doc_json(name)).decode() == doc_example(name).strip()


# ------------------------------------------------------------------------------ section 3: good sales


def test_a_good_sale_without_a_card_gets_the_documented_no_card_answer_within_the_budget(site: Site) -> None:
    outcome = site.till.sale(doc_request())
    answer = assert_only_its_answer(outcome, "S-000124")
    assert answer == doc_json("no-card")
    assert not outcome.sell_without_loyalty


def test_a_card_presented_first_earns_points_and_comes_back_masked(site: Site) -> None:
    site.present_card()
    answer = assert_only_its_answer(site.till.sale(doc_request()), "S-000124")
    expected = json.loads(parse_hexdump(doc_example("answer-hex"))[1:-2])
    assert set(answer) == set(expected)
    assert (answer["status"], answer["card"], answer["message"]) == ("ok", "******7558", None)
    loyalty = answer["loyalty"]
    assert loyalty["status"] == "earned" and loyalty["points"] == expected["loyalty"]["points"]
    assert isinstance(loyalty["balance"], int) and loyalty["balance"] >= loyalty["points"]
    # One card per sale: the next sale at this till has no card waiting.
    assert assert_only_its_answer(site.till.sale(sale("S-next")), "S-next")["loyalty"]["status"] == "no_card"


def test_the_same_sale_again_gets_the_original_decision_and_no_second_points(site: Site) -> None:
    site.present_card()
    first = assert_only_its_answer(site.till.sale(sale("S-1")), "S-1")
    assert first["loyalty"]["status"] == "earned"
    # Same sale, other spacing, key order and an unknown field: still a repeat (doc 3.2).
    repeat_body = json.dumps({**dict(reversed(list(sale("S-1").items()))), "lane": 3}, indent=1)
    again = assert_only_its_answer(site.till.exchange(repeat_body.replace("\n", "").encode(), sale_id="S-1"), "S-1")
    assert again == {**first, "card": None}
    # The card is lifted from the reader (a tag resting on it is one presentation, doc 3.5) while the
    # line stays silent: the repeat brought nothing after its answer.
    assert site.till.read_for(SILENCE_S) == b""
    # The next card sale shows the balance moved by its own points only: the repeat earned nothing.
    site.present_card()
    second = assert_only_its_answer(site.till.sale(sale("S-2")), "S-2")
    assert second["loyalty"]["balance"] == first["loyalty"]["balance"] + second["loyalty"]["points"]


def test_an_ack_after_the_answer_is_ignored(site: Site) -> None:
    assert_only_its_answer(site.till.sale(sale("S-1")), "S-1")  # the client sends ACK after it
    site.till.send_raw(bytes([ACK]))
    assert site.till.read_for(SILENCE_S) == b""


def test_a_nak_after_an_answer_gets_the_same_answer_again_at_most_three_times(site: Site) -> None:
    outcome = site.till.sale(sale("S-1"))
    frame = outcome.raw
    assert_only_its_answer(outcome, "S-1")
    for _ in range(3):
        site.till.send_raw(bytes([NAK]))
        assert read_bytes(site.till, len(frame)) == frame
        assert site.till.read_for(0.1) == b""  # one copy per NAK
    site.till.send_raw(bytes([NAK]))
    assert site.till.read_for(SILENCE_S) == b""


# --------------------------------------------------------------------------------- section 3: damage


def test_a_bad_lrc_gets_exactly_one_nak_and_the_resent_frame_gets_the_answer(site: Site) -> None:
    good = parse_hexdump(doc_example("request-hex"))
    site.till.send_raw(good[:-1] + bytes([0x3B]))  # the doc's own damaged example
    assert site.till.read_for(SILENCE_S) == bytes([NAK])
    answer = assert_only_its_answer(site.till.exchange_frame(good, sale_id="S-000124"), "S-000124")
    assert answer["status"] == "ok"
    assert site.till.read_for(0.2) == b""


def test_a_frame_nakked_every_time_is_resent_three_times_then_given_up_with_eot(site: Site) -> None:
    good = build_frame(encode_request(sale("S-1")))
    damaged = good[:-1] + bytes([good[-1] ^ 0x01])
    outcome = site.till.exchange_frame(damaged, sale_id="S-1")
    assert (outcome.result, outcome.sends, outcome.naks_received, outcome.eot_sent) == ("gave_up", 4, 4, True)
    assert outcome.sell_without_loyalty
    assert site.till.read_for(SILENCE_S) == b""  # the EOT is ignored
    # Nothing was recorded: the good frame is a new sale, answered "ok".
    assert assert_only_its_answer(site.till.exchange_frame(good, sale_id="S-1"), "S-1")["status"] == "ok"


def test_no_answer_is_a_no_answer_result_not_an_error_and_is_not_resent(site: Site) -> None:
    outcome = site.till.exchange(b'{"type":"sale",\n"sale_id":"S-1"}', sale_id="S-1", check=False)
    assert (outcome.result, outcome.answer, outcome.sends, outcome.raw) == ("no_answer", None, 1, b"")
    assert outcome.elapsed_s >= 0.5 and outcome.sell_without_loyalty


def _oversized() -> bytes:
    return b"\x02" + b"x" * (MAX_PAYLOAD + 1) + b"\x03\x15"  # its LRC happens to be NAK's byte


# What the doc says the box ignores, each sent between two good sales. A dropped frame's LRC is 0x15 on
# purpose: it must not pass for the till's NAK (which would bring back the answer before).
IGNORED: dict[str, bytes] = {
    "stray bytes": b"\x00\xffhello\x7f\x10",
    "a lone EOT": bytes([EOT]),
    "a lone ACK": bytes([ACK]),
    "an oversized payload": _oversized(),
    "a payload with 0A": b'\x02{"type":"sale",\n"till":"t1"}\x03\x15',
    "a payload with 04": b'\x02{"type":"sale",\x04"till":"t1"}\x03\x15',
    "a partial frame then silence": build_frame(encode_request(sale("S-lost")))[:-1],  # lost its LRC
    "a partial frame cut mid-payload then silence": build_frame(encode_request(sale("S-lost")))[:50],
}


@pytest.mark.parametrize("noise", IGNORED.values(), ids=list(IGNORED))
def test_what_the_box_ignores_gets_no_reply_and_the_next_frame_gets_only_its_answer(site: Site, noise: bytes) -> None:
    assert_only_its_answer(site.till.sale(sale("S-before")), "S-before")
    site.till.send_raw(noise)
    # SILENCE_S is also longer than the 0.5 s inter-byte timeout, so a partial frame is dropped by now.
    assert site.till.read_for(SILENCE_S) == b""
    answer = assert_only_its_answer(site.till.sale(sale("S-after")), "S-after")
    assert answer["status"] == "ok" and answer["loyalty"]["status"] == "no_card"
    assert site.till.read_for(0.2) == b""


def test_a_frame_cut_by_a_new_stx_is_dropped_and_the_new_frame_is_read(site: Site) -> None:
    cut = build_frame(encode_request(sale("S-cut")))[:60]
    frame = build_frame(encode_request(sale("S-after")))
    answer = assert_only_its_answer(site.till.exchange_frame(cut + frame, sale_id="S-after"), "S-after")
    assert answer["status"] == "ok"
    assert site.till.read_for(0.2) == b""
    # The cut sale was never recorded: sent whole now, it is a new sale.
    assert assert_only_its_answer(site.till.sale(sale("S-cut", qty=5)), "S-cut")["status"] == "ok"


ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def _sale_with_lrc(value: int) -> dict[str, Any]:
    """A valid sale whose frame's LRC is `value` (found by trying two-character sale id suffixes)."""
    ids = (f"S-{a}{b}" for a in ID_CHARS for b in ID_CHARS)
    return next(body for body in map(sale, ids) if lrc(encode_request(body)) == value)


@pytest.mark.parametrize("value", [0x02, 0x03, 0x06, 0x15], ids=["02", "03", "06", "15"])
def test_an_lrc_equal_to_a_control_byte_is_taken_as_the_lrc(site: Site, value: int) -> None:
    body = _sale_with_lrc(value)
    frame = build_frame(encode_request(body))
    assert frame[-1] == value
    assert assert_only_its_answer(site.till.sale(body), body["sale_id"])["status"] == "ok"
    # The same frame damaged to a wrong LRC that is itself a control byte still gets exactly one NAK.
    other = _sale_with_lrc(0x02 if value != 0x02 else 0x15)
    damaged = build_frame(encode_request(other))[:-1] + bytes([value])
    site.till.send_raw(damaged)
    assert site.till.read_for(SILENCE_S) == bytes([NAK])


def test_a_short_gap_inside_a_frame_is_within_the_inter_byte_timeout(site: Site) -> None:
    frame = build_frame(encode_request(sale("S-1")))
    site.till.send_raw(frame[:40])
    assert site.till.read_for(0.1) == b""  # a 0.1 s gap, well under 0.5 s
    assert_only_its_answer(site.till.exchange_frame(frame[40:], sale_id="S-1"), "S-1")


def test_a_payload_of_exactly_4096_bytes_is_accepted(site: Site) -> None:
    body = sale("S-big", note="")
    body["note"] = "n" * (MAX_PAYLOAD - len(encode_request(body)))  # unknown fields are ignored
    assert len(encode_request(body)) == MAX_PAYLOAD
    assert assert_only_its_answer(site.till.sale(body), "S-big")["status"] == "ok"


def test_a_late_answer_for_another_sale_is_void(site: Site) -> None:
    site.till.send_raw(build_frame(encode_request(sale("S-late"))))  # the till stops waiting for this one
    outcome = site.till.sale(sale("S-now"))
    assert outcome.result == "answered" and outcome.answer is not None and outcome.answer["sale_id"] == "S-now"
    assert [a["sale_id"] for a in outcome.void_answers] == ["S-late"]


# ---------------------------------------------------------------------------- sections 3.2 to 3.5


def test_a_reused_sale_id_with_different_content_is_a_conflict(site: Site) -> None:
    first = doc_request()
    assert assert_only_its_answer(site.till.sale(first), "S-000124")["status"] == "ok"
    other = copy.deepcopy(first)
    other["items"][0]["qty"] = 2
    answer = assert_only_its_answer(site.till.sale(other), "S-000124")
    assert answer == doc_json("conflict")
    assert answer["sale_id"] in answer["message"]


def test_a_request_naming_another_till_is_rejected_naming_both(site: Site) -> None:
    answer = assert_only_its_answer(site.till.sale({**doc_request(), "till": "t2"}), "S-000124")
    assert answer == doc_json("wrong-till")


def _without(key: str, *, item: bool = False) -> bytes:
    body = sale("S-bad")
    if item:
        del body["items"][0][key]
    else:
        del body[key]
    return encode_request(body)


# (payload, the sale_id the answer must carry): null only when the request's sale_id is unreadable.
REJECTED: dict[str, tuple[bytes, str | None]] = {
    "bad JSON": (b'{"type":"sale","sale_id":"S-bad",', None),
    "not UTF-8": (b'{"type":"sale","sale_id":"S-\xff"}', None),
    "JSON but not an object": (b"[1,2,3]", None),
    "an unknown type": (encode_request({**sale("S-bad"), "type": "refund"}), "S-bad"),
    "a missing cashier": (_without("cashier"), "S-bad"),
    "a missing item field (hall)": (_without("hall", item=True), "S-bad"),
    "a missing sale_id": (_without("sale_id"), None),
    # The doc does not say whether a present but malformed sale_id "could not be read": the box says null.
    "a malformed sale_id": (encode_request(sale("S bad!")), None),
    "qty out of range": (encode_request(sale("S-bad", qty=0)), "S-bad"),
    "qty as a string": (encode_request(sale("S-bad")).replace(b'"qty":2', b'"qty":"2"'), "S-bad"),
    "showtime as a number": (encode_request(sale("S-bad")).replace(b'"2026-11-23T19:30:00Z"', b"1795462200"),
                             "S-bad"),
}


@pytest.mark.parametrize(("payload", "sale_id"), REJECTED.values(), ids=list(REJECTED))
def test_an_unusable_request_is_rejected_with_a_short_message(site: Site, payload: bytes, sale_id: str | None) -> None:
    answer = assert_only_its_answer(site.till.exchange(payload, sale_id=sale_id), sale_id)
    assert (answer["status"], answer["loyalty"], answer["card"]) == ("rejected", None, None)
    assert isinstance(answer["message"], str) and 0 < len(answer["message"]) <= 200
    # Nothing was recorded: a good sale with the same id is a new sale, not a conflict.
    if sale_id is not None:
        assert assert_only_its_answer(site.till.sale(sale(sale_id)), sale_id)["status"] == "ok"


def test_an_out_of_range_value_names_the_field_as_in_the_doc(site: Site) -> None:
    answer = assert_only_its_answer(site.till.sale(sale("S-bad", qty=0)), "S-bad")
    assert answer["message"] == "items.0.qty: Input should be greater than or equal to 1"


def test_an_empty_frame_is_rejected_with_a_null_sale_id(site: Site) -> None:
    outcome = site.till.exchange_frame(bytes.fromhex("02 03 03"), sale_id=None)
    assert assert_only_its_answer(outcome, None) == doc_json("empty")


def test_a_newer_card_replaces_the_waiting_one(site: Site) -> None:
    site.present_card("0A0B0C1234")
    site.present_card(CARD)
    answer = assert_only_its_answer(site.till.sale(sale("S-1")), "S-1")
    assert answer["loyalty"]["status"] == "earned" and answer["card"] == "******7558"


def test_a_sale_is_remembered_across_a_restart_of_the_box(site: Site) -> None:
    first = assert_only_its_answer(site.till.sale(sale("S-1")), "S-1")
    site.restart()
    assert assert_only_its_answer(site.till.sale(sale("S-1")), "S-1") == first
    assert assert_only_its_answer(site.till.sale(sale("S-1", qty=3)), "S-1")["status"] == "conflict"


def test_a_card_is_not_spent_by_requests_that_record_no_new_sale(site: Site) -> None:
    assert_only_its_answer(site.till.sale(sale("S-1")), "S-1")
    site.present_card()
    for outcome, sale_id, status in [
        (site.till.sale(sale("S-x", till="t2")), "S-x", "rejected"),
        (site.till.exchange(b"", sale_id=None), None, "rejected"),
        (site.till.sale(sale("S-1")), "S-1", "ok"),  # a repeat: its original no-card decision
        (site.till.sale(sale("S-1", qty=3)), "S-1", "conflict"),
    ]:
        answer = assert_only_its_answer(outcome, sale_id)
        assert answer["status"] == status and answer["card"] is None
        assert answer["loyalty"] in (None, {"status": "no_card", "points": 0, "balance": None})
    answer = assert_only_its_answer(site.till.sale(sale("S-2")), "S-2")
    assert answer["loyalty"]["status"] == "earned" and answer["card"] == "******7558"
