"""Encoding, decoding and validation of wire messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.account import Account
from protocol.canonical import canonical_bytes
from protocol.codec import decode, encode
from protocol.errors import MalformedMessage
from protocol.events import Event, SaleRecorded
from protocol.ids import uuid7, uuid7_ms
from protocol.loyalty import earned_outcome
from protocol.messages import Ack, DeviceStatus, EventBatch
from protocol.pricing import price_sale
from tests.unit.protocol.factories import chain, sale_payload


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"null", b"[]", b'{"schema":"marquee.batch/1"}', "é".encode("latin-1"), b"\xff\xfe" * 10],
)
def test_malformed_batches_give_one_clear_error(data: bytes) -> None:
    with pytest.raises(MalformedMessage, match="EventBatch"):
        decode(EventBatch, data)


def test_a_batch_with_a_hole_or_a_foreign_event_is_refused() -> None:
    events = chain(3)
    with pytest.raises(MalformedMessage, match="consecutive"):
        decode(EventBatch, encode(EventBatch.model_construct(site_id="riverside", device_id="riverside-box1",
                                                              events=[events[0], events[2]])))
    other = chain(1, device_id="harbour-box1", start_seq=2)
    with pytest.raises(MalformedMessage, match="batch's device"):
        decode(EventBatch, encode(EventBatch.model_construct(site_id="riverside", device_id="riverside-box1",
                                                              events=[events[0], other[0]])))


def test_oversized_messages_are_refused_before_parsing() -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        decode(Ack, b" " * (4 * 1024 * 1024 + 1))


def test_ack_and_status_round_trip_with_unknown_fields() -> None:
    ack = decode(Ack, b'{"schema":"marquee.ack/1","device_id":"b1","acked_seq":7,"resend_from":8,"later":1}')
    assert (ack.acked_seq, ack.resend_from) == (7, 8)
    assert json.loads(encode(ack))["later"] == 1
    status = DeviceStatus(site_id="s1", device_id="b1", online=True, backlog=3, peripherals={"t1-pos": "up"})
    assert decode(DeviceStatus, encode(status)) == status


def test_timestamps_are_utc_and_written_one_way() -> None:
    event = chain(1)[0]
    local = event.occurred_at.astimezone(timezone(timedelta(hours=3)))
    again = Event.model_validate({**event.model_dump(by_alias=True), "occurred_at": local})
    assert encode(again) == encode(event)
    with pytest.raises(MalformedMessage):
        decode(Event, encode(event).replace(b'Z"', b'"'))  # naive time: no zone, refused


def test_sale_total_must_match_items_and_ids_must_be_topic_safe() -> None:
    payload = sale_payload()
    SaleRecorded.model_validate(payload)
    with pytest.raises(ValueError, match="total"):
        SaleRecorded.model_validate({**payload, "total": payload["total"] + 1})
    with pytest.raises(ValueError, match="pattern"):
        SaleRecorded.model_validate({**payload, "site_id": "a/b"})


def test_canonical_encoding_is_key_order_independent_and_refuses_floats() -> None:
    assert canonical_bytes({"b": 1, "a": [1, {"y": 2, "x": "é"}]}) == canonical_bytes(
        {"a": [1, {"x": "é", "y": 2}], "b": 1}
    )
    assert canonical_bytes({"a": "é"}) == '{"a":"é"}'.encode()
    with pytest.raises(MalformedMessage, match="floats"):
        canonical_bytes({"price": 12.5})
    with pytest.raises(MalformedMessage, match="floats"):
        canonical_bytes({"items": [{"lines": [1, (2, 3.0)]}]})
    with pytest.raises(MalformedMessage, match="string keys"):
        canonical_bytes({"items": [{1: "x"}]})


@given(st.integers(min_value=0, max_value=(1 << 48) - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_carries_its_millisecond_and_version(ms: int, rand: bytes) -> None:
    value = uuid7(ms, rand)
    assert value.version == 7 and value.variant == "specified in RFC 4122"
    assert uuid7_ms(value) == ms


def test_uuid7_orders_by_time() -> None:
    now = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert uuid7(now, b"\xff" * 10) < uuid7(now + 1, b"\x00" * 10)


@given(st.lists(st.tuples(st.sampled_from(["ticket", "concession"]), st.integers(0, 5000), st.integers(1, 9)),
                min_size=1, max_size=20), st.integers(0, 10_000), st.integers(0, 10**6))
def test_points_are_the_rounded_down_share_of_each_ticket_line(lines: list[tuple[str, int, int]], bp: int,
                                                               before: int) -> None:
    from datetime import UTC, datetime

    from protocol.events import LineItem
    from protocol.rules import Earning, RuleBundle

    items = [LineItem(kind=k, sku="x", unit_price=p, quantity=q) for k, p, q in lines]  # type: ignore[arg-type]
    bundle = RuleBundle(version=7, published_at=datetime(2026, 11, 25, tzinfo=UTC), currency="EUR",
                        earning=(Earning(rule_id="tickets", kind="ticket", basis_points=bp),))
    at = datetime(2026, 11, 25, 20, tzinfo=UTC)
    decision = price_sale(bundle, None, Account(lots={"2026-11": before}), items, at=at, site_id="riverside")
    outcome = earned_outcome(decision, rules_version=bundle.version, programme=None)
    per_line = [p * q * bp // 10_000 for k, p, q in lines if k == "ticket"]
    assert outcome.points_earned == sum(per_line) and outcome.rules_version == 7
    assert outcome.rule_id == ("tickets" if sum(per_line) else None)
    assert outcome.balance == before + outcome.points_earned


CARD = "4111111111111111"


def test_a_refused_message_names_fields_never_the_values_sent() -> None:
    event = chain(1)[0]
    body = json.loads(encode(EventBatch(site_id="riverside", device_id="riverside-box1", events=[event])))
    body["events"][0]["payload"] = {**event.payload, "cashier_id": f"{CARD} 12/29 123\x01"}
    body["events"][0]["seq"] = f"{CARD}-12/29"
    body["events"][0]["mystery"] = {CARD: CARD}
    with pytest.raises(MalformedMessage) as caught:
        decode(EventBatch, json.dumps(body))
    assert CARD not in str(caught.value) and "12/29" not in str(caught.value)
    assert "events.0.seq" in caught.value.fields

    bad_sale = Event.model_validate({**event.model_dump(by_alias=True),
                                     "payload": {**event.payload, "cashier_id": f"{CARD}\x01",
                                                 "items": [{**event.payload["items"][0], "quantity": CARD}]}})
    with pytest.raises(MalformedMessage) as caught:
        bad_sale.typed_payload()
    assert CARD not in str(caught.value) and CARD not in repr(caught.value.fields)
    assert set(caught.value.fields) == {"cashier_id", "items.0.quantity"}


def test_a_free_form_key_in_an_error_location_is_masked() -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode(DeviceStatus, json.dumps({"site_id": "s1", "device_id": "b1", "online": True,
                                         "counters": {CARD: -1}}))
    assert caught.value.fields == ("counters.*",) and CARD not in str(caught.value)


@pytest.mark.parametrize("stamp", [1_700_000_000, "1700000000", 1.7e9, True, "23/11/2026 19:30"])
def test_a_number_is_not_a_timestamp(stamp: object) -> None:
    event = chain(1)[0]
    with pytest.raises(ValueError):
        Event.model_validate({**event.model_dump(by_alias=True), "occurred_at": stamp})
    with pytest.raises(MalformedMessage):
        decode(DeviceStatus, json.dumps({"site_id": "s1", "device_id": "b1", "online": True, "sent_at": stamp}))
