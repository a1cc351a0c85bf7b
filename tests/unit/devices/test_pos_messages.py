"""POS messages: the example request, validation failures as PosRequestError, answers and masking."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge.devices.pos import (
    PosFrame,
    PosFrameParser,
    SaleAnswer,
    SaleRequest,
    encode_answer,
    encode_request,
    mask_card_id,
    parse_answer,
    parse_request,
)
from edge.errors import PosRequestError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "serial"
EXAMPLE = (FIXTURES / "pos_request.json").read_bytes()


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE)
    return document


def test_the_contract_example_parses() -> None:
    request = parse_request(EXAMPLE)
    assert (request.sale_id, request.till, request.cashier, request.currency) == ("S-000123", "t1", "c07", "EUR")
    ticket, popcorn = request.items
    assert ticket.kind == "ticket" and ticket.film == "Dune: Part Two" and ticket.hall == "h2"
    assert ticket.showtime == datetime(2026, 11, 23, 19, 30, tzinfo=UTC)
    assert (ticket.qty, ticket.price) == (2, 1250)
    assert popcorn.kind == "concession" and popcorn.description == "Popcorn L"
    assert request.total == 2 * 1250 + 650


def test_a_request_survives_encode_then_parse() -> None:
    request = parse_request(EXAMPLE)
    (frame,) = PosFrameParser().feed(encode_request(request))
    assert isinstance(frame, PosFrame)
    assert parse_request(frame.payload) == request
    assert json.loads(frame.payload) == example()  # absent optional fields stay absent


def mutate(path: str, value: Any) -> bytes:
    document = example()
    target: Any = document
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (mutate("items.0.price", -1), "items.0.price"),
        (mutate("items.0.price", 12.5), "items.0.price"),
        (mutate("items.0.price", "1250"), "items.0.price"),
        (mutate("items.0.qty", 0), "items.0.qty"),
        (mutate("items.0.qty", True), "items.0.qty"),
        (mutate("items.1.kind", "popcorn"), "items.1.kind"),
        (mutate("items.0.film", KeyError), "film"),
        (mutate("items.0.showtime", "2026-11-23T19:30:00"), "time zone"),
        # A number is not a date: lax pydantic would read these as seconds since 1970.
        (mutate("items.0.showtime", 1795462200), "items.0.showtime"),
        (mutate("items.0.showtime", "1795462200"), "items.0.showtime"),
        (mutate("items.0.showtime", 1795462200.5), "items.0.showtime"),
        (mutate("items.0.showtime", "2026-11-23"), "items.0.showtime"),
        (b"", "empty request"),
        (mutate("items.1.description", KeyError), "description"),
        (mutate("items", KeyError), "items"),
        (mutate("items", []), "items"),
        (mutate("items", [example()["items"][1]] * 201), "exceeds"),  # 4096 bytes come before 200 items
        (mutate("till", "Till 1"), "till"),
        (mutate("till", "t" * 65), "till"),
        (mutate("cashier", "c" * 33), "cashier"),
        (mutate("currency", "euro"), "currency"),
        (mutate("sale_id", ""), "sale_id"),
        (mutate("items.0.film", "x" * 121), "items.0.film"),
        (mutate("type", "exchange"), "unknown request type"),
        (b"\x7b" * 5000, "exceeds"),
        (b"[" * 3000, "not JSON"),
        (b"{nope", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "not a JSON object"),
    ],
)
def test_invalid_requests_raise_pos_request_error_with_a_short_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PosRequestError) as caught:
        parse_request(payload)
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 200


def test_more_than_200_items_is_refused_by_the_model() -> None:
    document = example()
    document["items"] = [document["items"][1]] * 201
    with pytest.raises(ValidationError):
        SaleRequest.model_validate(document)
    document["items"] = document["items"][:200]
    assert len(SaleRequest.model_validate(document).items) == 200


def test_a_showtime_with_an_offset_is_read_as_the_same_instant_in_utc() -> None:
    request = parse_request(mutate("items.0.showtime", "2026-11-23T20:30:00+01:00"))
    assert request.items[0].showtime == datetime(2026, 11, 23, 19, 30, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    document = example()
    document["loyalty_hint"] = "x"
    document["items"][0]["seat"] = "F12"
    assert parse_request(json.dumps(document).encode()).sale_id == "S-000123"


def test_mask_card_id_shows_only_the_last_four() -> None:
    assert mask_card_id("67003B51C6") == "******51C6"
    assert mask_card_id("******51C6") == "******51C6"
    assert mask_card_id("51C6") == "****"
    assert mask_card_id("") == ""


def test_answer_frame_matches_the_contract_and_masks_the_card() -> None:
    answer = SaleAnswer(
        sale_id="S-000123",
        status="ok",
        loyalty={"status": "earned", "points": 250, "balance": 1375},
        card="67003B51C6",
        message=None,
    )
    frame = encode_answer(answer)
    (item,) = PosFrameParser().feed(frame)
    assert isinstance(item, PosFrame)
    assert json.loads(item.payload) == {
        "type": "answer",
        "sale_id": "S-000123",
        "status": "ok",
        "loyalty": {"status": "earned", "points": 250, "balance": 1375},
        "card": "******51C6",
        "message": None,
    }
    assert b"67003B51C6" not in frame
    assert parse_answer(item.payload) == answer


def test_an_answer_without_a_usable_sale_id() -> None:
    answer = SaleAnswer(sale_id=None, status="rejected", message="items.0.price: too low")
    assert json.loads(encode_answer(answer)[1:-2])["sale_id"] is None


def test_a_conflict_answer_is_part_of_the_contract() -> None:
    answer = SaleAnswer(sale_id="S-1", status="conflict", message="sale_id S-1 was already used")
    assert parse_answer(encode_answer(answer)[1:-2]) == answer
    assert json.loads(encode_answer(answer)[1:-2])["loyalty"] is None


def test_an_unreadable_answer_is_a_pos_request_error() -> None:
    with pytest.raises(PosRequestError):
        parse_answer(b'{"type":"answer","status":"maybe"}')
